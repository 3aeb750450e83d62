package engine

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Issue 14, item 1: an instant policy fires and resolves on each event; the engine's
// firing count, which the badge and the admin chat show, must not grow with it.
func TestFiringCountIgnoresInstantPolicies(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: burst
    on: [DB_BUSY]
  - name: svc
    on: [SERVICE_DOWN]
    resolve_on: [SERVICE_UP]
`)
	for i := 0; i < 30; i++ {
		h.event(time.Duration(i)*time.Second, "DB_BUSY")
	}
	if n := h.e.Firing(); n != 0 {
		t.Fatalf("after 30 instant firings: Firing() = %d, want 0", n)
	}
	h.event(time.Minute, "SERVICE_DOWN")
	if n := h.e.Firing(); n != 1 {
		t.Fatalf("Firing() = %d, want 1", n)
	}
	h.event(2*time.Minute, "SERVICE_UP")
	if n := h.e.Firing(); n != 0 {
		t.Fatalf("after resolution Firing() = %d, want 0", n)
	}
	for _, c := range h.e.Counts() {
		if c.Firing != 0 {
			t.Fatalf("counts %+v", h.e.Counts())
		}
	}
}

// Issue 14, item 4: with many instances whose timers fall due together, the same inputs
// and seed give the same decisions in the same order (instances used to be walked in map
// order, so each run drew the jitter in another order).
func TestManyInstancesSameSeedSameDecisions(t *testing.T) {
	src := strings.Replace(ladderSrc, "jitter: none", "jitter: full", 1)
	run := func(seed uint64) string {
		h := &harness{t: t, e: New(loadSet(t, src), Options{Seed: seed})}
		var pending []Decision
		for i := 0; i < 40; i++ {
			pending = append(pending, pick(h.event(0, "SERVICE_DOWN", "service", fmt.Sprintf("s%02d", i)), KindAction)...)
		}
		// Every attempt fails at the same instant, three rounds: the retries are drawn
		// from one seeded source, in the engine's order.
		for round := 0; round < 3; round++ {
			at := time.Duration(round+1) * 20 * time.Second
			for _, a := range pending {
				h.result(a, CodeActionFailed, at)
			}
			h.until(at + 10*time.Second)
			// The attempts decided since: the next round's.
			pending = pending[:0]
			for _, a := range pick(h.log, KindAction) {
				if !a.Time.Before(t0.Add(at)) {
					pending = append(pending, a)
				}
			}
		}
		return h.dump()
	}
	for seed := uint64(1); seed <= 6; seed++ {
		a := run(seed)
		for i := 0; i < 3; i++ {
			if b := run(seed); a != b {
				t.Fatalf("seed %d: two runs decided differently:\n%s\n---\n%s", seed, a, b)
			}
		}
	}
}

// Issue 14, item 2: a reload that changes or removes a policy ends its notified
// incidents with a resolution that says why; an unchanged policy keeps them firing.
func TestReloadResolvesNotifiedIncidents(t *testing.T) {
	src := `
policies:
  - name: keep
    on: [SERVICE_DOWN]
    resolve_on: [SERVICE_UP]
  - name: change
    on: [QUEUE_STUCK]
    resolve_on: [QUEUE_OK]
    group_by: [queue]
  - name: drop
    on: [DB_FULL]
    resolve_on: [DB_OK]
`
	h := newHarness(t, src)
	h.event(0, "SERVICE_DOWN")
	h.event(0, "QUEUE_STUCK", "queue", "b")
	h.event(0, "QUEUE_STUCK", "queue", "a")
	h.event(0, "DB_FULL")
	next := strings.Replace(src, "group_by: [queue]", "group_by: [queue]\n    severity: error", 1)
	next = next[:strings.Index(next, "  - name: drop")]
	diff := h.e.Swap(loadSet(t, next))
	var got []string
	for _, d := range diff.Decisions {
		if d.Kind == KindAlert {
			got = append(got, d.Policy+"{"+d.Instance+"} "+string(d.State)+": "+d.Reason.Text)
		}
	}
	want := []string{
		"change{a} resolved: policy changed by a reload; its incidents start over",
		"change{b} resolved: policy changed by a reload; its incidents start over",
		"drop{} resolved: policy removed by a reload",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("reload resolutions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if h.e.Firing() != 1 {
		t.Fatalf("firing after reload %d, want 1 (keep)", h.e.Firing())
	}
}

// Issue 14, item 8: fault, "resolved", fault again 2 s later: the re-fire is delivered
// although the rate limit's bucket is empty — the operator's last word must be true.
func TestRefireAfterResolvedIsNotHeld(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: db
    on: [DB_CONN_LOST]
    resolve_on: [DB_OK]
    severity: critical
`)
	h.event(0, "DB_CONN_LOST")
	h.event(time.Second, "DB_OK")
	out := h.event(3*time.Second, "DB_CONN_LOST")
	if got := states(out); got != "firing alert:firing" {
		t.Fatalf("re-fire after a delivered resolved: %q, want it notified\n%s", got, h.dump())
	}
	// A firing that follows a firing is still rate limited.
	h.event(4*time.Second, "DB_OK")
	h.event(5*time.Second, "DB_CONN_LOST")
	h.event(6*time.Second, "DB_CONN_LOST")
}

// Issue 14, item 2: a firing incident held by its rate limit is told when the window
// passes, not only if something else happens to be notified later.
func TestRateLimitWindowTellsHeldFiring(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: q
    on: [WA_DISCONNECTED]
    resolve_on: [WA_CONNECTED]
    alert: {rate_limit: {count: 1, per: 5m}}
    actions: [{do: RECONNECT_WA, attempts: 5, timeout: 5s, backoff: {initial: 1h, max: 1h, jitter: none}}]
    escalate: {after_failures: 1, severity: warning}
`)
	a := pick(h.event(0, "WA_DISCONNECTED"), KindAction)[0]
	// The escalation is no worse than the firing told a second ago: held.
	if got := states(pick(h.result(a, CodeActionFailed, time.Second), KindAlert)); got != "" {
		t.Fatalf("escalation within the window: %q, want held", got)
	}
	h.until(10 * time.Minute)
	alerts := pick(h.log, KindAlert)
	if len(alerts) != 2 || alerts[1].State != Escalated || alerts[1].Alert.Suppressed != 1 || !alerts[1].Time.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("want the held escalation told at 5m (+1 suppressed):\n%s", h.dump())
	}
}

// Issue 14, item 12: instances that are over and hold no timer are forgotten; a
// policy's instances are bounded by max_instances (one overflow instance takes the rest,
// once, with an InstanceLimit decision); and an unrelated input does no work in
// proportion to the instances kept.
func TestInstancesAreCollectedAndBounded(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: user
    on: [USER_SESSION_ERROR]
    group_by: [user]
    max_instances: 100
    alert: {rate_limit: {count: 1, per: 5m}}
  - name: canary
    on: [CANARY]
`)
	for i := 0; i < 1000; i++ {
		h.event(time.Duration(i)*time.Millisecond, "USER_SESSION_ERROR", "user", fmt.Sprint(i))
	}
	c := h.e.Counts()[0]
	if c.Instances != 101 {
		t.Fatalf("instances kept %d, want 100 + the overflow one", c.Instances)
	}
	limits := 0
	for _, d := range h.log {
		if d.State == InstanceLimit {
			limits++
		}
	}
	if limits != 1 {
		t.Fatalf("InstanceLimit decisions: %d, want 1", limits)
	}
	before := h.e.Stats().TimerVisits
	h.event(2*time.Second, "CANARY")
	if v := h.e.Stats().TimerVisits - before; v != 0 {
		t.Fatalf("an unrelated event visited %d instances", v)
	}
	// When their rate-limit buckets are full again (5 m) they hold nothing: forgotten.
	// The overflow instance holds occurrences its rate limit held back, to be told with
	// its next notification; it stays until then.
	h.until(11 * time.Minute)
	if c := h.e.Counts()[0]; c.Instances != 1 {
		t.Fatalf("instances kept after 11m: %d, want the overflow one\n", c.Instances)
	}
	if d := h.e.NextDeadline(); !d.IsZero() {
		t.Fatalf("deadline left %v", d)
	}
	out := h.event(12*time.Minute, "USER_SESSION_ERROR", "user", "x")
	if a := pick(out, KindAlert); len(a) != 1 || a[0].Instance != "x" {
		t.Fatalf("a new user after the collection: %s", states(out))
	}
}

// Issues 14, items 2, 5 and 8, as an invariant over random sequences: for every
// incident, (a) while it fires, the last notification delivered is not "resolved"
// unless it is flapping (its notifications are held, and the last word delivered said
// so: flap.go; TestFlapNotificationsBoundedAndLastWordTrue checks the word after it);
// (b) once everything resolves, every incident that was notified firing got a
// resolution as its last word — through flaps, escalations, rate limits, failed and
// succeeded attempts, and reloads that change or remove the policy.
func TestEveryNotifiedFiringGetsItsEnd(t *testing.T) {
	base := `
policies:
  - name: svc
    on: [SERVICE_DOWN]
    group_by: [service]
    resolve_on: [SERVICE_UP]
    severity: warning
    alert: {rate_limit: {count: 1, per: 2m}}
    actions:
      - do: RESTART_SERVICE
        with: {service: x}
        attempts: 3
        timeout: 5s
        backoff: {initial: 2s, max: 30s, jitter: full}
    escalate: {after_failures: 2, severity: critical}
  - name: q
    on: [QUEUE_STUCK]
    group_by: [queue]
    resolve_on: [QUEUE_OK]
    keep_firing_for: 10s
    alert: {rate_limit: {count: 2, per: 5m}, repeat: 3m}
`
	variants := []string{base, strings.Replace(base, "severity: warning", "severity: error", 1),
		base[:strings.Index(base, "  - name: q")]}
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		h := &harness{t: t, e: New(loadSet(t, base), Options{Seed: seed})}
		last := map[string]State{} // policy{instance} -> last alert state
		note := func(ds []Decision) {
			for _, d := range ds {
				if d.Kind == KindAlert {
					last[d.Policy+"{"+d.Instance+"}"] = d.State
				}
			}
		}
		check := func(step int) {
			for _, st := range h.e.Status() {
				for _, in := range st.Instances {
					if in.State == Firing && in.FlappingSince == nil && last[st.Name+"{"+in.Key+"}"] == Resolved {
						t.Fatalf("seed %d step %d: %s{%s} fires, but the last word was resolved\n%s", seed, step, st.Name, in.Key, h.dump())
					}
				}
			}
		}
		at := time.Duration(0)
		var inflight []Decision
		for step := 0; step < 200; step++ {
			at += time.Duration(rng.IntN(20000)) * time.Millisecond
			before := len(h.log)
			switch r := rng.IntN(10); {
			case r < 3:
				h.event(at, "SERVICE_DOWN", "service", fmt.Sprint("s", rng.IntN(3)))
			case r < 5:
				h.event(at, "SERVICE_UP", "service", fmt.Sprint("s", rng.IntN(3)))
			case r < 6:
				h.event(at, "QUEUE_STUCK", "queue", fmt.Sprint("q", rng.IntN(2)))
			case r < 7:
				h.event(at, "QUEUE_OK", "queue", fmt.Sprint("q", rng.IntN(2)))
			case r < 9 && len(inflight) > 0:
				i := rng.IntN(len(inflight))
				code := CodeActionFailed
				if rng.IntN(3) == 0 {
					code = CodeActionSucceeded
				}
				h.result(inflight[i], code, at)
				inflight = append(inflight[:i], inflight[i+1:]...)
			case r == 9 && rng.IntN(4) == 0:
				diff := h.e.Swap(loadSet(t, variants[rng.IntN(len(variants))]))
				h.log = append(h.log, diff.Decisions...)
			default:
				h.until(at)
			}
			note(h.log[before:])
			for _, d := range h.log[before:] {
				if d.Kind == KindAction && d.Action.Skipped == "" {
					inflight = append(inflight, d)
				}
			}
			check(step)
		}
		// Everything ends: the set comes back to base (so both policies exist), every
		// fault clears, and time runs on.
		before := len(h.log)
		diff := h.e.Swap(loadSet(t, base))
		h.log = append(h.log, diff.Decisions...)
		for i := 0; i < 3; i++ {
			h.event(at+time.Second, "SERVICE_UP", "service", fmt.Sprint("s", i))
		}
		for i := 0; i < 2; i++ {
			h.event(at+time.Second, "QUEUE_OK", "queue", fmt.Sprint("q", i))
		}
		h.until(at + time.Hour)
		note(h.log[before:])
		for k, s := range last {
			if s != Resolved {
				t.Fatalf("seed %d: %s was last told %s, and never its end\n%s", seed, k, s, h.dump())
			}
		}
		if h.e.Firing() != 0 {
			t.Fatalf("seed %d: %d still firing", seed, h.e.Firing())
		}
	}
}

// Issue 14, item 10 (field case b2-08): one input stamped 4 minutes ahead by a client
// must not move the engine's clock: a `for: 2m` sample policy does not fire 2 s after
// its condition became true, and a `for: 2s` event policy still fires 2 s after its
// event. The daemon passes every API input through NotAfter with its own clock.
func TestInputAheadDoesNotMoveTheClock(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: backlog-high
    on: [sample]
    when: 'metrics.backlog > 100'
    for: 2m
  - name: worker-stuck
    on: [WORKER_STUCK]
    resolve_on: [WORKER_OK]
    for: 2s
`)
	wall := t0 // this machine's clock as the daemon reads it
	h.feed(NotAfter(Sample{Time: wall, Values: map[string]float64{"backlog": 500}}, wall))
	wall = wall.Add(time.Second)
	out := h.feed(NotAfter(Event{Time: wall.Add(4 * time.Minute), Code: "BOT_HEARTBEAT"}, wall))
	if len(out) != 0 || !h.e.Now().Equal(wall) {
		t.Fatalf("a heartbeat 4 min ahead moved the clock to %v (decisions %s)", h.e.Now(), states(out))
	}
	h.feed(NotAfter(Event{Time: wall, Code: "WORKER_STUCK"}, wall))
	h.until(wall.Sub(t0) + 2*time.Second)
	if st := h.e.Status(); st[0].Instances[0].State != Pending || st[1].Instances[0].State != Firing {
		t.Fatalf("states 3 s in: backlog-high %s (want pending), worker-stuck %s (want firing)\n%s",
			st[0].Instances[0].State, st[1].Instances[0].State, h.dump())
	}
	if in := NotAfter(&Event{Time: wall.Add(time.Hour)}, wall); !in.At().Equal(wall) {
		t.Fatal("pointer event not clamped")
	}
}

// Issue 14, item 9: inhibition is policy. While the source fires, the targets'
// notifications are recorded as held (with equal: only for the same label values);
// when it resolves, each target still firing is told then.
func TestInhibitsHoldsAndReleases(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: db-down
    on: [DB_CONN_LOST]
    group_by: [db]
    resolve_on: [DB_OK]
    severity: critical
    inhibits:
      - policies: [q-*]
        equal: [db]
  - name: q-stuck
    on: [QUEUE_STUCK]
    group_by: [queue, db]
    resolve_on: [QUEUE_OK]
`)
	h.event(0, "DB_CONN_LOST", "db", "main")
	held := pick(h.event(time.Second, "QUEUE_STUCK", "queue", "in", "db", "main"), KindAlert)
	if len(held) != 1 || held[0].Alert.Held != "inhibited by db-down" {
		t.Fatalf("q-stuck on the failed db: %+v, want held", held)
	}
	st := h.e.Status()
	if strings.Join(st[0].Inhibits, ";") != "q-* where equal db" || st[1].Instances[0].InhibitedBy != "db-down" {
		t.Fatalf("rule view: inhibits %q, instance %+v", st[0].Inhibits, st[1].Instances[0])
	}
	other := pick(h.event(2*time.Second, "QUEUE_STUCK", "queue", "out", "db", "other"), KindAlert)
	if len(other) != 1 || other[0].Alert.Held != "" {
		t.Fatalf("q-stuck on another db: %+v, want sent (equal: [db])", other)
	}
	out := pick(h.event(time.Minute, "DB_OK", "db", "main"), KindAlert)
	if len(out) != 2 || out[0].Policy != "db-down" || out[0].State != Resolved ||
		out[1].Policy != "q-stuck" || out[1].Instance != "in,main" || out[1].Alert.Held != "" || out[1].State != Firing {
		t.Fatalf("after db-down resolved: %s", states(out))
	}
	// Resolving a target whose firing was only held tells nobody.
	h2 := newHarness(t, `
policies:
  - name: src
    on: [A]
    resolve_on: [A_OK]
    inhibits: [{policies: [tgt]}]
  - name: tgt
    on: [B]
    resolve_on: [B_OK]
`)
	h2.event(0, "A")
	h2.event(time.Second, "B")
	// (It is recorded as held, so the pipeline closes the incident it was given.)
	if got := pick(h2.event(2*time.Second, "B_OK"), KindAlert); len(got) != 1 || got[0].Alert.Held == "" {
		t.Fatalf("resolution of a never-sent firing: %q, want one, held", states(got))
	}
}

// The timer heap stays in proportion to the instances, however many inputs move one
// instance's deadline.
func TestTimerHeapStaysSmall(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: canary
    on: [CANARY]
`)
	for i := 0; i < 100_000; i++ {
		h.e.Process(Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Code: "CANARY"})
	}
	h.e.NextDeadline()
	if n := len(h.e.timers); n > 2048 {
		t.Fatalf("%d heap entries for one instance", n)
	}
}
