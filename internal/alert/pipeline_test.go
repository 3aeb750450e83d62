package alert

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/policies"
)

// fakeChannel records deliveries; it fails while failing > 0.
type fakeChannel struct {
	name    string
	mu      sync.Mutex
	failing int
	got     [][]Alert
}

func (c *fakeChannel) Name() string { return c.name }
func (c *fakeChannel) Send(ctx context.Context, alerts []Alert) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failing > 0 {
		c.failing--
		return errors.New("connection refused")
	}
	c.got = append(c.got, alerts)
	return nil
}
func (c *fakeChannel) delivered() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, batch := range c.got {
		for _, a := range batch {
			out = append(out, a.Policy+":"+a.State)
		}
	}
	return out
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Path: filepath.Join(t.TempDir(), "remedy.db"), Schema: store.RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func alertDecision(policy, instance string, state engine.State, sev string, at time.Time) engine.Decision {
	return engine.Decision{Time: at, Kind: engine.KindAlert, Policy: policy, Instance: instance, State: state,
		Severity: policies.Severity(sev), Labels: map[string]string{"queue": instance},
		Alert: &engine.AlertNote{Summary: policy + " " + string(state)}}
}

type recEvents struct {
	mu  sync.Mutex
	evs []engine.Event
}

func (r *recEvents) add(ev engine.Event) { r.mu.Lock(); r.evs = append(r.evs, ev); r.mu.Unlock() }
func (r *recEvents) codes() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, e := range r.evs {
		s = append(s, e.Code+":"+e.Labels["channel"])
	}
	return strings.Join(s, " ")
}

func TestOutboxRetriesUntilDeliveredAndReportsUndelivered(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		hook := &fakeChannel{name: "webhook", failing: 4}
		logc := &fakeChannel{name: "log"}
		ev := &recEvents{}
		p, err := New(context.Background(), Options{DB: db, Channels: []Channel{hook, logc}, Events: ev.add})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go p.Run(ctx)
		if err := p.Handle(ctx, alertDecision("queue-stuck", "inbound", engine.Firing, "error", time.Now())); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := strings.Join(logc.delivered(), ","); got != "queue-stuck:firing" {
			t.Fatalf("log: %s", got)
		}
		pending, _ := p.Pending(ctx)
		if len(pending) != 1 || pending[0].Channel != "webhook" || pending[0].LastError != "connection refused" {
			t.Fatalf("pending %+v", pending)
		}
		// Retries after 1 s, 2 s, 4 s fail; the third failure reports the channel.
		time.Sleep(8 * time.Second)
		synctest.Wait()
		if ev.codes() != "ALERT_UNDELIVERED:webhook" {
			t.Fatalf("events %q", ev.codes())
		}
		time.Sleep(10 * time.Second) // the fifth try (after 8 s) works
		synctest.Wait()
		if got := strings.Join(hook.delivered(), ","); got != "queue-stuck:firing" {
			t.Fatalf("webhook: %q", got)
		}
		if pending, _ := p.Pending(ctx); len(pending) != 0 {
			t.Fatalf("still pending: %+v", pending)
		}
	})
}

func TestSilenceHoldsAndExpires(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ch := &fakeChannel{name: "log"}
	p, _ := New(context.Background(), Options{DB: db, Channels: []Channel{ch}})
	ctx := context.Background()
	now := time.Now()
	s, err := p.Silence(ctx, Silence{Matchers: map[string]string{"policy": "wa-*"}, Starts: now.Add(-time.Minute),
		Ends: now.Add(time.Hour), Author: "ops@example", Reason: "maintenance"})
	if err != nil {
		t.Fatal(err)
	}
	p.Handle(ctx, alertDecision("wa-reconnect", "", engine.Escalated, "error", now))
	p.Handle(ctx, alertDecision("queue-stuck", "in", engine.Firing, "error", now))
	p.Deliver(ctx)
	var held string
	db.Get(ctx, &held, `SELECT held FROM alerts WHERE policy = 'wa-reconnect'`)
	if got := strings.Join(ch.delivered(), ","); got != "queue-stuck:firing" || held != "silenced by #1" {
		t.Fatalf("delivered %q, held %q", got, held)
	}
	if err := p.Expire(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	p.Handle(ctx, alertDecision("wa-reconnect", "", engine.Escalated, "critical", now.Add(time.Second)))
	p.Deliver(ctx)
	// The escalation the silence held goes out when the silence is expired; then the
	// next one.
	if got := strings.Join(ch.delivered(), ","); got != "queue-stuck:firing,wa-reconnect:escalated,wa-reconnect:escalated" {
		t.Fatalf("after expiry: %q", got)
	}
	if _, err := p.Silence(ctx, Silence{Starts: now, Ends: now.Add(time.Hour)}); err == nil {
		t.Fatal("a silence without matchers was accepted")
	}
}

func TestAckHoldsRepeatsButNotWorse(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ch := &fakeChannel{name: "log"}
	p, _ := New(context.Background(), Options{DB: db, Channels: []Channel{ch}})
	ctx := context.Background()
	t0 := time.Now()
	p.Handle(ctx, alertDecision("queue-stuck", "in", engine.Firing, "error", t0))
	var id int64
	db.Get(ctx, &id, `SELECT id FROM alerts`)
	if err := p.Ack(ctx, id, "+6281234"); err != nil {
		t.Fatal(err)
	}
	rep := alertDecision("queue-stuck", "in", engine.Firing, "error", t0.Add(time.Hour))
	rep.Alert.Repeat = true
	p.Handle(ctx, rep)
	p.Handle(ctx, alertDecision("queue-stuck", "in", engine.Escalated, "critical", t0.Add(2*time.Hour)))
	p.Handle(ctx, alertDecision("queue-stuck", "in", engine.Resolved, "critical", t0.Add(3*time.Hour)))
	p.Deliver(ctx)
	if got := strings.Join(ch.delivered(), ","); got != "queue-stuck:firing,queue-stuck:escalated,queue-stuck:resolved" {
		t.Fatalf("%q", got)
	}
	// The ack belonged to the incident, which resolved: a new pipeline (after a
	// restart) does not bring it back.
	p2, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}})
	if _, ok := p2.acks[Fingerprint("queue-stuck", map[string]string{"queue": "in"})]; ok {
		t.Fatal("the ack of a resolved incident came back after a restart")
	}
}

// An alert the engine held (inhibited) is stored with why and never sent — not even
// when a silence ends; the engine notifies again when the inhibition ends.
func TestEngineHeldAlertsAreStoredNotSent(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ch := &fakeChannel{name: "log"}
	ctx := context.Background()
	p, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}})
	t0 := time.Now()
	d := alertDecision("wa-flapping", "", engine.Firing, "error", t0)
	d.Alert.Held = "inhibited by wa-logged-out"
	p.Handle(ctx, d)
	if err := p.release(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	p.Deliver(ctx)
	var held string
	db.Get(ctx, &held, `SELECT held FROM alerts`)
	if len(ch.delivered()) != 0 || held != "inhibited by wa-logged-out" {
		t.Fatalf("delivered %v, held %q", ch.delivered(), held)
	}
	p.Handle(ctx, alertDecision("wa-flapping", "", engine.Firing, "error", t0.Add(time.Minute)))
	p.Deliver(ctx)
	if got := strings.Join(ch.delivered(), ","); got != "wa-flapping:firing" {
		t.Fatalf("after the engine's release: %q", got)
	}
}

func TestDuplicateDecisionIsOneAlert(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ch := &fakeChannel{name: "log"}
	p, _ := New(context.Background(), Options{DB: db, Channels: []Channel{ch}})
	ctx := context.Background()
	d := alertDecision("queue-stuck", "in", engine.Firing, "error", time.Now())
	p.Handle(ctx, d)
	p.Handle(ctx, d)
	p.Deliver(ctx)
	var n int
	db.Get(ctx, &n, `SELECT count(*) FROM alerts`)
	if n != 1 || len(ch.delivered()) != 1 {
		t.Fatalf("%d rows, %d deliveries", n, len(ch.delivered()))
	}
}

func TestPerChannelRateLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		ch := &fakeChannel{name: "webhook"}
		p, _ := New(context.Background(), Options{DB: db, Channels: []Channel{ch}, PerMinute: map[string]int{"webhook": 2}, Batch: 1})
		ctx := context.Background()
		for i := 0; i < 5; i++ {
			p.Handle(ctx, alertDecision("queue-stuck", string(rune('a'+i)), engine.Firing, "error", time.Now().Add(time.Duration(i))))
		}
		p.Deliver(ctx)
		if n := len(ch.delivered()); n != 2 {
			t.Fatalf("%d delivered in the first minute, want 2", n)
		}
		time.Sleep(time.Minute)
		p.Deliver(ctx)
		if n := len(ch.delivered()); n != 4 {
			t.Fatalf("%d after a minute", n)
		}
	})
}

// The engine's rate limit holds notifications back and counts them; the next one
// delivered says "+N suppressed".
func TestSuppressedCountReachesTheMessage(t *testing.T) {
	t.Parallel()
	set := loadSet(t, `
policies:
  - name: flap
    on: [WA_DISCONNECTED]
    severity: error
    alert: {rate_limit: {count: 1, per: 10m}}
    annotations: {summary: WhatsApp flapping}
`)
	e := engine.New(set, engine.Options{Seed: 1})
	db := openDB(t)
	ch := &fakeChannel{name: "log"}
	p, _ := New(context.Background(), Options{DB: db, Channels: []Channel{ch}})
	ctx := context.Background()
	t0 := time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC)
	for i := 0; i < 8; i++ {
		for _, d := range e.Process(engine.Event{Time: t0.Add(time.Duration(i) * time.Minute), Code: "WA_DISCONNECTED"}) {
			p.Handle(ctx, d)
		}
	}
	for _, d := range e.Process(engine.Event{Time: t0.Add(11 * time.Minute), Code: "WA_DISCONNECTED"}) {
		p.Handle(ctx, d)
	}
	p.Deliver(ctx)
	if len(ch.got) != 1 || len(ch.got[0]) != 2 || ch.got[0][1].Suppressed != 7 ||
		!strings.Contains(ch.got[0][1].Text(), "[ERROR] flap: WhatsApp flapping (+7 suppressed)") {
		t.Fatalf("%+v", ch.got)
	}
}

// cancelChannel delivers, and shutdown begins while it does (it cancels the context).
type cancelChannel struct {
	fakeChannel
	cancel context.CancelFunc
}

func (c *cancelChannel) Send(ctx context.Context, alerts []Alert) error {
	c.cancel()
	return c.fakeChannel.Send(ctx, alerts)
}

// A delivery that succeeded while shutdown began is recorded, so the restart does not
// send it again.
func TestDeliveryDuringShutdownIsRecorded(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	hook := &cancelChannel{fakeChannel: fakeChannel{name: "webhook"}, cancel: cancel}
	p, err := New(context.Background(), Options{DB: db, Channels: []Channel{hook}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Handle(context.Background(), alertDecision("queue-stuck", "inbound", engine.Firing, "error", time.Now())); err != nil {
		t.Fatal(err)
	}
	p.Deliver(ctx)
	if got := strings.Join(hook.delivered(), ","); got != "queue-stuck:firing" {
		t.Fatalf("webhook got %q", got)
	}
	if pending, err := p.Pending(context.Background()); err != nil || len(pending) != 0 {
		t.Fatalf("after a delivery during shutdown, still pending (would be sent again): %+v %v", pending, err)
	}
}
