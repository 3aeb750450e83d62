package engine

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// alerts returns the notifications (not held) of ds in state s.
func alerts(ds []Decision, s State) []Decision {
	var out []Decision
	for _, d := range ds {
		if d.Kind == KindAlert && d.State == s && (d.Alert == nil || d.Alert.Held == "") {
			out = append(out, d)
		}
	}
	return out
}

const dbFullSrc = `
policies:
  - name: db-full
    on: [DB_FULL]
    when: 'event.source == "store"'
    group_by: [db]
    severity: critical
    actions:
      - do: CLEAN_DATA
        with: {target: metrics}
        timeout: 5m
        attempts: 2
        backoff: {initial: 1m, max: 10m, multiplier: 2, jitter: none}
`

// Field case 09: the disk stays full after CLEAN_DATA pruned some samples. The store
// reports DB_FULL on every failed write; "resolved" 10 ms after "firing" was a lie.
func TestFullDiskIsNotResolvedByAPrune(t *testing.T) {
	h := newHarness(t, dbFullSrc)
	full := func(at time.Duration) []Decision {
		return h.feed(Event{Time: t0.Add(at), Code: "DB_FULL", Source: "store", Labels: map[string]string{"db": "metrics"}})
	}
	a := pick(full(0), KindAction)[0]
	h.result(a, CodeActionSucceeded, 10*time.Millisecond)
	// The disk stays full for ten minutes: a failed write every 2 s.
	for at := 2 * time.Second; at <= 10*time.Minute; at += 2 * time.Second {
		h.until(at)
		for _, d := range full(at) {
			if d.Kind == KindAction {
				h.result(d, CodeActionSucceeded, at+10*time.Millisecond)
			}
		}
	}
	if r := alerts(h.log, Resolved); len(r) != 0 {
		t.Fatalf("resolved while the disk was full: %v\n%s", r[0], h.dump())
	}
	// Freed at 10m: no DB_FULL any more. Resolved once, a step timeout later.
	h.until(30 * time.Minute)
	if f, r := alerts(h.log, Firing), alerts(h.log, Resolved); len(f) != 1 || len(r) != 1 || r[0].Time.Before(t0.Add(10*time.Minute)) {
		t.Fatalf("firing %d, resolved %d, want one each after the disk was freed\n%s", len(f), len(r), h.dump())
	}
}

// The write-lock case: one writer holds the lock for 30 s; queries give up every few
// seconds; each RESET_DB succeeds while the lock is still held. One incident, not 5–7
// firing/resolved pairs.
func TestWriteLockIsOneIncident(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: db-retry-exhausted
    on: [DB_RETRY_EXHAUSTED, DB_TIMEOUT]
    when: 'event.source == "store" && count("DB_RETRY_EXHAUSTED", "5m") + count("DB_TIMEOUT", "5m") >= 3'
    group_by: [db]
    severity: error
    actions:
      - do: RESET_DB
        with: {db: '{{ .labels.db }}'}
        timeout: 30s
        attempts: 2
        backoff: {initial: 5s, max: 1m, multiplier: 2, jitter: full}
    escalate: {after_failures: 2, severity: critical}
`)
	for at := time.Duration(0); at <= 30*time.Second; at += 2 * time.Second {
		h.until(at)
		for _, d := range h.feed(Event{Time: t0.Add(at), Code: "DB_RETRY_EXHAUSTED", Source: "store", Labels: map[string]string{"db": "remedy"}}) {
			if d.Kind == KindAction {
				h.result(d, CodeActionSucceeded, at+50*time.Millisecond)
			}
		}
	}
	h.until(time.Hour)
	f, r := alerts(h.log, Firing), alerts(h.log, Resolved)
	if len(f) != 1 || len(r) != 1 {
		t.Fatalf("firing %d, resolved %d, want one each\n%s", len(f), len(r), h.dump())
	}
	// The condition counts over 5m: it is false only once the lock's failures left it.
	if r[0].Time.Before(t0.Add(5*time.Minute + 30*time.Second - 4*time.Second)) {
		t.Fatalf("resolved at %v while the count still held\n%s", r[0].Time.Sub(t0), h.dump())
	}
}

// An event policy resolves only on evidence: a success with no later input leaves it
// firing until the step's timeout passes.
func TestSuccessAloneDoesNotResolve(t *testing.T) {
	h := newHarness(t, dbFullSrc)
	a := pick(h.feed(Event{Time: t0, Code: "DB_FULL", Source: "store", Labels: map[string]string{"db": "x"}}), KindAction)[0]
	h.result(a, CodeActionSucceeded, time.Second)
	h.until(5 * time.Minute)
	if r := alerts(h.log, Resolved); len(r) != 0 {
		t.Fatalf("resolved before the step's timeout: %v", r[0])
	}
	h.until(5*time.Minute + time.Second)
	if r := alerts(h.log, Resolved); len(r) != 1 {
		t.Fatalf("not resolved once quiet for the step's timeout\n%s", h.dump())
	}
}

// The kind: over random fault/recovery sequences (the fault's reports, action results
// that succeed, fail, time out or get lost, actions that sometimes fix the fault), every
// policy kind gives exactly one firing and one resolved notification per fault episode,
// and never "resolved" while the fault is there (for a counting condition: while the
// count still reaches its threshold).
func TestOneFiringOneResolvedPerEpisode(t *testing.T) {
	kinds := map[string]string{
		"event": `
    on: [F]
    when: 'event.source == "x"'`,
		"count": `
    on: [F]
    when: 'count("F", "1m") >= 3'`,
		"resolve_on": `
    on: [F]
    resolve_on: [F_OK]`,
		"sample": `
    on: [sample]
    when: 'metrics.f > 0.5'`,
	}
	for _, kind := range []string{"event", "count", "resolve_on", "sample"} {
		for seed := uint64(1); seed <= 40; seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", kind, seed), func(t *testing.T) {
				src := `
policies:
  - name: p` + kinds[kind] + `
    severity: error
    actions:
      - {do: RESTART_SERVICE, with: {service: bot}, timeout: 15s, attempts: 3, backoff: {initial: 2s, max: 20s, jitter: full}}
      - {do: EXEC, with: {command: /bin/fix}, timeout: 15s, attempts: 2}
    escalate: {after_failures: 2, severity: critical}
    alert: {rate_limit: {count: 1000, per: 1m}}
`
				runEpisodes(t, kind, src, seed)
			})
		}
	}
}

type simInput struct {
	at  time.Time
	in  Input
	seq int
}

type simQueue []simInput

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	return q[i].at.Before(q[j].at) || q[i].at.Equal(q[j].at) && q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int)  { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)    { *q = append(*q, x.(simInput)) }
func (q *simQueue) Pop() (x any)  { x, *q = (*q)[len(*q)-1], (*q)[:len(*q)-1]; return x }
func (q simQueue) peek() simInput { return q[0] }

func runEpisodes(t *testing.T, kind, src string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	h := newHarness(t, src)
	var q simQueue
	seq := 0
	push := func(at time.Time, in Input) { seq++; heap.Push(&q, simInput{at, in, seq}) }
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format+"\n%s", append([]any{seed}, append(args, h.dump())...)...)
	}

	now := t0
	var faultEvents []time.Time // the fault's reports, for the counting reference
	countAt := func(at time.Time) int {
		n := 0
		for _, e := range faultEvents {
			if !e.After(at) && at.Sub(e) <= time.Minute {
				n++
			}
		}
		return n
	}
	for ep := 0; ep < 6; ep++ {
		faultOn := true
		end := now.Add(30*time.Second + dur(rng, 4*time.Minute))
		firings, resolveds := 0, 0
		// Drive the fault's reports (or samples) and the executor until the fault ends
		// and then ten quiet minutes: ample for every ladder to finish and resolve.
		next := now
		quietUntil := time.Time{}
		for {
			at := next
			if d := h.e.NextDeadline(); !d.IsZero() && d.Before(at) {
				at = d
			}
			if q.Len() > 0 && q.peek().at.Before(at) {
				at = q.peek().at
			}
			if faultOn && !at.Before(end) {
				faultOn, at = false, end
				quietUntil = end.Add(10 * time.Minute)
				if kind == "resolve_on" {
					push(end, Event{Time: end, Code: "F_OK", Source: "x"})
				}
			}
			if !quietUntil.IsZero() && at.After(quietUntil) {
				break
			}
			var out []Decision
			switch {
			case q.Len() > 0 && !q.peek().at.After(at):
				out = h.feed(heap.Pop(&q).(simInput).in)
			case at.Equal(next):
				if kind == "sample" {
					v := 0.0
					if faultOn {
						v = 1
					}
					out = h.feed(Sample{Time: at, Values: map[string]float64{"f": v}})
					next = at.Add(10 * time.Second)
				} else {
					if faultOn {
						faultEvents = append(faultEvents, at)
						out = h.feed(Event{Time: at, Code: "F", Source: "x"})
					} else {
						out = h.feed(Tick{Time: at})
					}
					// A report at least every 10s: less than the step's 15s timeout.
					next = at.Add(time.Second + dur(rng, 9*time.Second))
				}
			default:
				out = h.feed(Tick{Time: at})
			}
			for _, d := range out {
				switch {
				case d.Kind == KindAction && d.Action.Skipped == "":
					// The executor: succeed, fail, time out (late result) or lose the result.
					delay := dur(rng, 20*time.Second)
					code := CodeActionSucceeded
					switch rng.IntN(4) {
					case 0:
						code = CodeActionFailed
					case 1:
						if rng.IntN(2) == 0 {
							continue // lost: the engine's grace counts it as timed out
						}
						code = CodeActionTimeout
					}
					if code == CodeActionSucceeded && faultOn && rng.IntN(3) == 0 {
						end = d.Time.Add(delay) // this attempt fixes the fault
					}
					push(d.Time.Add(delay), Event{Time: d.Time.Add(delay), Code: code, Source: "executor", Labels: map[string]string{
						LabelPolicy: d.Policy, LabelInstance: d.Instance, LabelDecision: fmt.Sprint(d.ID), LabelAction: d.Action.Do}})
				case d.Kind == KindAlert && d.State == Firing && d.Alert.Held == "":
					firings++
				case d.Kind == KindAlert && d.State == Resolved:
					resolveds++
					if faultOn {
						fail("episode %d: resolved at %v while the fault is there", ep, d.Time.Sub(t0))
					}
					if kind == "count" && countAt(d.Time) >= 3 {
						fail("episode %d: resolved at %v while count = %d", ep, d.Time.Sub(t0), countAt(d.Time))
					}
				}
			}
			now = at
			if len(out) > 0 {
				now = out[len(out)-1].Time
			}
			if now.Before(at) {
				now = at
			}
		}
		if firings != 1 || resolveds != 1 {
			fail("episode %d: %d firing and %d resolved notifications, want one each", ep, firings, resolveds)
		}
		// Drop results still in flight: the next episode starts clean of them only in
		// time, not in state (a late result must be ignored by the engine).
		now = quietUntil
	}
}

// dur draws a duration in [0, d) from rng (seeded: the sequence is reproducible).
func dur(rng *rand.Rand, d time.Duration) time.Duration { return time.Duration(rng.Int64N(int64(d))) }

// The rule view shows a success awaiting confirmation, and until when.
func TestStatusShowsAProvisionalSuccess(t *testing.T) {
	h := newHarness(t, dbFullSrc)
	a := pick(h.feed(Event{Time: t0, Code: "DB_FULL", Source: "store", Labels: map[string]string{"db": "x"}}), KindAction)[0]
	h.result(a, CodeActionSucceeded, time.Second)
	inst := h.e.Status()[0].Instances[0]
	if inst.State != Firing || inst.ProvisionalUntil == nil || !inst.ProvisionalUntil.Equal(t0.Add(5*time.Minute+time.Second)) {
		t.Fatalf("status %+v, want firing with a provisional success until +5m1s", inst)
	}
	h.feed(Event{Time: t0.Add(2 * time.Second), Code: "DB_FULL", Source: "store", Labels: map[string]string{"db": "x"}})
	if inst := h.e.Status()[0].Instances[0]; inst.ProvisionalUntil != nil {
		t.Fatalf("still provisional after the fault came again: %+v", inst)
	}
}
