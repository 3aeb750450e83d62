package conditions

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The differential test: seeded random conditions over every kind of operand, evaluated
// on seeded random inputs by two runtimes, one taking the fast path and one expr only.
// Result and error must agree on every evaluation.

type condGen struct{ rng *rand.Rand }

func (g condGen) pick(xs ...string) string { return xs[g.rng.IntN(len(xs))] }

func (g condGen) constant() string {
	switch g.rng.IntN(6) {
	case 0:
		return g.pick(`"a"`, `"b"`, `""`, `"C1"`)
	case 1:
		return "nil"
	case 2:
		return g.pick("0.5", "1.5", "-2.5", "99.0", "-0.0", "9007199254740993", "-9007199254740991")
	default:
		return g.pick("0", "1", "2", "3", "-1", "50", "100")
	}
}

func (g condGen) operand() string {
	return g.pick(
		"event.code", "event.source", "event.message", "event.value", "event.labels.a", "event.labels.b", `event.labels["é"]`,
		"labels.a", "labels.team", "metrics.m0", "metrics.m1", "metrics.m2",
		`count("C1", "1m")`, `count("C2", "10s")`, `avg_over("m0", "1m")`, `max_over("m1", "30s")`,
		`min_over("m2", "1m")`, `rate("m0", "1m")`, `increase("m1", "1m")`, `since("C1")`, "hour()", "weekday()",
		// selectors (history per instance): by the instance's labels, across, matched
		"count(\"C1\", \"1m\", `by ()`)", "count(\"C1\", \"30s\", `{b=\"a\"}`)", "count(\"C2\", \"1m\", `by (a) {team!~\"C.*\"}`)",
		"since(\"C1\", `by ()`)", "since(\"C2\", `{a!=\"\"}`)",
	)
}

func (g condGen) atom() string {
	op := g.pick("==", "!=", "<", "<=", ">", ">=")
	switch g.rng.IntN(10) {
	case 0:
		return g.pick(`firing("p1")`, `firing("p2")`, `firing("p1", "a")`, `firing("p2", "a", "team")`)
	case 1:
		return g.pick("true", "false")
	case 2:
		return g.operand() + " " + op + " " + g.operand()
	case 3:
		return g.constant() + " " + op + " " + g.operand()
	case 4: // shapes left to expr, to check that mixing stays right
		return g.pick(`event.code in ["C1", "C2"]`, `metrics.m0 + 1 > 2`, `event.labels.a matches "^a"`)
	default:
		return g.operand() + " " + op + " " + g.constant()
	}
}

func (g condGen) cond(depth int) string {
	if depth == 0 || g.rng.IntN(3) == 0 {
		return g.atom()
	}
	switch g.rng.IntN(5) {
	case 0:
		return "!(" + g.cond(depth-1) + ")"
	case 4:
		return "not (" + g.cond(depth-1) + ") and " + g.cond(depth-1)
	case 1:
		return "(" + g.cond(depth-1) + ") || (" + g.cond(depth-1) + ")"
	default:
		return g.cond(depth-1) + " && " + g.cond(depth-1)
	}
}

// feed applies one random input to both runtimes.
func feedRandom(rng *rand.Rand, now time.Time, rts ...*Runtime) {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	labels := func() map[string]string {
		m := map[string]string{}
		for _, k := range []string{"a", "b", "team", "é"} {
			if rng.IntN(3) > 0 {
				m[k] = pick("a", "b", "", "C1")
			}
		}
		return m
	}
	switch rng.IntN(5) {
	case 0, 1:
		code, src, msg, v, l := pick("C1", "C2", "C3", "a"), pick("a", "wa"), pick("", "b"), float64(rng.IntN(5))-1, labels()
		for _, r := range rts {
			r.ObserveEvent(now, code, src, msg, v, l)
		}
	case 2:
		vals := map[string]float64{}
		for _, m := range []string{"m0", "m1", "m2"} {
			switch rng.IntN(4) {
			case 0:
			case 1:
				vals[m] = []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1)}[rng.IntN(4)]
			default:
				vals[m] = float64(rng.IntN(6)) - 1
			}
		}
		for _, r := range rts {
			r.ObserveSample(now, vals)
			r.ClearEvent()
		}
	case 3:
		// An instance's labels, or a new instance's: group labels from an event.
		l, ev := labels(), labels()
		by := [][]string{nil, {"a"}, {"a", "team"}}[rng.IntN(3)]
		whole := rng.IntN(2) == 0
		for _, r := range rts {
			if whole {
				r.SetLabels(l)
			} else {
				r.SetInstanceLabels(l, ev, by)
			}
		}
	default:
		for _, r := range rts {
			r.ClearEvent()
		}
	}
}

func TestFastPathDifferential(t *testing.T) {
	nConds, nInputs := 400, 300
	if testing.Short() || raceEnabled {
		nConds, nInputs = 150, 120
	}
	rng := rand.New(rand.NewPCG(18, 2026))
	g := condGen{rng}
	var fast, slow []*Condition
	groupBys := [][]string{nil, {"a"}, {"a", "team"}}
	for len(fast) < nConds {
		src := g.cond(3)
		c, err := Compile(src, GroupBy(groupBys[rng.IntN(len(groupBys))]))
		if err != nil {
			continue // ill-typed at load time, e.g. event.code > 1
		}
		s := *c
		s.fast = nil
		fast, slow = append(fast, c), append(slow, &s)
	}
	covered := 0
	for _, c := range fast {
		if c.fast != nil {
			covered++
		}
	}
	if covered < nConds/2 {
		t.Fatalf("only %d of %d random conditions took the fast path", covered, nConds)
	}
	firing := map[string]bool{}
	isFiring := func(p string) bool { return firing[p] }
	rf, rs := NewRuntime(nil, isFiring), NewRuntime(nil, isFiring)
	// firing() with labels: an instance of p whose "a" is wantA fires.
	wantA := ""
	eq := func(p string, labels, values []string) bool { return firing[p] && values[0] == wantA }
	rf.SetFiringEqual(eq)
	rs.SetFiringEqual(eq)
	rf.Prepare(fast)
	rs.Prepare(slow)
	now := t0
	errs, reloads := 0, 0
	prepared := make([]bool, len(fast))
	for j := range prepared {
		prepared[j] = true
	}
	for i := 0; i < nInputs; i++ {
		// Now and then a reload to a random subset (Prepare keeps slots and history of
		// the keys still read). The prepared conditions are evaluated, and the others
		// that have a fast path: they read absent values, as expr reads missing keys.
		// (An expr-only condition is evaluated only after Prepare, as the engine does.)
		if i > 0 && rng.IntN(12) == 0 {
			var sf, ss []*Condition
			for j := range fast {
				prepared[j] = rng.IntN(3) > 0
				if prepared[j] {
					sf, ss = append(sf, fast[j]), append(ss, slow[j])
				}
			}
			rf.Prepare(sf)
			rs.Prepare(ss)
			reloads++
		}
		now = now.Add(time.Duration(rng.IntN(20_000)) * time.Millisecond)
		feedRandom(rng, now, rf, rs)
		firing["p1"], firing["p2"] = rng.IntN(2) == 0, rng.IntN(2) == 0
		wantA = g.pick("a", "b", "")
		for j := range fast {
			if !prepared[j] && fast[j].fast == nil {
				continue
			}
			vf, ef := rf.Eval(fast[j], now)
			vs, es := rs.Eval(slow[j], now)
			if vf != vs || (ef == nil) != (es == nil) || (ef != nil && ef.Error() != es.Error()) {
				t.Fatalf("input %d, %q: fast %v, %v; expr %v, %v", i, fast[j].Source, vf, ef, vs, es)
			}
			// EvalFast answers as Eval does, or leaves it to Eval where expr fails.
			if v, ok := rf.EvalFast(fast[j], now); ok && (v != vf || ef != nil) || !ok && fast[j].fast != nil && ef == nil {
				t.Fatalf("input %d, %q: EvalFast %v, %v; Eval %v, %v", i, fast[j].Source, v, ok, vf, ef)
			}
			if ef != nil {
				errs++
			}
			ef1, ef2 := fmt.Sprint(rf.Explain(fast[j], now)), fmt.Sprint(rs.Explain(slow[j], now))
			if ef1 != ef2 {
				t.Fatalf("explain %q: fast %s, expr %s", fast[j].Source, ef1, ef2)
			}
		}
	}
	if errs == 0 {
		t.Fatal("no evaluation failed: the error paths were not exercised")
	}
	t.Logf("%d conditions (%d fast), %d inputs, %d reloads, %d evaluation errors", nConds, covered, nInputs, reloads, errs)
}

// The shapes named by the policy language's docs take the fast path.
func TestFastPathCovers(t *testing.T) {
	for _, src := range []string{
		`metrics.cpu_percent > 90`,
		`event.labels.reason != "logged_out" && event.value > 3`,
		`count("WA_DISCONNECTED", "5m") >= 3 || avg_over("memory_percent", "10m") > 80`,
		`!firing("db-down") && labels.team == "ops"`,
		`since("QUEUE_DRAINED") > 600 and not (hour() < 6)`,
	} {
		if mustCompile(t, src).fast == nil {
			t.Errorf("%q: not on the fast path", src)
		}
	}
	for _, src := range []string{`metrics.a + 1 > 2`, `event.code in ["A", "B"]`, `event.message matches "x"`} {
		if mustCompile(t, src).fast != nil {
			t.Errorf("%q: on the fast path, want expr", src)
		}
	}
	if s := mustCompile(t, `event.code == "A"`).Source; !strings.Contains(s, "A") {
		t.Fatal(s)
	}
}

// A condition evaluated on a runtime that was not prepared for it reads absent values,
// as expr reads missing keys, and does not panic.
func TestFastPathUnprepared(t *testing.T) {
	c := mustCompile(t, `event.labels.x == "a" || metrics.zz > 1`)
	s := *c
	s.fast = nil
	r := NewRuntime(nil, nil)
	vf, ef := r.Eval(c, t0)
	vs, es := r.Eval(&s, t0)
	if vf != vs || (ef == nil) != (es == nil) {
		t.Fatalf("fast %v, %v; expr %v, %v", vf, ef, vs, es)
	}
}

// A condition that ReadsInstance says does not read the instance gives the same result
// and error whatever instance labels are set: the engine skips setting them for it.
func TestReadsInstance(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 2026))
	g := condGen{rng}
	groupBys := [][]string{nil, {"a"}, {"a", "team"}}
	var conds []*Condition
	for len(conds) < 300 {
		c, err := Compile(g.cond(3), GroupBy(groupBys[rng.IntN(len(groupBys))]))
		if err == nil {
			conds = append(conds, c)
		}
	}
	r := NewRuntime(nil, nil)
	r.Prepare(conds)
	labels := func() map[string]string {
		m := map[string]string{}
		for _, k := range []string{"a", "b", "team"} {
			if rng.IntN(3) > 0 {
				m[k] = []string{"a", "b", "", "C1"}[rng.IntN(4)]
			}
		}
		return m
	}
	now := t0
	reading, differ := 0, 0
	for _, c := range conds {
		if c.ReadsInstance() {
			reading++
		}
	}
	for i := range 200 {
		now = now.Add(time.Duration(rng.IntN(20_000)) * time.Millisecond)
		feedRandom(rng, now, r)
		by := groupBys[rng.IntN(len(groupBys))]
		p1, e1, p2, e2 := labels(), labels(), labels(), labels()
		for _, c := range conds {
			r.SetInstanceLabels(p1, e1, by)
			v1, err1 := r.Eval(c, now)
			r.SetInstanceLabels(p2, e2, by)
			v2, err2 := r.Eval(c, now)
			same := v1 == v2 && fmt.Sprint(err1) == fmt.Sprint(err2)
			if !same && !c.ReadsInstance() {
				t.Fatalf("input %d, %q: %v, %v with labels %v/%v; %v, %v with %v/%v", i, c.Source, v1, err1, p1, e1, v2, err2, p2, e2)
			}
			if !same {
				differ++
			}
		}
	}
	// The generator must make conditions of both kinds, and labels that matter.
	if reading < 50 || reading > len(conds)-50 || differ == 0 {
		t.Fatalf("%d of %d conditions read the instance, %d evaluations differed by it", reading, len(conds), differ)
	}
}
