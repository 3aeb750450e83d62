package engine

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/policies"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func loadSet(t testing.TB, src string) *policies.Set {
	t.Helper()
	set, err := policies.ParseFiles([]string{"test.yaml"}, map[string][]byte{"test.yaml": []byte(src)})
	if err != nil {
		t.Fatalf("policies:\n%v", err)
	}
	return set
}

// harness drives an engine on a fixed timeline and keeps every decision.
type harness struct {
	t   testing.TB
	e   *Engine
	log []Decision
}

func newHarness(t testing.TB, src string) *harness {
	return &harness{t: t, e: New(loadSet(t, src), Options{Seed: 1})}
}

func (h *harness) feed(in Input) []Decision {
	out := append([]Decision(nil), h.e.Process(in)...)
	h.log = append(h.log, out...)
	return out
}

func (h *harness) event(at time.Duration, code string, kv ...string) []Decision {
	labels := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		labels[kv[i]] = kv[i+1]
	}
	return h.feed(Event{Time: t0.Add(at), Code: code, Labels: labels})
}

func (h *harness) sample(at time.Duration, kv ...any) []Decision {
	vals := map[string]float64{}
	for i := 0; i+1 < len(kv); i += 2 {
		vals[kv[i].(string)] = kv[i+1].(float64)
	}
	return h.feed(Sample{Time: t0.Add(at), Values: vals})
}

// until ticks at every deadline up to at.
func (h *harness) until(at time.Duration) {
	end := t0.Add(at)
	for {
		d := h.e.NextDeadline()
		if d.IsZero() || d.After(end) {
			break
		}
		h.feed(Tick{Time: d})
	}
	h.feed(Tick{Time: end})
}

// result reports the outcome of an action decision at the given offset.
func (h *harness) result(d Decision, code string, at time.Duration) []Decision {
	return h.feed(Event{Time: t0.Add(at), Code: code, Source: "executor", Labels: map[string]string{
		LabelPolicy: d.Policy, LabelInstance: d.Instance, LabelDecision: strconv.FormatUint(d.ID, 10),
		LabelAction: d.Action.Do,
	}})
}

func pick(ds []Decision, kind Kind) []Decision {
	var out []Decision
	for _, d := range ds {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

func states(ds []Decision) string {
	var s []string
	for _, d := range ds {
		switch d.Kind {
		case KindState:
			s = append(s, string(d.State))
		case KindAction:
			a := d.Action.Do + "#" + strconv.Itoa(d.Action.Step) + "." + strconv.Itoa(d.Action.Attempt)
			if d.Action.Skipped != "" {
				a += "(skipped)"
			}
			s = append(s, a)
		case KindAlert:
			s = append(s, "alert:"+string(d.State))
		}
	}
	return strings.Join(s, " ")
}

func (h *harness) dump() string {
	var b strings.Builder
	for _, d := range h.log {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	return b.String()
}
