package engine

import (
	"testing"
	"time"
)

const rearmPolicies = `policies:
  - name: wa
    on: [DOWN]
    resolve_on: [UP]
    retry_on: [REACHABLE]
    rearm: {count: 2, per: 1h}
    actions:
      - do: RECONNECT_WA
        timeout: 10s
        attempts: 2
        backoff: {initial: 1s, max: 1s, jitter: none}
  - name: plain
    on: [DOWN]
    resolve_on: [UP]
    retry_on: [REACHABLE]
    actions:
      - do: RECONNECT_WA
        timeout: 10s
        attempts: 1
`

// failAll answers every action attempt not yet answered with ACTION_FAILED at at.
func (h *harness) failAll(answered map[uint64]bool, at time.Duration) {
	for i := 0; i < len(h.log); i++ {
		if d := h.log[i]; d.Kind == KindAction && d.Action.Skipped == "" && !answered[d.ID] {
			answered[d.ID] = true
			h.result(d, CodeActionFailed, at)
		}
	}
}

// A retry_on event restarts an exhausted ladder only with rearm, at most count times
// within per, from the first step; without rearm it leaves it used up.
func TestRearmRestartsAnExhaustedLadderWithinItsLimit(t *testing.T) {
	h := newHarness(t, rearmPolicies)
	attempts := func(policy string) int {
		n := 0
		for _, d := range h.log {
			if d.Kind == KindAction && d.Policy == policy {
				n++
			}
		}
		return n
	}
	answered := map[uint64]bool{}
	exhaust := func(at time.Duration) {
		for range 4 { // each attempt fails as soon as it is decided
			h.until(at)
			h.failAll(answered, at)
			at += 2 * time.Second
		}
	}
	h.event(0, "DOWN")
	exhaust(0)
	if a := attempts("wa"); a != 2 || attempts("plain") != 1 {
		t.Fatalf("first ladder: wa %d, plain %d attempts", a, attempts("plain"))
	}
	for i, at := range []time.Duration{10 * time.Minute, 20 * time.Minute, 30 * time.Minute} {
		h.event(at, "REACHABLE")
		exhaust(at)
		want := 2 + 2*min(i+1, 2) // two re-arms of two attempts each; the third is over the limit
		if a := attempts("wa"); a != want {
			t.Fatalf("after REACHABLE %d: wa made %d attempts, want %d", i+1, a, want)
		}
	}
	if attempts("plain") != 1 {
		t.Fatalf("plain has no rearm, yet made %d attempts", attempts("plain"))
	}
	// An hour after the first re-arm, one is allowed again.
	h.event(70*time.Minute+time.Second, "REACHABLE")
	if a := attempts("wa"); a != 7 {
		t.Fatalf("after the window moved on: %d attempts, want 7", a)
	}
	var st InstanceStatus
	for _, ps := range h.e.Status() {
		if ps.Name == "wa" {
			st = ps.Instances[0]
		}
	}
	if st.Rearmed != 2 || st.Exhausted || st.Step != 1 {
		t.Fatalf("status %+v", st)
	}
}
