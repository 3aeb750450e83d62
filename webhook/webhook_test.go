package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// A signature verifies exactly for its secret, timestamp and body: any change to one
// of them, a timestamp outside the tolerance, or a missing header fails, with the error
// that says which. Seeded random bodies and offsets.
func TestSignatureVerifiesOnlyTheSignedDelivery(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	secret := []byte("s3cret")
	now := time.Unix(1_800_000_000, 0)
	for range 200 {
		body := make([]byte, rng.IntN(300)+1)
		for i := range body {
			body[i] = byte(rng.IntN(256))
		}
		off := time.Duration(rng.IntN(20*60)-10*60) * time.Second
		ts := now.Add(off)
		sig := Sign(secret, ts, body)
		tsh := strconv.FormatInt(ts.Unix(), 10)
		err := Verify(secret, tsh, sig, body, now, 0)
		inside := off <= DefaultTolerance && off >= -DefaultTolerance
		if inside != (err == nil) || !inside && !errors.Is(err, ErrStale) {
			t.Fatalf("offset %v: %v", off, err)
		}
		if !inside {
			continue
		}
		flipped := bytes.Clone(body)
		flipped[rng.IntN(len(flipped))] ^= 1 << rng.IntN(8)
		if err := Verify(secret, tsh, sig, flipped, now, 0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("a changed body verified: %v", err)
		}
		if err := Verify([]byte("other"), tsh, sig, body, now, 0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("another secret verified: %v", err)
		}
		// Another timestamp, a second nearer now, so it stays inside the tolerance (a
		// second further out at the edge is stale, a different error).
		other := ts.Unix() + 1
		if off > 0 {
			other = ts.Unix() - 1
		}
		if err := Verify(secret, strconv.FormatInt(other, 10), sig, body, now, 0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("another timestamp verified: %v", err)
		}
		if err := Verify(secret, tsh, "", body, now, 0); !errors.Is(err, ErrNoSignature) {
			t.Fatalf("no signature: %v", err)
		}
	}
}

// Every delivery type survives the wire: what remedy marshals, Read returns; a message's
// fields are at the top level with "type":"message"; another type's data is under its
// own key; an unknown type keeps its raw data.
func TestDeliveriesRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	msg := NewMessage(Message{ID: "3EB0A", From: "6281100000077", Chat: "120363000000000001@g.us", Group: "120363000000000001@g.us",
		Text: "look", Time: at, Kind: KindImage, SenderName: "Budi", QuotedID: "3EB09", Media: &Media{URL: "/api/v1/incoming/3EB0A/media", MIME: "image/jpeg", Size: 10}})
	rc, _ := New(TypeReceipt, at, Receipt{MessageIDs: []string{"X"}, Chat: "6281100000077@s.whatsapp.net", From: "6281100000077", Status: "read", Time: at})
	other, _ := New("message_status", at, map[string]any{"id": "42", "status": "failed", "reason": "not on WhatsApp"})
	so, err := New(TypeSendOutcome, at, SendOutcome{ID: "3EB0B", Chat: "6281100000077@s.whatsapp.net", Status: OutcomeFailed,
		Reason: "refused: 403", Attempts: 1, Time: at})
	if err != nil || so.SendOutcome == nil || so.SendOutcome.Reason != "refused: 403" {
		t.Fatalf("send outcome: %+v %v", so, err)
	}
	ed, _ := New(TypeEdit, at, Edit{ID: "3EB0E", MessageID: "3EB0A", Chat: "6281100000077@s.whatsapp.net", From: "6281100000077",
		Kind: KindText, Text: "look again", Time: at})
	del, _ := New(TypeDelete, at, Delete{ID: "3EB0F", MessageID: "3EB0A", Chat: "6281100000077@s.whatsapp.net", From: "6281100000077", Time: at})
	if ed.Edit == nil || ed.Edit.MessageID != "3EB0A" || del.Delete == nil || del.Delete.MessageID != "3EB0A" {
		t.Fatalf("edit %+v, delete %+v", ed, del)
	}
	for _, e := range []Event{msg, rc, other, so, ed, del} {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var head map[string]json.RawMessage
		json.Unmarshal(b, &head)
		if string(head["type"]) != strconv.Quote(e.Type) {
			t.Fatalf("%s: %s", e.Type, b)
		}
		if e.Type != TypeMessage && head[e.Type] == nil {
			t.Fatalf("%s: data not under its type: %s", e.Type, b)
		}
		req := httptest.NewRequest("POST", "/", bytes.NewReader(b))
		back, err := Read(req, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == TypeSendOutcome && (back.SendOutcome == nil || *back.SendOutcome != *e.SendOutcome) {
			t.Fatalf("send outcome read back as %+v", back.SendOutcome)
		}
		b2, _ := json.Marshal(back)
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip:\n%s\n%s", b, b2)
		}
	}
	if _, err := New(TypeMessage, at, nil); err == nil {
		t.Fatal("New made a message")
	}
	var e Event
	if err := json.Unmarshal([]byte(`{"id":"x"}`), &e); err == nil {
		t.Fatal("a delivery without a type decoded")
	}
}

// How a Go handler verifies and reads remedy's deliveries (whatsapp.handler with
// secret_env): webhook.Read checks X-Remedy-Signature over X-Remedy-Timestamp and the
// body, then decodes. Answer {"reply": "…"} to reply, or 202 and send later.
func ExampleRead() {
	secret := []byte("the value of the variable named in secret_env")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := Read(r, secret)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		switch e.Type {
		case TypeMessage:
			m := e.Message
			fmt.Printf("%s from %s in %s: %q\n", m.Kind, m.From, m.Chat, m.Text)
			json.NewEncoder(w).Encode(map[string]string{"reply": "echo: " + m.Text})
		case TypeReceipt:
			fmt.Printf("%s: %v\n", e.Receipt.Status, e.Receipt.MessageIDs)
		default:
			// a type this handler does not know (remedy may add some): acknowledge it
		}
	})
	// What remedy sends:
	body := []byte(`{"type":"message","id":"3EB0A","from":"6281100000077","chat":"6281100000077@s.whatsapp.net","text":"hi","time":"2026-11-30T09:00:00Z","kind":"text"}`)
	now := time.Now()
	req := httptest.NewRequest("POST", "/hook", bytes.NewReader(body))
	req.Header.Set(TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(SignatureHeader, Sign(secret, now, body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	fmt.Print(w.Body.String())
	// Output:
	// text from 6281100000077 in 6281100000077@s.whatsapp.net: "hi"
	// {"reply":"echo: hi"}
}
