package alert

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// An ack belongs to the incident its alert was about: an alert of an incident that
// already resolved — the resolution itself, or a firing before it — cannot acknowledge
// a later incident of the same identity (an operator acking yesterday's page must not
// quiet today's).
func TestAckOfAnEndedIncidentIsRefused(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	p, _ := New(ctx, Options{DB: db, Channels: []Channel{&fakeChannel{name: "log"}}})
	t0 := time.Now()
	p.Handle(ctx, alertDecision("q", "in", engine.Firing, "error", t0))
	p.Handle(ctx, alertDecision("q", "in", engine.Resolved, "error", t0.Add(time.Minute)))
	p.Handle(ctx, alertDecision("q", "in", engine.Firing, "error", t0.Add(2*time.Minute)))
	var ids []int64
	db.Select(ctx, &ids, `SELECT id FROM alerts ORDER BY id`)
	if len(ids) != 3 {
		t.Fatalf("%d alerts", len(ids))
	}
	for _, id := range ids[:2] {
		if err := p.Ack(ctx, id, "op"); err == nil {
			t.Fatalf("alert #%d of the ended incident acknowledged the new one", id)
		}
	}
	var n int
	db.Get(ctx, &n, `SELECT count(*) FROM acks`)
	if n != 0 {
		t.Fatalf("%d acks stored", n)
	}
	if err := p.Ack(ctx, ids[2], "op"); err != nil {
		t.Fatalf("the open incident's alert: %v", err)
	}
	for _, id := range ids[:2] {
		if err := p.Unack(ctx, id); err == nil {
			t.Fatalf("alert #%d of the ended incident withdrew the new one's ack", id)
		}
	}
	db.Get(ctx, &n, `SELECT count(*) FROM acks`)
	if n != 1 {
		t.Fatalf("%d acks stored, want the open incident's", n)
	}
	if err := p.Unack(ctx, ids[2]); err != nil {
		t.Fatalf("unack by the open incident's alert: %v", err)
	}
}

// An incident the pipeline remembers as open and the engine does not have firing at
// start (its saved state was unreadable, or it was saved before the firing or the
// resolution reached it) is resolved on the channels that were told; one the engine
// still has firing stays open.
func TestResolveWhatTheEngineDoesNotHaveFiring(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	ch := &fakeChannel{name: "log"}
	p, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}})
	t0 := time.Now()
	a, b := alertDecision("a", "1", engine.Firing, "error", t0), alertDecision("b", "1", engine.Firing, "error", t0)
	p.Handle(ctx, a)
	p.Handle(ctx, b)
	p.Deliver(ctx)

	p2, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}}) // a restart
	keep := Fingerprint(b.Policy, b.Labels)
	n, err := p2.ResolveOpenExcept(ctx, func(fp string) bool { return fp == keep }, "engine state lost at restart")
	if err != nil || n != 1 {
		t.Fatalf("resolved %d, %v; want 1", n, err)
	}
	p2.Deliver(ctx)
	if got := strings.Join(ch.delivered(), ","); got != "a:firing,b:firing,a:resolved" {
		t.Fatalf("log: %s", got)
	}
	// b is still open: its resolution goes out when the engine decides it.
	p2.Handle(ctx, alertDecision("b", "1", engine.Resolved, "error", t0.Add(time.Minute)))
	p2.Deliver(ctx)
	if got := strings.Join(ch.delivered(), ","); got != "a:firing,b:firing,a:resolved,b:resolved" {
		t.Fatalf("log: %s", got)
	}
}

// A resolution the engine records as held (notify_on without "resolved") closes the
// incident here, sending nothing: it is no longer open, so no longer re-sent to
// Alertmanager nor acknowledgeable.
func TestHeldResolutionClosesTheIncident(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	ch := &fakeChannel{name: "log"}
	p, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}})
	t0 := time.Now()
	p.Handle(ctx, alertDecision("q", "in", engine.Firing, "error", t0))
	end := alertDecision("q", "in", engine.Resolved, "error", t0.Add(time.Minute))
	end.Alert.Held = "not notified: resolved is not in notify_on"
	p.Handle(ctx, end)
	p.Deliver(ctx)
	if got := strings.Join(ch.delivered(), ","); got != "q:firing" {
		t.Fatalf("log: %s", got)
	}
	p.handleMu.Lock()
	open := len(p.incidents)
	p.handleMu.Unlock()
	if open != 0 {
		t.Fatalf("%d incidents open after the held resolution", open)
	}
}
