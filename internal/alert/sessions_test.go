package alert

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// sessionPhones records what each session queued, by admin, and how often under one key.
type sessionPhones struct {
	mu     sync.Mutex
	down   map[string]bool
	queued map[string][]string // "session admin" → texts
	keys   map[string]bool
}

func (p *sessionPhones) number(session string, admins ...string) Number {
	return Number{Session: session, Admins: admins,
		Ready: func() bool { p.mu.Lock(); defer p.mu.Unlock(); return !p.down[session] },
		Send: func(_ context.Context, to, text, key string) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.keys[key] {
				return nil // the queue's idempotency: nothing queued again
			}
			p.keys[key] = true
			p.queued[session+" "+to] = append(p.queued[session+" "+to], text)
			return nil
		}}
}

// Each session's admins get the alerts about their own session, from that number; an
// alert about no session goes to every admin number once; a session that is down holds
// its alerts back (an error: the outbox retries) without holding the others', and the
// retry queues nothing twice.
func TestWhatsAppAlertsGoToTheirSession(t *testing.T) {
	p := &sessionPhones{down: map[string]bool{"support": true}, queued: map[string][]string{}, keys: map[string]bool{}}
	ch := WhatsAppChannel{Numbers: func() []Number {
		return []Number{p.number("sales", "+6281100000001", "+62 811-0000-0009"), p.number("support", "+6281100000002", "6281100000009")}
	}}
	t0 := time.Now()
	alerts := []Alert{
		{ID: 1, Policy: "wa-disconnected", Summary: "sales down", Labels: map[string]string{"session": "sales"}, Time: t0},
		{ID: 2, Policy: "wa-disconnected", Summary: "support down", Labels: map[string]string{"session": "support"}, Time: t0},
		{ID: 3, Policy: "disk-low", Summary: "disk low", Time: t0},
	}
	err := ch.Send(context.Background(), alerts)
	if err == nil || !strings.Contains(err.Error(), "support") {
		t.Fatalf("support is down: error %v, want one naming it", err)
	}
	want := map[string][]string{
		"sales +6281100000001":    {"sales down", "disk low"},
		"sales +62 811-0000-0009": {"sales down", "disk low"}, // the shared admin: disk-low once, from sales
	}
	check := func(want map[string][]string) {
		t.Helper()
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.queued) != len(want) {
			t.Fatalf("queued for %d destinations, want %d: %q", len(p.queued), len(want), p.queued)
		}
		for d, parts := range want {
			got := p.queued[d]
			if len(got) != 1 {
				t.Fatalf("%s: %d messages, want one grouped: %q", d, len(got), got)
			}
			for _, s := range parts {
				if !strings.Contains(got[0], s) {
					t.Errorf("%s got %q, want it to say %q", d, got[0], s)
				}
			}
			for _, s := range []string{"sales down", "support down", "disk low"} {
				if !slices.Contains(parts, s) && strings.Contains(got[0], s) {
					t.Errorf("%s got %q, which it should not: %q", d, s, got[0])
				}
			}
		}
	}
	check(want)
	// support connects: the retry of the same alerts queues support's and nothing twice.
	p.mu.Lock()
	p.down["support"] = false
	p.mu.Unlock()
	if err := ch.Send(context.Background(), alerts); err != nil {
		t.Fatal(err)
	}
	want["support +6281100000002"] = []string{"support down", "disk low"}
	want["support 6281100000009"] = []string{"support down"}
	check(want)
}
