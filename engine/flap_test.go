package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

const flapPolicy = `policies:
  - name: payment-gw-down
    on: [GW_DOWN]
    resolve_on: [GW_UP]
    severity: error
%s`

// sent are the alert decisions that go to the channels (not those recorded as held).
func sent(ds []Decision) []Decision {
	var out []Decision
	for _, d := range pick(ds, KindAlert) {
		if d.Alert.Held == "" {
			out = append(out, d)
		}
	}
	return out
}

// Field case b3-08: a gateway down 4 s, up 4 s, ten times in 80 s, then up for good.
// Before flap detection every firing after a resolved passed the rate limit (it
// contradicts the last word): twenty notifications. Now at most threshold (6) go out,
// the flap is shown while it lasts, and the last word is "resolved" once it settles.
func TestFlappingIncidentIsFoldedIntoOneNotification(t *testing.T) {
	h := newHarness(t, fmt.Sprintf(flapPolicy, ""))
	var during []InstanceStatus
	for i := range 10 {
		at := time.Duration(i) * 8 * time.Second
		h.event(at, "GW_DOWN")
		h.event(at+4*time.Second, "GW_UP")
		if i == 5 {
			during = h.e.Status()[0].Instances
		}
	}
	h.until(80*time.Second + 15*time.Second)
	out := sent(h.log)
	if len(out) > 6 {
		t.Fatalf("%d notifications for one flapping incident: %s\n%s", len(out), states(out), h.dump())
	}
	last := out[len(out)-1]
	if last.State != Resolved {
		t.Fatalf("the last word is %s, not resolved: %s", last.State, states(out))
	}
	if len(during) != 1 || during[0].FlappingSince == nil || during[0].FlapHeld == 0 {
		t.Fatalf("status while flapping: %+v", during)
	}
	if st := h.e.Status()[0]; st.Flapping != 0 || (len(st.Instances) == 1 && st.Instances[0].FlappingSince != nil) {
		t.Fatalf("still flapping after it settled: %+v", st)
	}
	var started, ended bool
	for _, d := range h.log {
		started = started || d.State == Flapping
		ended = ended || d.State == FlapEnded
	}
	if !started || !ended {
		t.Fatalf("no flapping/flapping_ended state decisions:\n%s", h.dump())
	}
}

// A flap that settles firing tells "firing" at its end, with the held count, so the
// pipeline's incident is open; the resolve that comes later is told too.
func TestFlapThatSettlesFiringSaysFiringThenResolved(t *testing.T) {
	h := newHarness(t, fmt.Sprintf(flapPolicy, "    alert: {rate_limit: {count: 1, per: 5m}, flapping: {threshold: 4}}\n"))
	for i := range 5 {
		at := time.Duration(i) * 2 * time.Second
		h.event(at, "GW_DOWN")
		h.event(at+time.Second, "GW_UP")
	}
	h.event(10*time.Second, "GW_DOWN") // and it stays down
	h.until(2 * time.Minute)
	out := sent(h.log)
	if last := out[len(out)-1]; last.State != Firing || last.Alert.Annotations["flapping"] != "ended" || last.Alert.Suppressed == 0 {
		t.Fatalf("the flap's end: %s, last %+v\n%s", states(out), last.Alert, h.dump())
	}
	h.event(3*time.Minute, "GW_UP")
	if out = sent(h.log); out[len(out)-1].State != Resolved {
		t.Fatalf("the resolve after the flap was not told: %s", states(out))
	}
}

// The kind: over random down/up sequences (seeded; the seed is printed on failure),
// random thresholds, windows and settle times, with and without a rate limit:
//   - while an instance flaps nothing is sent but the flap's first notification;
//   - a flap's end sends at most one notification;
//   - any other notification follows a state change with fewer than threshold changes
//     within the window (since the last flap ended), so a burst of changes costs at
//     most threshold+1 notifications however long it lasts;
//   - once the sequence has settled, the last notification sent states the current
//     state: never "resolved" while firing or "firing" while resolved.
func TestFlapNotificationsBoundedAndLastWordTrue(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		threshold := 2 + rng.IntN(7)
		window := time.Duration(10+rng.IntN(600)) * time.Second
		settle := ""
		if rng.IntN(2) == 0 {
			settle = fmt.Sprintf(", settle: %ds", 1+rng.IntN(60))
		}
		rate := "{count: 1, per: 5m}"
		if rng.IntN(3) == 0 {
			rate = "{count: 100, per: 1s}"
		}
		src := fmt.Sprintf(flapPolicy, fmt.Sprintf("    alert: {rate_limit: %s, flapping: {threshold: %d, window: %ds%s}}\n", rate, threshold, int(window/time.Second), settle))
		h := newHarness(t, src)
		at := time.Duration(0)
		for n := rng.IntN(80); n > 0; n-- {
			at += time.Duration(rng.ExpFloat64() * float64(time.Duration(1+rng.IntN(60))*time.Second))
			code := "GW_DOWN"
			if rng.IntN(2) == 0 {
				code = "GW_UP"
			}
			h.event(at, code)
		}
		h.until(at + 2*window + time.Hour)
		fail := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("seed %d (threshold %d, window %s%s, rate %s): %s\n%s", seed, threshold, window, settle, rate, fmt.Sprintf(format, a...), h.dump())
		}
		var changes []time.Time
		flapping, endNotes := false, 0
		for _, d := range h.log {
			switch {
			case d.Kind == KindState && (d.State == Firing || d.State == Resolved):
				changes = append(changes, d.Time)
			case d.Kind == KindState && d.State == Flapping:
				flapping = true
			case d.Kind == KindState && d.State == FlapEnded:
				flapping, changes, endNotes = false, nil, 0
			case d.Kind == KindAlert && d.Alert.Held == "":
				note := d.Alert.Annotations["flapping"]
				switch {
				case note == "ended":
					if endNotes++; endNotes > 1 {
						fail("two notifications at one flap's end")
					}
				case flapping && note == "":
					fail("a notification sent while flapping at %s", d.Time)
				case note == "":
					n := 0
					for _, c := range changes {
						if c.After(d.Time.Add(-window)) {
							n++
						}
					}
					if n >= threshold {
						fail("a notification at %s after %d changes within the window, not folded", d.Time, n)
					}
				}
			}
		}
		st := h.e.Status()[0]
		firing := len(st.Instances) == 1 && st.Instances[0].State == Firing
		if st.Flapping != 0 {
			fail("still flapping after the sequence settled")
		}
		out := sent(h.log)
		switch {
		case len(out) == 0 && firing:
			fail("firing, and nothing was ever sent")
		case len(out) == 0:
		case firing && out[len(out)-1].State == Resolved:
			fail("the last word is resolved while the incident fires")
		case !firing && out[len(out)-1].State != Resolved:
			fail("the last word is %s while the incident is not firing", out[len(out)-1].State)
		}
	}
}
