package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// The rule: in a group_by policy, count() and since() see the events of the instance
// being evaluated (their group_by labels equal the instance's) unless the call's selector
// says otherwise, so the instance that fires is the one whose events crossed the
// threshold (issue 25).

// firedInstances are the instances that fired, in order.
func firedInstances(h *harness, policy string) []string {
	var out []string
	for _, d := range h.log {
		if d.Kind == KindState && d.State == Firing && d.Policy == policy {
			out = append(out, d.Instance)
		}
	}
	return out
}

// POLICIES.md's first policy: four errors at acme and one at beta are no incident.
func TestCountIsPerInstance(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: payment-errors
    on: [PAYMENT_ERROR]
    when: 'count("PAYMENT_ERROR", "10m") >= 5'
    group_by: [provider]
    severity: error
`)
	for i := range 4 {
		h.event(time.Duration(i)*time.Minute, "PAYMENT_ERROR", "provider", "acme")
	}
	h.event(4*time.Minute, "PAYMENT_ERROR", "provider", "beta")
	if got := firedInstances(h, "payment-errors"); len(got) != 0 {
		t.Fatalf("fired %v after 4 errors at acme and 1 at beta:\n%s", got, h.dump())
	}
	h.event(5*time.Minute, "PAYMENT_ERROR", "provider", "acme")
	if got := firedInstances(h, "payment-errors"); !slices.Equal(got, []string{"acme"}) {
		t.Fatalf("fired %v, want [acme]:\n%s", got, h.dump())
	}
}

// The default db-retry-exhausted's shape: two failures of remedy's database and one
// timeout of the metrics database reset no database; a third failure resets remedy's.
func TestCountSumIsPerInstance(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: db-retry
    on: [DB_RETRY_EXHAUSTED, DB_TIMEOUT]
    when: 'count("DB_RETRY_EXHAUSTED", "5m") + count("DB_TIMEOUT", "5m") >= 3'
    group_by: [db]
    severity: error
    actions:
      - do: RESET_DB
        with: {db: '{{ .labels.db }}'}
        timeout: 30s
`)
	h.event(0, "DB_RETRY_EXHAUSTED", "db", "remedy")
	h.event(time.Second, "DB_RETRY_EXHAUSTED", "db", "remedy")
	h.event(2*time.Second, "DB_TIMEOUT", "db", "metrics")
	if got := firedInstances(h, "db-retry"); len(got) != 0 {
		t.Fatalf("fired %v:\n%s", got, h.dump())
	}
	h.event(3*time.Second, "DB_TIMEOUT", "db", "remedy")
	acts := pick(h.log, KindAction)
	if len(acts) != 1 || acts[0].Action.Params["db"] != "remedy" {
		t.Fatalf("want one RESET_DB of remedy:\n%s", h.dump())
	}
}

// Counting across instances, or by other labels, is written in the call.
func TestSelectorWidensAndNarrows(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: across
    on: [E]
    when: 'count("E", "10m", "by ()") >= 3'
    group_by: [tenant]
  - name: timeouts
    on: [E]
    when: 'count("E", "10m", `+"`"+`{reason=~"time.*"}`+"`"+`) >= 2'
    group_by: [tenant]
  - name: since-any
    on: [F]
    when: 'since("E", "by ()") < 60 && since("E") > 1e9'
    group_by: [tenant]
`)
	h.event(0, "E", "tenant", "a", "reason", "timeout")
	h.event(time.Second, "E", "tenant", "b", "reason", "timeout")
	h.event(2*time.Second, "E", "tenant", "c", "reason", "refused")
	if got := firedInstances(h, "across"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("across fired %v, want [c]:\n%s", got, h.dump())
	}
	if got := firedInstances(h, "timeouts"); len(got) != 0 {
		t.Fatalf("timeouts fired %v:\n%s", got, h.dump())
	}
	h.event(3*time.Second, "E", "tenant", "a", "reason", "timed_out")
	if got := firedInstances(h, "timeouts"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("timeouts fired %v, want [a]:\n%s", got, h.dump())
	}
	// d has no E of its own (since = +Inf) while others had one 7 s ago.
	h.event(10*time.Second, "F", "tenant", "d")
	h.event(11*time.Second, "F", "tenant", "a")
	if got := firedInstances(h, "since-any"); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("since-any fired %v, want [d]:\n%s", got, h.dump())
	}
}

// refEvent is one event the reference model remembers.
type refEvent struct {
	at     time.Duration
	code   string
	labels map[string]string
}

// refCount is the counting rule written plainly: the events of code in [now-w, now]
// whose values of by equal the instance's and whose labels pass the matcher.
func refCount(hist []refEvent, code string, now, w time.Duration, by []string, inst map[string]string, match func(map[string]string) bool) int {
	n := 0
	for _, e := range hist {
		if e.code == code && e.at >= now-w && e.at <= now && match(e.labels) && sameGroup(e, by, inst) {
			n++
		}
	}
	return n
}

// sameGroup: the event's values of by are the instance's (a missing label is "").
func sameGroup(e refEvent, by []string, inst map[string]string) bool {
	for _, l := range by {
		if e.labels[l] != inst[l] {
			return false
		}
	}
	return true
}

// refSince is since() written plainly: seconds since the latest such event, +Inf if none.
func refSince(hist []refEvent, code string, now time.Duration, by []string, inst map[string]string, match func(map[string]string) bool) float64 {
	best := math.Inf(1)
	for _, e := range hist {
		if e.code == code && e.at <= now && match(e.labels) && sameGroup(e, by, inst) {
			best = min(best, (now - e.at).Seconds())
		}
	}
	return best
}

// The engine's fired instances against a reference implementation of the counting
// rules, on seeded random events with random labels, group_by, windows and selectors.
// Instant policies (no actions) fire on each event whose condition holds, so the
// reference needs only the counting rule: an instance fires at an event iff
// count(...) >= k in the reference.
func TestHistoryPerInstanceDifferential(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 15
	}
	labelNames := []string{"a", "b", "c"}
	values := []string{"x", "y", "z", ""}
	fires, quiet := 0, 0
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 25))
		pickOf := func(xs []string) string { return xs[rng.IntN(len(xs))] }
		// A random policy: group_by a subset of labels, a window, a threshold, and maybe
		// a selector.
		var groupBy []string
		for _, l := range labelNames {
			if rng.IntN(2) == 0 {
				groupBy = append(groupBy, l)
			}
		}
		window := time.Duration(1+rng.IntN(120)) * time.Second
		k := 1 + rng.IntN(4)
		recent := 1 + rng.IntN(30) // since("C3") < recent, in seconds
		by := groupBy
		sel := ""
		var parts []string
		switch rng.IntN(3) {
		case 1: // by a random subset of group_by
			by = nil
			for _, l := range groupBy {
				if rng.IntN(2) == 0 {
					by = append(by, l)
				}
			}
			parts = append(parts, "by ("+strings.Join(by, ", ")+")")
		}
		matchLabel, matchValue, neg := "", "", false
		if rng.IntN(2) == 0 {
			matchLabel, matchValue, neg = pickOf(labelNames), pickOf(values), rng.IntN(2) == 0
			op := "="
			if neg {
				op = "!="
			}
			parts = append(parts, fmt.Sprintf("{%s%s%q}", matchLabel, op, matchValue))
		}
		if len(parts) > 0 {
			sel = ", `" + strings.Join(parts, " ") + "`"
		}
		match := func(l map[string]string) bool {
			if matchLabel == "" {
				return true
			}
			return (l[matchLabel] == matchValue) != neg
		}
		groupYAML := ""
		if len(groupBy) > 0 {
			groupYAML = "    group_by: [" + strings.Join(groupBy, ", ") + "]\n    max_instances: 1000\n"
		}
		src := fmt.Sprintf(`
policies:
  - name: p
    on: [C1]
    when: 'count("C1", "%s"%s) + count("C2", "%s"%s) >= %d || since("C3"%s) < %d'
%s`, window, sel, window, sel, k, sel, recent, groupYAML)
		h := newHarness(t, src)
		var hist []refEvent
		now := time.Duration(0)
		for i := range 200 {
			now += time.Duration(rng.IntN(5000)) * time.Millisecond
			labels := map[string]string{}
			for _, l := range labelNames {
				if v := pickOf(values); v != "" || rng.IntN(2) == 0 {
					labels[l] = v
				}
			}
			code := pickOf([]string{"C1", "C1", "C2", "C3"})
			hist = append(hist, refEvent{now, code, labels})
			kv := []string{}
			for l, v := range labels {
				kv = append(kv, l, v)
			}
			before := len(firedInstances(h, "p"))
			h.event(now, code, kv...)
			fired := firedInstances(h, "p")[before:]
			var want []string
			if code == "C1" && (refCount(hist, "C1", now, window, by, labels, match)+refCount(hist, "C2", now, window, by, labels, match) >= k ||
				refSince(hist, "C3", now, by, labels, match) < float64(recent)) {
				want = []string{h.e.key(h.e.pols[0], labels)}
			}
			if code == "C1" && len(want) > 0 {
				fires++
			} else if code == "C1" {
				quiet++
			}
			if !slices.Equal(fired, want) {
				t.Fatalf("seed %d, event %d (%s %v at %v), policy:%s\nfired %q, reference %q", seed, i, code, labels, now, src, fired, want)
			}
		}
	}
	// Both outcomes must be common, or the comparison says little.
	if fires < 100 || quiet < 100 {
		t.Fatalf("%d events fired, %d did not: the random policies are too one-sided", fires, quiet)
	}
	t.Logf("%d seeds: %d events fired, %d did not", seeds, fires, quiet)
}

// A decision's reason shows its own instance's counts, also when the input that made it
// (a resolve_on event without labels, which ends every instance) was evaluated for none.
func TestReasonShowsTheInstancesOwnCount(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: q
    on: [E]
    when: 'count("E", "10m") >= 1'
    group_by: [q]
    resolve_on: [OK]
    alert: {notify_on: []}
`)
	h.event(0, "E", "q", "a")
	h.event(time.Second, "E", "q", "b")
	h.event(2*time.Second, "E", "q", "b")
	for _, d := range h.event(3*time.Second, "OK") {
		want := map[string]string{"a": "1", "b": "2"}[d.Instance]
		if got := fmt.Sprint(d.Reason.Values); !strings.Contains(got, `count("E", "10m")=`+want) {
			t.Errorf("%s resolved with %s, want count %s", d.Instance, got, want)
		}
	}
}
