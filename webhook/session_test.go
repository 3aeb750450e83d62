package webhook

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A delivery names its session at the top level, for a message as for any other type,
// and reading it back gives the session again.
func TestDeliveriesNameTheirSession(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	msg := NewMessage(Message{ID: "3EB0", From: "6281100000077", Chat: "6281100000077@s.whatsapp.net", Text: "hi", Time: at, Kind: KindText})
	msg.Session = "sales"
	rec, err := New(TypeReceipt, at, Receipt{Chat: "6281100000077@s.whatsapp.net", Status: "read", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	rec.Session = "support"
	for _, c := range []struct {
		e    Event
		want string
	}{{msg, "sales"}, {rec, "support"}} {
		b, err := json.Marshal(c.e)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"session":"`+c.want+`"`) {
			t.Fatalf("%s: %s", c.e.Type, b)
		}
		var back Event
		if err := json.Unmarshal(b, &back); err != nil || back.Session != c.want {
			t.Fatalf("%s read back: session %q (%v)", c.e.Type, back.Session, err)
		}
		if back.Type == TypeMessage && back.Message.Session != c.want {
			t.Fatalf("the message's own Session: %q", back.Message.Session)
		}
	}
}
