package whatsapp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"github.com/remedy-run/remedy/webhook"
)

// whatsmeow's store compiles its statements once: after the first messages of a
// conversation, decrypting and handing on more of them compiles nothing new (before,
// modernc compiled every statement of every message, a fifth of whatsmeow's time per
// message at 1,000 messages/s).
func TestDeviceStoreCompilesItsStatementsOnce(t *testing.T) {
	s := fakeServer(t)
	rec := newRecorder()
	got := make(chan webhook.Message, 64)
	c, err := Open(context.Background(), Options{StorePath: pairedStore(t), Events: rec.add, HTTPClient: s.HTTPClient(),
		Watchdog: time.Hour, Probe: time.Hour, Messages: func(m webhook.Message) error { got <- m; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	ctx := context.Background()
	phone, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000078")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	exchange := func(n int) {
		t.Helper()
		for i := range n {
			text := fmt.Sprint("hello ", i)
			s.Each(func(fc *wafake.Conn) {
				m, err := phone.Prepare(ctx, c.Client().Store, text)
				if err != nil {
					t.Fatal(err)
				}
				if err := fc.Send(m); err != nil {
					t.Fatal(err)
				}
			})
			select {
			case m := <-got:
				if m.Text != text {
					t.Fatalf("got %q, want %q", m.Text, text)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("message %d not handed on", i)
			}
		}
	}
	exchange(5) // the session is set up; whatsmeow's per-message statements are met
	before := c.stmts.Stats()
	exchange(20)
	after := c.stmts.Stats()
	if after.Prepared != before.Prepared {
		t.Fatalf("20 more messages compiled %d statements; want none", after.Prepared-before.Prepared)
	}
	if r := after.Reused - before.Reused; r < 20*3 {
		t.Fatalf("20 messages reused %d compiled statements; want at least 3 per message", r)
	}
	t.Logf("per message: %.1f statements reused", float64(after.Reused-before.Reused)/20)
}
