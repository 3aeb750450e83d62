package engine

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The hot loops (onEvent, onSample) set an instance's labels only for a condition that
// reads them (ReadsInstance), evaluate on the fast path inline, and read the policy's
// condition, group_by and labels from copies in policyState. The differential: on
// seeded random policy sets and inputs, with a reload half-way, the engine gives the same
// decisions and counts as a reference engine that sets the labels before every
// evaluation and takes the slow path (evalSlow, with a trace) for every one.
func TestHotPathDifferential(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	decisions, reading, notReading := 0, 0, 0
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 27))
		src := randomPolicySet(rng)
		e := New(loadSet(t, src), Options{Seed: seed})
		ref := New(loadSet(t, src), Options{Seed: seed, Trace: func(Trace) {}})
		always := func() {
			for _, ps := range ref.pols {
				ps.ownLabels = true
			}
		}
		always()
		for _, ps := range e.pols {
			if ps.cond == nil {
				continue
			}
			if ps.ownLabels {
				reading++
			} else {
				notReading++
			}
		}
		now := t0
		for i := range 400 {
			if i == 200 { // a reload: one policy changes, the others keep their state
				src2 := strings.Replace(src, "name: p0\n", "name: p0\n    description: changed\n    severity: warning\n", 1)
				d1, d2 := e.Swap(loadSet(t, src2)), ref.Swap(loadSet(t, src2))
				always()
				if a, b := fmt.Sprint(d1), fmt.Sprint(d2); a != b {
					t.Fatalf("seed %d: reload: %s\nreference: %s\npolicies:%s", seed, a, b, src)
				}
			}
			now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			in := randomInput(rng, now)
			a, b := fmt.Sprint(e.Process(in)), fmt.Sprint(ref.Process(in))
			if a != b {
				t.Fatalf("seed %d, input %d (%+v):\n%s\nreference:\n%s\npolicies:%s", seed, i, in, a, b, src)
			}
			decisions += len(e.out)
		}
		if e.Stats() != ref.Stats() {
			t.Fatalf("seed %d: stats %+v, reference %+v", seed, e.Stats(), ref.Stats())
		}
	}
	// Conditions of both kinds, and decisions enough for the comparison to say something.
	if reading < 20 || notReading < 20 || decisions < 1000 {
		t.Fatalf("%d conditions read the instance, %d do not, %d decisions: too few", reading, notReading, decisions)
	}
	t.Logf("%d seeds: %d decisions; %d conditions read the instance, %d do not", seeds, decisions, reading, notReading)
}

// randomPolicySet returns 3 to 6 event and sample policies whose conditions mix keys,
// the instance's labels, helper calls (per instance and across), firing() and shapes
// that only expr evaluates.
func randomPolicySet(rng *rand.Rand) string {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	cond := func(atoms []string) string {
		c := pick(atoms...)
		for range rng.IntN(3) {
			c += pick(" && ", " || ") + pick(atoms...)
		}
		return c
	}
	eventAtoms := []string{
		`labels.team == "t1"`, `labels.a == "x"`, `labels.b != "y"`, `event.labels.b != "y"`,
		`event.value > 2`, `event.value <= 1`, `count("E1", "30s") >= 2`,
		"count(\"E1\", \"30s\", `by ()`) >= 3", "count(\"E2\", \"1m\", `{b=\"x\"}`) > 1",
		`since("E2") < 10`, `metrics.m > 5`, `avg_over("m", "20s") > 4`, `firing("p0")`,
		`event.value + 1 > 3`, `labels.team in ["t1", "t3"]`, `!firing("p0", "a")`, `firing("p1", "a", "team")`,
	}
	sampleAtoms := []string{
		`metrics.m > 5`, `metrics.n < 3`, `avg_over("n", "20s") > 2`, `max_over("m", "10s") >= 8`,
		`labels.team == "t1"`, `metrics.m + 1 > 6`, `firing("p1")`, `count("E1", "1m") > 4`, `firing("p0", "team")`,
	}
	var b strings.Builder
	b.WriteString("policies:\n")
	for i := range 3 + rng.IntN(4) {
		fmt.Fprintf(&b, "  - name: p%d\n", i)
		sample := rng.IntN(3) == 0
		if sample {
			fmt.Fprintf(&b, "    on: [sample]\n    when: '%s'\n", cond(sampleAtoms))
			if rng.IntN(2) == 0 {
				b.WriteString("    keep_firing_for: 5s\n")
			}
		} else {
			fmt.Fprintf(&b, "    on: [%s]\n    when: '%s'\n", pick("E1", "E1, E2", "E*"), cond(eventAtoms))
			if g := pick("", "a", "a, b"); g != "" {
				fmt.Fprintf(&b, "    group_by: [%s]\n", g)
			}
			if rng.IntN(2) == 0 {
				b.WriteString("    resolve_on: [OK]\n")
			}
		}
		if rng.IntN(3) == 0 {
			b.WriteString("    for: 4s\n")
		}
		if team := pick("", "t1", "t2"); team != "" {
			fmt.Fprintf(&b, "    labels: {team: %s}\n", team)
		}
	}
	return b.String()
}

func randomInput(rng *rand.Rand, now time.Time) Input {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	switch r := rng.IntN(20); {
	case r < 12:
		labels := map[string]string{}
		for _, l := range []string{"a", "b"} {
			if v := pick("x", "y", ""); v != "" {
				labels[l] = v
			}
		}
		return &Event{Time: now, Code: pick("E1", "E1", "E2", "E3", "OK"), Labels: labels, Value: float64(rng.IntN(5))}
	case r < 17:
		vals := map[string]float64{}
		if rng.IntN(5) > 0 {
			vals["m"] = float64(rng.IntN(11))
		}
		if rng.IntN(5) > 0 {
			vals["n"] = float64(rng.IntN(6))
		}
		return Sample{Time: now, Values: vals}
	}
	return Tick{Time: now}
}
