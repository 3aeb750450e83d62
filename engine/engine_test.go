package engine

import (
	"strings"
	"testing"
	"time"
)

func TestInstantPolicyFiresEachEventWithRateLimit(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: flap
    on: [WA_DISCONNECTED]
    when: 'count("WA_DISCONNECTED", "10m") >= 2'
    alert: {rate_limit: {count: 1, per: 10m}}
`)
	if got := states(h.event(0, "WA_DISCONNECTED")); got != "" {
		t.Fatalf("first event: %q, want nothing (count is 1)", got)
	}
	if got := states(h.event(time.Minute, "WA_DISCONNECTED")); got != "firing alert:firing" {
		t.Fatalf("second event: %q", got)
	}
	for i := 2; i < 5; i++ {
		if got := states(h.event(time.Duration(i)*time.Minute, "WA_DISCONNECTED")); got != "firing" {
			t.Fatalf("event %d: %q, want firing without an alert (rate limited)", i, got)
		}
	}
	out := h.event(12*time.Minute, "WA_DISCONNECTED")
	alerts := pick(out, KindAlert)
	if len(alerts) != 1 || alerts[0].Alert.Suppressed != 3 {
		t.Fatalf("after the bucket refills: %v, want one alert with +3 suppressed\n%s", states(out), h.dump())
	}
	if h.e.Stats().Suppressed != 3 {
		t.Fatalf("stats suppressed %d", h.e.Stats().Suppressed)
	}
}

func TestEventForWaitsAndRechecks(t *testing.T) {
	src := `
policies:
  - name: logged-out
    on: [WA_LOGGED_OUT]
    resolve_on: [WA_PAIR_SUCCESS]
    alert: {notify_on: []}
  - name: reconnect
    on: [WA_DISCONNECTED]
    when: '!firing("logged-out")'
    for: 2s
    resolve_on: [WA_CONNECTED]
    actions: [{do: RECONNECT_WA, timeout: 10s}]
    alert: {notify_on: []}
`
	t.Run("fires when for runs out", func(t *testing.T) {
		h := newHarness(t, src)
		if got := states(h.event(0, "WA_DISCONNECTED")); got != "pending" {
			t.Fatalf("got %q", got)
		}
		if d := h.e.NextDeadline(); !d.Equal(t0.Add(2 * time.Second)) {
			t.Fatalf("NextDeadline %v", d)
		}
		out := h.feed(Tick{Time: t0.Add(2 * time.Second)})
		if got := states(out); got != "firing RECONNECT_WA#1.1" {
			t.Fatalf("at 2s: %q", got)
		}
		if !out[1].Time.Equal(t0.Add(2 * time.Second)) {
			t.Fatalf("attempt at %v", out[1].Time)
		}
	})
	t.Run("a late terminal event wins", func(t *testing.T) {
		h := newHarness(t, src)
		h.event(0, "WA_DISCONNECTED")
		h.event(500*time.Millisecond, "WA_LOGGED_OUT")
		out := h.feed(Tick{Time: t0.Add(2 * time.Second)})
		if got := states(out); got != "inactive" {
			t.Fatalf("got %q, want inactive (no reconnect after logout)\n%s", got, h.dump())
		}
	})
	t.Run("resolve_on cancels pending", func(t *testing.T) {
		h := newHarness(t, src)
		h.event(0, "WA_DISCONNECTED")
		if got := states(h.event(time.Second, "WA_CONNECTED")); got != "inactive" {
			t.Fatalf("got %q", got)
		}
		if d := h.e.NextDeadline(); !d.IsZero() {
			t.Fatalf("deadline left: %v", d)
		}
	})
}

func TestSamplePolicyForAndKeepFiring(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: cpu
    on: [sample]
    when: 'metrics.cpu_percent > 90'
    for: 30s
    keep_firing_for: 20s
    alert: {notify_on: [firing, resolved], rate_limit: {count: 10, per: 1m}}
`)
	if got := states(h.sample(0, "cpu_percent", 95.0)); got != "pending" {
		t.Fatalf("0s: %q", got)
	}
	if got := states(h.sample(10*time.Second, "cpu_percent", 50.0)); got != "inactive" {
		t.Fatalf("dip before for: %q", got)
	}
	h.sample(20*time.Second, "cpu_percent", 95.0)
	// No further samples: a tick at the deadline fires it, on time.
	out := h.feed(Tick{Time: t0.Add(50 * time.Second)})
	if got := states(out); got != "firing alert:firing" || !out[0].Time.Equal(t0.Add(50*time.Second)) {
		t.Fatalf("50s: %q at %v", got, out[0].Time)
	}
	if got := states(h.sample(60*time.Second, "cpu_percent", 10.0)); got != "" {
		t.Fatalf("clear starts keep_firing_for, got %q", got)
	}
	if got := states(h.sample(70*time.Second, "cpu_percent", 99.0)); got != "" {
		t.Fatalf("true again cancels the clear, got %q", got)
	}
	h.sample(80*time.Second, "cpu_percent", 10.0)
	h.until(99 * time.Second)
	if got := states(pick(h.log, KindState)); !strings.HasSuffix(got, "firing") {
		t.Fatalf("resolved too early: %s", h.dump())
	}
	out = h.feed(Tick{Time: t0.Add(100 * time.Second)})
	if got := states(out); got != "resolved alert:resolved" {
		t.Fatalf("100s: %q\n%s", got, h.dump())
	}
}

const ladderSrc = `
policies:
  - name: svc
    on: [SERVICE_DOWN]
    group_by: [service]
    severity: warning
    actions:
      - do: RESTART_SERVICE
        with: {service: '{{ .labels.service }}'}
        timeout: 10s
        attempts: 3
        backoff: {initial: 2s, max: 5s, multiplier: 2, jitter: none}
      - do: EXEC
        with: {command: /usr/local/bin/fix}
        timeout: 10s
        attempts: 1
    escalate: {after_failures: 2, severity: error}
    alert: {notify_on: [firing, escalated, resolved], rate_limit: {count: 100, per: 1m}}
`

func TestLadderBackoffEscalationExhaustion(t *testing.T) {
	h := newHarness(t, ladderSrc)
	out := h.event(0, "SERVICE_DOWN", "service", "bot")
	acts := pick(out, KindAction)
	if len(acts) != 1 || acts[0].Action.Params["service"] != "bot" || acts[0].Instance != "bot" {
		t.Fatalf("first attempt: %v", states(out))
	}
	// Attempt 1 fails at 1s: attempt 2 after 2s (initial), at 3s.
	h.result(acts[0], CodeActionFailed, time.Second)
	if d := h.e.NextDeadline(); !d.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("next attempt at %v, want +3s", d)
	}
	out = h.feed(Tick{Time: t0.Add(3 * time.Second)})
	a2 := pick(out, KindAction)[0]
	if a2.Action.Attempt != 2 {
		t.Fatalf("attempt %d", a2.Action.Attempt)
	}
	// Fails at 4s: second consecutive failure escalates; next after 4s (2×2) at 8s.
	out = h.result(a2, CodeActionTimeout, 4*time.Second)
	if got := states(out); got != "escalated alert:escalated" {
		t.Fatalf("escalation: %q", got)
	}
	if out[1].Severity != "error" {
		t.Fatalf("escalated severity %s", out[1].Severity)
	}
	if d := h.e.NextDeadline(); !d.Equal(t0.Add(8 * time.Second)) {
		t.Fatalf("next attempt at %v, want +8s", d)
	}
	a3 := pick(h.feed(Tick{Time: t0.Add(8 * time.Second)}), KindAction)[0]
	// Third failure ends step 1; step 2 starts at once.
	out = h.result(a3, CodeActionFailed, 9*time.Second)
	if got := states(out); got != "EXEC#2.1" {
		t.Fatalf("step 2: %q", got)
	}
	out = h.result(pick(out, KindAction)[0], CodeActionFailed, 10*time.Second)
	if got := states(out); got != "exhausted alert:escalated" {
		t.Fatalf("exhausted: %q\n%s", got, h.dump())
	}
	if out[1].Severity != "critical" {
		t.Fatalf("exhausted severity %s", out[1].Severity)
	}
	// No attempt is scheduled after exhaustion, only the check that the fault is gone:
	// the last step's timeout (10s) without a SERVICE_DOWN.
	if d := h.e.NextDeadline(); !d.Equal(t0.Add(20 * time.Second)) {
		t.Fatalf("only the re-check should be scheduled after exhaustion, got %v", d)
	}
	if got := states(h.event(15*time.Second, "SERVICE_DOWN", "service", "bot")); got != "" {
		t.Fatalf("a report while exhausted: %q", got)
	}
	if got := states(h.feed(Tick{Time: t0.Add(20 * time.Second)})); got != "" {
		t.Fatalf("resolved 5s after a report of the fault: %q", got)
	}
	if got := states(h.feed(Tick{Time: t0.Add(25 * time.Second)})); got != "resolved alert:resolved" {
		t.Fatalf("not resolved after 10s without a report: %q", got)
	}
}

func TestBackoffCapsAtMax(t *testing.T) {
	h := newHarness(t, ladderSrc)
	a := pick(h.event(0, "SERVICE_DOWN", "service", "bot"), KindAction)[0]
	now := time.Duration(0)
	var gaps []time.Duration
	for i := 0; i < 2; i++ {
		h.result(a, CodeActionFailed, now)
		next := h.e.NextDeadline().Sub(t0)
		gaps = append(gaps, next-now)
		now = next
		a = pick(h.feed(Tick{Time: t0.Add(now)}), KindAction)[0]
	}
	if gaps[0] != 2*time.Second || gaps[1] != 4*time.Second {
		t.Fatalf("gaps %v", gaps)
	}
	// With a max of 5s the third gap would be 8s uncapped.
	h2 := newHarness(t, strings.Replace(ladderSrc, "attempts: 3", "attempts: 5", 1))
	a = pick(h2.event(0, "SERVICE_DOWN", "service", "bot"), KindAction)[0]
	now = 0
	for i := 0; i < 4; i++ {
		h2.result(a, CodeActionFailed, now)
		next := h2.e.NextDeadline().Sub(t0)
		if i == 3 && next-now != 5*time.Second {
			t.Fatalf("gap %d = %v, want the 5s max", i, next-now)
		}
		now = next
		a = pick(h2.feed(Tick{Time: t0.Add(now)}), KindAction)[0]
	}
}

func TestSuccessResolvesOnceTheFaultIsSeenGone(t *testing.T) {
	h := newHarness(t, ladderSrc)
	a := pick(h.event(0, "SERVICE_DOWN", "service", "bot"), KindAction)[0]
	if got := states(h.result(a, CodeActionSucceeded, time.Second)); got != "provisional" {
		t.Fatalf("got %q, want a provisional success (the incident stays firing)", got)
	}
	// No SERVICE_DOWN for the step's timeout (10s) after the success: the fault is gone.
	if d := h.e.NextDeadline(); !d.Equal(t0.Add(11 * time.Second)) {
		t.Fatalf("re-check at %v, want +11s", d)
	}
	if got := states(h.feed(Tick{Time: t0.Add(11 * time.Second)})); got != "resolved alert:resolved" {
		t.Fatalf("got %q (firing was notified, so resolved is too)", got)
	}

	h = newHarness(t, `
policies:
  - name: wa
    on: [WA_DISCONNECTED]
    resolve_on: [WA_CONNECTED]
    actions: [{do: RECONNECT_WA, timeout: 5s, attempts: 3, backoff: {initial: 10s, max: 1m, jitter: none}}]
    alert: {notify_on: []}
`)
	a = pick(h.event(0, "WA_DISCONNECTED"), KindAction)[0]
	if got := states(h.result(a, CodeActionSucceeded, time.Second)); got != "provisional" {
		t.Fatalf("success with resolve_on: %q, want still firing", got)
	}
	// The resolving event has the step's timeout (5s) to arrive.
	if d := h.e.NextDeadline(); !d.Equal(t0.Add(6 * time.Second)) {
		t.Fatalf("wait for resolve_on until %v, want +6s", d)
	}
	if got := states(h.event(5*time.Second, "WA_CONNECTED")); got != "resolved" {
		t.Fatalf("resolve_on: %q", got)
	}
	if d := h.e.NextDeadline(); !d.IsZero() {
		t.Fatalf("attempt still scheduled after resolve: %v", d)
	}
}

func TestBreakerPausesAndResumes(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: svc
    on: [SERVICE_DOWN]
    actions: [{do: RESTART_SERVICE, with: {service: bot}, timeout: 5s, attempts: 10, backoff: {initial: 1s, max: 1s, jitter: none}}]
    breaker: {failures: 3, within: 1m, open_for: 10m}
    alert: {notify_on: [firing], rate_limit: {count: 100, per: 1m}}
`)
	a := pick(h.event(0, "SERVICE_DOWN"), KindAction)[0]
	for i := 1; i <= 3; i++ {
		out := h.result(a, CodeActionFailed, time.Duration(i)*time.Second)
		if i == 3 {
			if got := states(out); got != "breaker_open alert:escalated" {
				t.Fatalf("third failure: %q", got)
			}
			break
		}
		a = pick(h.feed(Tick{Time: h.e.NextDeadline()}), KindAction)[0]
	}
	out := h.feed(Tick{Time: h.e.NextDeadline()})
	if got := states(out); got != "RESTART_SERVICE#1.4(skipped)" {
		t.Fatalf("attempt while open: %q", got)
	}
	if !strings.Contains(out[0].Action.Skipped, "breaker open until") {
		t.Fatalf("skip reason %q", out[0].Action.Skipped)
	}
	// Nothing else happens until the breaker closes, then the attempt runs.
	if d := h.e.NextDeadline(); !d.Equal(t0.Add(3*time.Second + 10*time.Minute)) {
		t.Fatalf("next deadline %v", d)
	}
	out = h.feed(Tick{Time: h.e.NextDeadline()})
	if got := states(out); got != "breaker_closed RESTART_SERVICE#1.4" {
		t.Fatalf("after open_for: %q", got)
	}
}

func TestStableForKeepsLadderPlace(t *testing.T) {
	src := `
policies:
  - name: wa
    on: [WA_DISCONNECTED]
    resolve_on: [WA_CONNECTED]
    stable_for: 60s
    actions: [{do: RECONNECT_WA, timeout: 5s, attempts: 10, backoff: {initial: 4s, max: 1m, jitter: none}}]
    alert: {notify_on: []}
`
	h := newHarness(t, src)
	a := pick(h.event(0, "WA_DISCONNECTED"), KindAction)[0]
	h.result(a, CodeActionFailed, time.Second)
	// Attempt 2 runs 4s after the failure, at 5s; the connection comes back at 6s.
	a2 := pick(h.feed(Tick{Time: t0.Add(5 * time.Second)}), KindAction)
	if len(a2) != 1 || a2[0].Action.Attempt != 2 {
		t.Fatalf("attempt 2: %s", h.dump())
	}
	h.event(6*time.Second, "WA_CONNECTED")
	// It drops again at 8s, within stable_for: the ladder keeps its place, and attempt 3
	// waits the backoff after attempt 2 (4s×2 = 8s after 5s → 13s), not now.
	if out := pick(h.event(8*time.Second, "WA_DISCONNECTED"), KindAction); len(out) != 0 {
		t.Fatalf("flap within stable_for attempted at once: %s", h.dump())
	}
	out := pick(h.feed(Tick{Time: h.e.NextDeadline()}), KindAction)
	if len(out) != 1 || out[0].Action.Attempt != 3 || !out[0].Time.Equal(t0.Add(13*time.Second)) {
		t.Fatalf("attempt 3: %s", h.dump())
	}
	h.event(14*time.Second, "WA_CONNECTED")
	// Stable for more than 60s: the next incident starts over.
	out = h.event(2*time.Minute, "WA_DISCONNECTED")
	if acts := pick(out, KindAction); len(acts) != 1 || acts[0].Action.Attempt != 1 {
		t.Fatalf("after stable_for: %v", states(out))
	}
}

func TestDryRunRecordsWithoutWaiting(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: svc
    on: [SERVICE_DOWN]
    mode: dry_run
    actions: [{do: RESTART_SERVICE, with: {service: bot}, timeout: 5s, attempts: 3}]
`)
	out := h.event(0, "SERVICE_DOWN")
	acts := pick(out, KindAction)
	if len(acts) != 1 || acts[0].Action.Skipped != "dry_run" {
		t.Fatalf("dry run: %v", states(out))
	}
	if d := h.e.NextDeadline(); !d.IsZero() {
		t.Fatalf("dry run waits for a result: %v", d)
	}
}

func TestGroupByInstances(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: q
    on: [QUEUE_STUCK]
    group_by: [queue]
    resolve_on: [QUEUE_OK]
    alert: {notify_on: []}
`)
	h.event(0, "QUEUE_STUCK", "queue", "in")
	h.event(0, "QUEUE_STUCK", "queue", "out")
	if got := states(h.event(time.Second, "QUEUE_OK", "queue", "in")); got != "resolved" {
		t.Fatalf("resolve one: %q", got)
	}
	if !h.e.isFiring("q") {
		t.Fatal("the other instance was resolved too")
	}
	if got := states(h.event(2*time.Second, "QUEUE_OK")); got != "resolved" {
		t.Fatalf("resolve without labels resolves all: %q", got)
	}
	if h.e.isFiring("q") {
		t.Fatal("still firing")
	}
}

func TestRepeatWhileFiring(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: lo
    on: [WA_LOGGED_OUT]
    resolve_on: [WA_PAIR_SUCCESS]
    alert: {notify_on: [firing, resolved], repeat: 1h, rate_limit: {count: 1, per: 10m}}
`)
	h.event(0, "WA_LOGGED_OUT")
	h.until(3*time.Hour + time.Minute)
	var repeats int
	for _, d := range pick(h.log, KindAlert) {
		if d.Alert.Repeat {
			repeats++
		}
	}
	if repeats != 3 {
		t.Fatalf("%d repeats in 3h, want 3\n%s", repeats, h.dump())
	}
	// Resolved goes out even though the bucket is empty right after a repeat.
	h.event(3*time.Hour+2*time.Minute, "WA_PAIR_SUCCESS")
	last := h.log[len(h.log)-1]
	if last.Kind != KindAlert || last.State != Resolved {
		t.Fatalf("resolved held back: %s", h.dump())
	}
}

func TestLostResultTimesOut(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: svc
    on: [SERVICE_DOWN]
    actions: [{do: RESTART_SERVICE, with: {service: bot}, timeout: 5s, attempts: 2, backoff: {initial: 1s, max: 1s, jitter: none}}]
    alert: {notify_on: []}
`)
	h.event(0, "SERVICE_DOWN")
	// Timeout 5s + grace 10s: the engine stops waiting at 15s and retries 1s later.
	if d := h.e.NextDeadline(); !d.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("guard at %v", d)
	}
	h.until(16 * time.Second)
	acts := pick(h.log, KindAction)
	if len(acts) != 2 || !acts[1].Time.Equal(t0.Add(16*time.Second)) {
		t.Fatalf("%s", h.dump())
	}
}

func TestStaleResultIgnored(t *testing.T) {
	h := newHarness(t, ladderSrc)
	a := pick(h.event(0, "SERVICE_DOWN", "service", "bot"), KindAction)[0]
	stale := a
	stale.ID = 9999
	if got := states(h.result(stale, CodeActionSucceeded, time.Second)); got != "" {
		t.Fatalf("stale result acted on: %q", got)
	}
	if !h.e.isFiring("svc") {
		t.Fatal("resolved by a stale result")
	}
}

func TestTimersRunAtTheirOwnTime(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: p
    on: [WA_DISCONNECTED]
    for: 5s
    resolve_on: [WA_CONNECTED]
    alert: {notify_on: [firing]}
`)
	h.event(0, "WA_DISCONNECTED")
	// No tick at 5s: the next input, at 1m, still sees the firing happen at 5s.
	out := h.event(time.Minute, "DB_BUSY")
	if len(out) == 0 || !out[0].Time.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("%s", h.dump())
	}
}

func TestSeedMakesJitterReproducible(t *testing.T) {
	src := strings.Replace(ladderSrc, "jitter: none", "jitter: full", 1)
	run := func(seed uint64) []time.Time {
		h := &harness{t: t, e: New(loadSet(t, src), Options{Seed: seed})}
		a := pick(h.event(0, "SERVICE_DOWN", "service", "bot"), KindAction)[0]
		var times []time.Time
		for i := 0; i < 2; i++ {
			out := pick(h.result(a, CodeActionFailed, a.Time.Sub(t0)), KindAction)
			if len(out) == 0 { // zero jitter delay runs the attempt at once
				out = pick(h.feed(Tick{Time: h.e.NextDeadline()}), KindAction)
			}
			a = out[0]
			times = append(times, a.Time)
		}
		return times
	}
	a, b, c := run(7), run(7), run(8)
	if !a[0].Equal(b[0]) || !a[1].Equal(b[1]) {
		t.Fatalf("same seed, different schedule: %v %v", a, b)
	}
	if a[0].Equal(c[0]) && a[1].Equal(c[1]) {
		t.Fatalf("different seeds, same schedule: %v", a)
	}
}

func TestReasonCarriesValues(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: cpu
    on: [sample]
    when: 'metrics.cpu_percent > 90 && avg_over("cpu_percent", "1m") > 80'
`)
	out := h.sample(0, "cpu_percent", 97.0)
	if len(out) == 0 {
		t.Fatal("did not fire")
	}
	r := out[0].Reason.String()
	for _, want := range []string{"metrics.cpu_percent=97", `avg_over("cpu_percent", "1m")=97`, "[sample]"} {
		if !strings.Contains(r, want) {
			t.Errorf("reason %q lacks %q", r, want)
		}
	}
}

func TestSwapKeepsUnchangedState(t *testing.T) {
	src := `
policies:
  - name: keep
    on: [sample]
    when: 'metrics.cpu_percent > 90'
    for: 1m
  - name: change
    on: [sample]
    when: 'metrics.mem_percent > 90'
    for: 1m
`
	h := newHarness(t, src)
	h.sample(0, "cpu_percent", 95.0, "mem_percent", 95.0)
	diff := h.e.Swap(loadSet(t, strings.Replace(src, "mem_percent > 90", "mem_percent > 80", 1)+`
  - name: added
    on: [WA_CONNECTED]
`))
	if strings.Join(diff.Kept, ",") != "keep" || strings.Join(diff.Changed, ",") != "change" || strings.Join(diff.Added, ",") != "added" {
		t.Fatalf("diff %+v", diff)
	}
	// The kept policy's `for` keeps counting from 0s and fires at 1m; the changed one
	// starts over with the next sample.
	h.sample(30*time.Second, "cpu_percent", 95.0, "mem_percent", 95.0)
	out := h.feed(Tick{Time: t0.Add(time.Minute)})
	if len(out) == 0 || out[0].Policy != "keep" || out[0].State != Firing {
		t.Fatalf("kept policy lost its pending timer: %s", h.dump())
	}
	for _, d := range out {
		if d.Policy == "change" {
			t.Fatalf("changed policy kept its state: %s", d)
		}
	}
	diff = h.e.Swap(loadSet(t, `
policies:
  - name: added
    on: [WA_CONNECTED]
`))
	if strings.Join(diff.Removed, ",") != "change,keep" {
		t.Fatalf("removed %v", diff.Removed)
	}
}

func TestIdleEngineHasNoDeadline(t *testing.T) {
	h := newHarness(t, ladderSrc)
	if d := h.e.NextDeadline(); !d.IsZero() {
		t.Fatalf("deadline %v", d)
	}
	h.event(0, "UNRELATED")
	if d := h.e.NextDeadline(); !d.IsZero() {
		t.Fatalf("deadline %v", d)
	}
}

func TestSuccessWithoutResolveEventCountsAsFailure(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: wa
    on: [WA_DISCONNECTED]
    resolve_on: [WA_CONNECTED]
    actions: [{do: RECONNECT_WA, timeout: 5s, attempts: 3, backoff: {initial: 10s, max: 1m, jitter: none}}]
    escalate: {after_failures: 1, severity: error}
    alert: {notify_on: [escalated]}
`)
	a := pick(h.event(0, "WA_DISCONNECTED"), KindAction)[0]
	h.result(a, CodeActionSucceeded, time.Second)
	out := h.feed(Tick{Time: t0.Add(6 * time.Second)})
	if got := states(out); got != "not_held escalated alert:escalated" {
		t.Fatalf("at the end of the wait: %q\n%s", got, h.dump())
	}
	if d := h.e.NextDeadline(); !d.Equal(t0.Add(16 * time.Second)) {
		t.Fatalf("next attempt %v, want after the 10s backoff", d)
	}
}

func TestSuccessAtStepBoundaryWaitsForResolve(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: wa
    on: [WA_DISCONNECTED]
    resolve_on: [WA_CONNECTED]
    actions:
      - {do: RECONNECT_WA, timeout: 5s, attempts: 1, backoff: {initial: 30s, max: 1m, jitter: none}}
      - {do: RESTART_SERVICE, with: {service: whatsapp}, timeout: 5s}
    alert: {notify_on: []}
`)
	a := pick(h.event(0, "WA_DISCONNECTED"), KindAction)[0]
	if got := states(h.result(a, CodeActionSucceeded, time.Second)); got != "provisional" {
		t.Fatalf("the next step ran at once after a success: %q", got)
	}
	if d := h.e.NextDeadline(); !d.Equal(t0.Add(6 * time.Second)) {
		t.Fatalf("next step at %v, want after the 5s wait for resolve_on", d)
	}
	if got := states(h.event(4*time.Second, "WA_CONNECTED")); got != "resolved" {
		t.Fatalf("%q", got)
	}
	if got := states(pick(h.log, KindAction)); strings.Contains(got, "RESTART_SERVICE") {
		t.Fatalf("restart ran although the connection came back: %s", h.dump())
	}
}

func TestWorseSeverityPassesRateLimit(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: svc
    on: [SERVICE_DOWN]
    severity: warning
    actions: [{do: RESTART_SERVICE, with: {service: bot}, timeout: 5s, attempts: 2, backoff: {initial: 1s, max: 1s, jitter: none}}]
    escalate: {after_failures: 1, severity: error}
    alert: {notify_on: [firing, escalated], rate_limit: {count: 1, per: 1h}}
`)
	a := pick(h.event(0, "SERVICE_DOWN"), KindAction)[0]
	out := h.result(a, CodeActionFailed, time.Second) // escalates to error within the hour
	if alerts := pick(out, KindAlert); len(alerts) != 1 || alerts[0].Severity != "error" {
		t.Fatalf("escalation held back by the rate limit: %s", h.dump())
	}
	a = pick(h.feed(Tick{Time: h.e.NextDeadline()}), KindAction)[0]
	out = h.result(a, CodeActionFailed, 3*time.Second) // exhausted: critical
	if alerts := pick(out, KindAlert); len(alerts) != 1 || alerts[0].Severity != "critical" {
		t.Fatalf("exhaustion held back: %s", h.dump())
	}
	var n int
	for _, d := range pick(h.log, KindAlert) {
		if d.Severity == "critical" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d critical alerts, want exactly 1", n)
	}
}

func TestRetryOnCutsBackoffShort(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: wa
    on: [WA_DISCONNECTED]
    resolve_on: [WA_CONNECTED]
    retry_on: [WA_REACHABLE]
    actions: [{do: RECONNECT_WA, timeout: 5s, attempts: 10, backoff: {initial: 30s, max: 1m, jitter: none}}]
    alert: {notify_on: []}
`)
	a := pick(h.event(0, "WA_DISCONNECTED"), KindAction)[0]
	h.result(a, CodeActionFailed, time.Second) // next attempt at 31s
	out := h.event(5*time.Second, "WA_REACHABLE")
	acts := pick(out, KindAction)
	if len(acts) != 1 || acts[0].Action.Attempt != 2 || !acts[0].Time.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("%s", h.dump())
	}
	// While that attempt runs, another WA_REACHABLE changes nothing.
	if got := states(h.event(6*time.Second, "WA_REACHABLE")); got != "" {
		t.Fatalf("%q", got)
	}
}
