package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
)

// Issue 14, item 3: an ack is stored with its incident, compared by rank, survives a
// restart while the incident is open and is gone once it resolves.
func TestAckBelongsToIncidentAndComparesByRank(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ch := &fakeChannel{name: "log"}
	ctx := context.Background()
	p, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}})
	t0 := time.Now()
	p.Handle(ctx, alertDecision("queue-stuck", "in", engine.Firing, "warning", t0))
	p.Handle(ctx, alertDecision("queue-stuck", "in", engine.Escalated, "critical", t0.Add(time.Minute)))
	var ids []int64
	db.Select(ctx, &ids, `SELECT id FROM alerts ORDER BY id`)
	for _, id := range ids {
		if err := p.Ack(ctx, id, "+6281234"); err != nil {
			t.Fatal(err)
		}
	}
	// After a restart, "critical" is still the acknowledged level: an "error" repeat is
	// held ("warning" > "critical" as text, which is how it was compared before).
	p2, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}})
	rep := alertDecision("queue-stuck", "in", engine.Escalated, "error", t0.Add(time.Hour))
	p2.Handle(ctx, rep)
	var held string
	db.Get(ctx, &held, `SELECT held FROM alerts ORDER BY id DESC LIMIT 1`)
	if held != "acknowledged" {
		t.Fatalf("after a restart an error notification of a critical-acked incident was %q, want acknowledged", held)
	}
	p2.Handle(ctx, alertDecision("queue-stuck", "in", engine.Resolved, "error", t0.Add(2*time.Hour)))
	var n int
	db.Get(ctx, &n, `SELECT count(*) FROM acks`)
	if n != 0 {
		t.Fatalf("%d acks stored after the incident resolved", n)
	}
	if err := p2.Ack(ctx, ids[0], "x"); err == nil {
		t.Fatal("an ack of a resolved incident was accepted")
	}
	// The same identity firing again is a new incident: not acknowledged.
	p3, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}})
	p3.Handle(ctx, alertDecision("queue-stuck", "in", engine.Firing, "warning", t0.Add(3*time.Hour)))
	db.Get(ctx, &held, `SELECT held FROM alerts ORDER BY id DESC LIMIT 1`)
	if held != "" {
		t.Fatalf("a new incident was held: %q", held)
	}
}

// Issue 14, item 2: a resolution goes to every channel that was given the firing —
// whatever holds are active now — and to no channel that was not.
func TestResolutionGoesWhereTheFiringWent(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	logc, hook := &fakeChannel{name: "log"}, &fakeChannel{name: "webhook"}
	ctx := context.Background()
	p, _ := New(ctx, Options{DB: db, Channels: []Channel{logc, hook}})
	t0 := time.Now()
	only := func(d engine.Decision, chans ...string) engine.Decision { d.Alert.Channels = chans; return d }
	p.Handle(ctx, only(alertDecision("a", "1", engine.Firing, "error", t0), "log"))
	p.Handle(ctx, alertDecision("b", "1", engine.Firing, "error", t0))
	p.Silence(ctx, Silence{Matchers: map[string]string{"policy": "*"}, Starts: t0.Add(-time.Second), Ends: t0.Add(time.Hour)})
	p.Handle(ctx, alertDecision("c", "1", engine.Firing, "error", t0)) // held by the silence
	for _, pol := range []string{"a", "b", "c"} {
		p.Handle(ctx, alertDecision(pol, "1", engine.Resolved, "error", t0.Add(time.Minute)))
	}
	p.Deliver(ctx)
	if got := strings.Join(logc.delivered(), ","); got != "a:firing,a:resolved,b:firing,b:resolved" {
		t.Fatalf("log: %s", got)
	}
	if got := strings.Join(hook.delivered(), ","); got != "b:firing,b:resolved" {
		t.Fatalf("webhook: %s", got)
	}
}

// Issue 14, item 2: when a hold ends — a silence runs out, an ack is withdrawn — the
// incidents it held that still fire are told then.
func TestHeldIncidentToldWhenTheHoldEnds(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		ch := &fakeChannel{name: "log"}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}})
		go p.Run(ctx)
		now := time.Now()
		p.Silence(ctx, Silence{Matchers: map[string]string{"policy": "q*"}, Starts: now, Ends: now.Add(10 * time.Minute)})
		p.Handle(ctx, alertDecision("q1", "x", engine.Firing, "error", now))
		p.Handle(ctx, alertDecision("q2", "x", engine.Firing, "error", now))
		p.Handle(ctx, alertDecision("q2", "x", engine.Resolved, "error", now.Add(time.Minute)))
		synctest.Wait()
		if got := ch.delivered(); len(got) != 0 {
			t.Fatalf("delivered while silenced: %v", got)
		}
		time.Sleep(10*time.Minute + 2*time.Second)
		synctest.Wait()
		if got := strings.Join(ch.delivered(), ","); got != "q1:firing" {
			t.Fatalf("after the silence ran out: %q, want q1's firing (q2 resolved meanwhile)", got)
		}
		// An ack holds a repeat; withdrawing it tells the incident at once.
		var id int64
		db.Get(ctx, &id, `SELECT max(id) FROM alerts WHERE policy = 'q1'`)
		if err := p.Ack(ctx, id, "ops"); err != nil {
			t.Fatal(err)
		}
		rep := alertDecision("q1", "x", engine.Firing, "error", time.Now())
		rep.Alert.Repeat = true
		p.Handle(ctx, rep)
		synctest.Wait()
		if n := len(ch.delivered()); n != 1 {
			t.Fatalf("the acked repeat went out")
		}
		if err := p.Unack(ctx, id); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := strings.Join(ch.delivered(), ","); got != "q1:firing,q1:firing" {
			t.Fatalf("after the ack was withdrawn: %q", got)
		}
	})
}

// amState is a fake Alertmanager: the latest endsAt of each label set, as its store
// keeps it.
type amState struct {
	mu     sync.Mutex
	ends   map[string]time.Time
	fail   bool
	posted int
}

func (s *amState) handler(w http.ResponseWriter, r *http.Request) {
	var in []postableAlert
	json.NewDecoder(r.Body).Decode(&in)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	s.posted++
	for _, a := range in {
		keys := make([]string, 0, len(a.Labels))
		for k, v := range a.Labels {
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		s.ends[strings.Join(keys, ",")] = a.EndsAt
	}
}

func (s *amState) active(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, e := range s.ends {
		if e.After(now) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Issue 14, items 2, 5 and 8 at the pipeline, as an invariant over random sequences of
// firings, escalations, resolutions, silences and acks on a log channel and an
// Alertmanager: once every incident has resolved and the outbox is delivered, every
// channel's last word on each incident it was told about is "resolved", and no label
// set posted to Alertmanager is still active.
func TestEveryChannelGetsTheEnd(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 12; seed++ {
		am := &amState{ends: map[string]time.Time{}}
		srv := httptest.NewServer(http.HandlerFunc(am.handler))
		db := openDB(t)
		logc := &fakeChannel{name: "log"}
		ctx := context.Background()
		p, err := New(ctx, Options{DB: db, Channels: []Channel{logc, AlertmanagerChannel{URL: srv.URL}}})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, 3))
		sevs := []string{"warning", "error", "critical"}
		open := map[string]string{} // instance -> severity
		t0 := time.Now()
		var silences []int64
		for step := 0; step < 120; step++ {
			at := t0.Add(time.Duration(step) * time.Second)
			inst := fmt.Sprint("i", rng.IntN(4))
			switch r := rng.IntN(10); {
			case r < 3:
				sev := sevs[rng.IntN(3)]
				state := engine.Firing
				if _, ok := open[inst]; ok {
					state = engine.Escalated
				}
				open[inst] = sev
				p.Handle(ctx, alertDecision("q", inst, state, sev, at))
			case r < 5:
				if sev, ok := open[inst]; ok {
					p.Handle(ctx, alertDecision("q", inst, engine.Resolved, sev, at))
					delete(open, inst)
				}
			case r < 6:
				s, _ := p.Silence(ctx, Silence{Matchers: map[string]string{"instance": inst}, Starts: t0, Ends: t0.Add(time.Hour)})
				silences = append(silences, s.ID)
			case r < 7 && len(silences) > 0:
				p.Expire(ctx, silences[0])
				silences = silences[1:]
			case r < 8:
				var id int64
				db.Get(ctx, &id, `SELECT coalesce(max(id), 0) FROM alerts WHERE instance = ?`, inst)
				p.Ack(ctx, id, "ops")
			case r < 9:
				am.mu.Lock()
				am.fail = rng.IntN(2) == 0
				am.mu.Unlock()
				p.Deliver(ctx)
			default:
				p.refreshed = map[string]time.Time{}
				p.refresh(ctx)
			}
		}
		for inst, sev := range open {
			p.Handle(ctx, alertDecision("q", inst, engine.Resolved, sev, t0.Add(time.Hour)))
		}
		am.mu.Lock()
		am.fail = false
		am.mu.Unlock()
		db.Exec(ctx, `UPDATE alert_outbox SET next_attempt = 0`)
		p.Deliver(ctx)
		last := map[string]string{}
		for _, batch := range logc.got {
			for _, a := range batch {
				last[a.Instance] = a.State
			}
		}
		for inst, s := range last {
			if s != "resolved" {
				t.Fatalf("seed %d: the log channel's last word on %s is %s", seed, inst, s)
			}
		}
		if act := am.active(time.Now()); len(act) > 0 {
			t.Fatalf("seed %d: still active in Alertmanager after every incident resolved: %v", seed, act)
		}
		srv.Close()
	}
}

// Issue 14, item 5: the open incidents are re-sent to Alertmanager with an end ahead;
// a resolved or held one is not.
func TestAlertmanagerRefreshesOpenIncidents(t *testing.T) {
	t.Parallel()
	am := &amState{ends: map[string]time.Time{}}
	srv := httptest.NewServer(http.HandlerFunc(am.handler))
	defer srv.Close()
	db := openDB(t)
	ctx := context.Background()
	p, _ := New(ctx, Options{DB: db, Channels: []Channel{AlertmanagerChannel{URL: srv.URL}}})
	now := time.Now()
	p.Handle(ctx, alertDecision("q", "a", engine.Firing, "error", now))
	p.Handle(ctx, alertDecision("q", "b", engine.Firing, "error", now))
	p.Handle(ctx, alertDecision("q", "b", engine.Resolved, "error", now))
	p.Deliver(ctx)
	before := am.posted
	p.refresh(ctx) // due: never refreshed
	if am.posted != before+1 || len(am.active(time.Now())) != 1 || !strings.Contains(am.active(time.Now())[0], "remedy_incident=a") {
		t.Fatalf("refresh posted %d, active %v", am.posted-before, am.active(time.Now()))
	}
	p.refresh(ctx) // not due again for a minute
	if am.posted != before+1 {
		t.Fatal("refreshed twice within the period")
	}
	// A restarted pipeline knows the open incident and where it went.
	p2, _ := New(ctx, Options{DB: db, Channels: []Channel{AlertmanagerChannel{URL: srv.URL}}})
	p2.Handle(ctx, alertDecision("q", "a", engine.Resolved, "error", time.Now()))
	p2.Deliver(ctx)
	if act := am.active(time.Now()); len(act) != 0 {
		t.Fatalf("after resolution across a restart: active %v", act)
	}
}

// Issue 14, item 11: a critical alert queued behind a flood of warnings on a channel
// limited per minute goes out with the next delivery the limit allows, and on a channel
// people read the flood folds into a summary instead of minutes of messages.
func TestCriticalFirstAndFloodFolds(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		hook, wa := &fakeChannel{name: "webhook"}, &fakeChannel{name: "whatsapp"}
		ctx := context.Background()
		p, _ := New(ctx, Options{DB: db, Channels: []Channel{hook, wa}, PerMinute: map[string]int{"webhook": 10, "whatsapp": 10}})
		now := time.Now()
		for i := 0; i < 300; i++ {
			p.Handle(ctx, alertDecision("tenant-slow", fmt.Sprintf("t%03d", i), engine.Firing, "warning", now))
		}
		p.Deliver(ctx) // the webhook's minute is spent on the first 100 warnings
		p.Handle(ctx, alertDecision("db-down", "", engine.Firing, "critical", now.Add(time.Second)))
		time.Sleep(6 * time.Second) // one more delivery allowed
		p.Deliver(ctx)
		last := hook.got[len(hook.got)-1]
		if last[0].Policy != "db-down" {
			t.Fatalf("webhook: the next delivery after the critical began with %s", last[0].Policy)
		}
		// WhatsApp: ten messages in the first minute, the tenth a summary of the rest;
		// the critical (queued later) went first in the delivery after it.
		if len(wa.got) != 11 || !strings.Contains(wa.got[9][10].Summary, "200 more alerts, folded") {
			t.Fatalf("whatsapp: %d messages; tenth %+v", len(wa.got), wa.got[min(9, len(wa.got)-1)])
		}
		if wa.got[10][0].Policy != "db-down" {
			t.Fatalf("whatsapp: critical not first")
		}
		var n int
		db.Get(ctx, &n, `SELECT count(*) FROM alert_outbox WHERE delivered = 0 AND channel = 'whatsapp'`)
		if n != 0 {
			t.Fatalf("%d still waiting for whatsapp", n)
		}
	})
}

var _ = store.RemedySchema
