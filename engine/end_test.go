package engine

import (
	"strings"
	"testing"
	"time"
)

// An incident the alert pipeline was given — notified, or held by an inhibition — gets
// its end there when it resolves, also when notify_on has no "resolved" (then recorded
// as held, sent nowhere): otherwise the pipeline keeps it open for ever and re-sends
// it to Alertmanager every minute.
func TestEveryIncidentThePipelineGotIsClosed(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: quiet-end
    on: [QE_BAD]
    resolve_on: [QE_OK]
    alert: {notify_on: [firing]}
  - name: cause
    on: [C_BAD]
    resolve_on: [C_OK]
    inhibits: [{policies: [victim]}]
  - name: victim
    on: [V_BAD]
    resolve_on: [V_OK]
`)
	h.event(0, "QE_BAD")
	h.event(time.Second, "QE_OK")
	h.event(2*time.Second, "C_BAD")
	h.event(3*time.Second, "V_BAD")  // held: inhibited by cause
	h.event(4*time.Second, "V_OK")   // its end, held too
	h.event(5*time.Second, "C_OK")   // nothing of victim is left to release
	h.event(6*time.Minute, "QE_BAD") // a new incident, past the rate limit
	h.event(7*time.Minute, "QE_OK")
	got := map[string][]string{}
	for _, d := range h.log {
		if d.Kind != KindAlert {
			continue
		}
		s := string(d.State)
		if d.Alert.Held != "" {
			s += "(held)"
		}
		got[d.Policy] = append(got[d.Policy], s)
	}
	want := map[string]string{
		"quiet-end": "firing resolved(held) firing resolved(held)",
		"victim":    "firing(held) resolved(held)",
		"cause":     "firing resolved",
	}
	for p, w := range want {
		if g := strings.Join(got[p], " "); g != w {
			t.Errorf("%s: %q, want %q", p, g, w)
		}
	}
}
