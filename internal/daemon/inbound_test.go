package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// Incoming WhatsApp messages under every store fault, with the real client against the
// fake server: each message WhatsApp was told arrived (its receipt sent) reaches the
// bot's handler once the fault ends; while it lasts they wait in the inbound spool. One
// daemon meets the faults one after another (each ends before the next), as a bot's
// host would.
func TestIncomingMessagesSurviveStoreFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("holds each store fault")
	}
	var mu sync.Mutex
	handled := map[string]int{}
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		handled[m.Text]++
		mu.Unlock()
	}))
	defer bot.Close()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) {
		c.WhatsApp.Handler = &config.Handler{URL: bot.URL}
		c.HealthInterval = 200 * time.Millisecond // the I/O error fault waits for readiness to see it
	})
	r.d.sessions.Default().SetInboundBound(300 * time.Millisecond) // each fault outlasts it many times
	ctx := context.Background()
	phone, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000042")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	texts := map[string]string{} // message id -> text
	send := func(text string) {
		s.Each(func(fc *wafake.Conn) {
			id, err := phone.Send(ctx, fc, r.d.sessions.Default().Conn().Client().Store, text)
			if err != nil {
				t.Fatal(err)
			}
			texts[id] = text
		})
	}
	receipted := func() []string { // each message once, though a receipt may come twice
		var out []string
		seen := map[string]bool{}
		for _, id := range s.Receipts() {
			if texts[id] != "" && !seen[id] {
				seen[id] = true
				out = append(out, texts[id])
			}
		}
		return out
	}
	allHandled := func(last string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			rs := receipted()
			for _, text := range rs {
				if handled[text] == 0 {
					return false
				}
			}
			return slices.Contains(rs, last)
		}
	}
	send("before")
	r.eventually("the first message handled", allHandled("before"))
	var table []string
	for i, f := range storeFaults {
		clear := f.apply(t, r)
		const during = 8
		want := len(receipted()) + during
		for j := range during {
			send(fmt.Sprintf("fault-%d-%d", i, j))
		}
		r.eventually(f.name+": every message sent during the fault kept and acknowledged", func() bool {
			return len(receipted()) >= want
		})
		spooled := r.d.sessions.inboundWaiting()
		clear()
		after := fmt.Sprintf("after-%d", i)
		send(after)
		r.eventually(f.name+": every acknowledged message handled", allHandled(after))
		table = append(table, fmt.Sprintf("| %s | %d | %d acknowledged | %d spooled during the fault | all handled after |",
			f.name, during, during, spooled))
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("\n| fault | messages during it | receipts | spool | after |\n|---|---|---|---|---|\n%s\n%d messages acknowledged, %d handled",
		strings.Join(table, "\n"), len(receipted()), len(handled))
}
