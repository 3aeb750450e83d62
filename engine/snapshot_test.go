package engine

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Issue 14, item 7: a snapshot taken at any point, serialised and restored into a new
// engine, continues exactly as the original does — the same decisions at the same
// times, jitter included — over random sequences of faults, results and time.
func TestRestoredEngineContinuesExactly(t *testing.T) {
	src := `
policies:
  - name: svc
    on: [SERVICE_DOWN]
    group_by: [service]
    resolve_on: [SERVICE_UP]
    stable_for: 10m
    alert: {rate_limit: {count: 1, per: 2m}, repeat: 5m}
    actions:
      - do: RESTART_SERVICE
        with: {service: x}
        attempts: 4
        timeout: 5s
        backoff: {initial: 2s, max: 1m, jitter: full}
    escalate: {after_failures: 2, severity: critical}
    breaker: {failures: 5, within: 10m, open_for: 3m}
  - name: cpu
    on: [sample]
    when: 'avg_over("cpu", "1m") > 80'
    for: 30s
    keep_firing_for: 20s
`
	for seed := uint64(1); seed <= 25; seed++ {
		rng := rand.New(rand.NewPCG(seed, 5))
		var inputs []Input
		at := time.Duration(0)
		for i := 0; i < 150; i++ {
			at += time.Duration(rng.IntN(15000)) * time.Millisecond
			switch r := rng.IntN(6); r {
			case 0:
				inputs = append(inputs, Event{Time: t0.Add(at), Code: "SERVICE_DOWN", Labels: map[string]string{"service": fmt.Sprint("s", rng.IntN(3))}})
			case 1:
				inputs = append(inputs, Event{Time: t0.Add(at), Code: "SERVICE_UP", Labels: map[string]string{"service": fmt.Sprint("s", rng.IntN(3))}})
			case 2:
				inputs = append(inputs, Sample{Time: t0.Add(at), Values: map[string]float64{"cpu": float64(rng.IntN(100))}})
			default:
				inputs = append(inputs, Tick{Time: t0.Add(at)})
			}
		}
		cut := rng.IntN(len(inputs))
		// Action results: every attempt fails one second after it is decided.
		run := func(e *Engine, ins []Input, log *[]string) {
			for _, in := range ins {
				var results []Input
				for _, d := range e.Process(in) {
					*log = append(*log, d.String())
					if d.Kind == KindAction && d.Action.Skipped == "" {
						results = append(results, Event{Time: d.Time.Add(time.Second), Code: CodeActionFailed, Labels: map[string]string{
							LabelPolicy: d.Policy, LabelInstance: d.Instance, LabelDecision: fmt.Sprint(d.ID)}})
					}
				}
				for _, r := range results {
					if r.At().Before(in.At()) || len(ins) == 0 {
						continue
					}
					for _, d := range e.Process(r) {
						*log = append(*log, d.String())
					}
				}
			}
		}
		set := loadSet(t, src)
		a := New(set, Options{Seed: seed})
		var before []string
		run(a, inputs[:cut], &before)
		raw, err := json.Marshal(a.Snapshot())
		if err != nil {
			t.Fatal(err)
		}
		var snap Snapshot
		if err := json.Unmarshal(raw, &snap); err != nil {
			t.Fatal(err)
		}
		b := New(loadSet(t, src), Options{Seed: seed + 1000}) // a different seed: the jitter source is restored
		if ds := b.Restore(snap); len(ds) != 0 {
			t.Fatalf("restore with the same set decided %v", ds)
		}
		// The history windows come back from the recorded inputs.
		var warm []Input
		for _, in := range inputs[:cut] {
			if s, ok := in.(Sample); ok && !s.Time.Before(a.Now().Add(-b.Longest())) {
				warm = append(warm, in)
			}
		}
		b.Warm(warm)
		var la, lb []string
		run(a, inputs[cut:], &la)
		run(b, inputs[cut:], &lb)
		if strings.Join(la, "\n") != strings.Join(lb, "\n") {
			t.Fatalf("seed %d cut %d: the restored engine decided differently\noriginal:\n%s\nrestored:\n%s", seed, cut,
				strings.Join(la, "\n"), strings.Join(lb, "\n"))
		}
	}
}

// Issue 14, item 7, across a changed policy set: the identity rules of a reload apply —
// an unchanged policy continues, a changed or removed one's notified incidents resolve.
func TestRestoreAcrossChangedPolicies(t *testing.T) {
	src := `
policies:
  - name: keep
    on: [A]
    resolve_on: [A_OK]
  - name: change
    on: [B]
    resolve_on: [B_OK]
  - name: drop
    on: [C]
    resolve_on: [C_OK]
`
	h := newHarness(t, src)
	h.event(0, "A")
	h.event(0, "B")
	h.event(0, "C")
	snap := h.e.Snapshot()
	next := strings.Replace(src, "resolve_on: [B_OK]", "resolve_on: [B_OK]\n    severity: error", 1)
	next = next[:strings.Index(next, "  - name: drop")]
	e := New(loadSet(t, next), Options{})
	var got []string
	for _, d := range e.Restore(snap) {
		got = append(got, d.Policy+" "+string(d.Kind)+" "+string(d.State)+": "+d.Reason.Text)
	}
	want := "change state resolved: policy changed while remedy was stopped; its incidents start over\n" +
		"change alert resolved: policy changed while remedy was stopped; its incidents start over\n" +
		"drop state resolved: policy removed while remedy was stopped\n" +
		"drop alert resolved: policy removed while remedy was stopped"
	if strings.Join(got, "\n") != want {
		t.Fatalf("restore decided:\n%s", strings.Join(got, "\n"))
	}
	if e.Firing() != 1 {
		t.Fatalf("firing %d, want keep's incident", e.Firing())
	}
	// keep's resolution after the restart is notified: the incident was not forgotten.
	if got := states(e.Process(Event{Time: t0.Add(time.Minute), Code: "A_OK"})); got != "resolved alert:resolved" {
		t.Fatalf("keep after restore: %q", got)
	}
}
