package whatsapp

import (
	"context"
	"testing"
)

// The drill's socket cut looks to whatsmeow like a network failure (WA_DISCONNECTED,
// reason remote), not a deliberate Disconnect, and the client comes back with Reconnect.
func TestDropSocketIsANetworkFailure(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	c := open(t, s, rec)
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	if n := c.DropSocket(); n != 1 {
		t.Fatalf("cut %d sockets, want 1", n)
	}
	if ev := rec.wait(t, "WA_DISCONNECTED"); ev.Labels["reason"] != "remote" {
		t.Fatalf("%v", ev)
	}
	if err := reconnect(c); err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	if c.State() != Connected || s.Logins() != 2 {
		t.Fatalf("%s after reconnect, %d logins", c.State(), s.Logins())
	}
	c.socks.mu.Lock()
	open := len(c.socks.conns)
	c.socks.mu.Unlock()
	if open != 1 {
		t.Fatalf("after the reconnect %d sockets tracked, want 1 (cut ones are forgotten)", open)
	}
}
