package conditions

import (
	"fmt"
	"math"
	"testing"
)

// Targeted cases where the fast path and expr could part: absent values, mixed kinds,
// NaN/±Inf/-0, integer constants at float64's exact limit, short-circuit with a failing
// right side, constants on the left, unicode label names. Each condition is evaluated by
// a runtime on the fast path and by one on expr only, after each of several inputs.

// slowCopy is c without its fast path.
func slowCopy(c *Condition) *Condition { s := *c; s.fast = nil; return &s }

// agree fails t if the two evaluations differ in value, error or explanation.
func agree(t *testing.T, step string, rf, rs *Runtime, f, s *Condition) {
	t.Helper()
	vf, ef := rf.Eval(f, t0)
	vs, es := rs.Eval(s, t0)
	if vf != vs || fmt.Sprint(ef) != fmt.Sprint(es) {
		t.Errorf("%s, %q: fast %v, %v; expr %v, %v", step, f.Source, vf, ef, vs, es)
	}
	if xf, xs := fmt.Sprint(rf.Explain(f, t0)), fmt.Sprint(rs.Explain(s, t0)); xf != xs {
		t.Errorf("%s, explain %q: fast %s, expr %s", step, f.Source, xf, xs)
	}
}

func TestFastPathEdgeCases(t *testing.T) {
	srcs := []string{
		`metrics.m > 1`, `metrics.m != metrics.m`, `metrics.m >= metrics.m`, `metrics.m == 0`,
		`metrics.m < 0`, `-0.0 == metrics.m`, `metrics.m > 1e308`, `metrics.m < -1e308`,
		`metrics.nope > 1`, `metrics.nope == metrics.nope`, `1 < metrics.m`, `0 >= metrics.m`,
		`metrics.m == 9007199254740991`, `metrics.m == 9007199254740993`, `metrics.m > -9007199254740993`,
		`metrics.m < 9223372036854775807`, `count("C1", "1m") < 9223372036854775807`,
		`count("C1", "1m") == 1.0`, `count("C1", "1m") > 0.5`, `hour() == 9.0`, `weekday() >= 1`,
		`since("C1") > 1e309`, `since("C9") == since("C9")`, `avg_over("m", "1m") != avg_over("m", "1m")`,
		`event.labels.x == "a"`, `event.labels.x != nil`, `nil == event.labels.x`, `event.labels.x < "b"`,
		`"b" > event.labels.x`, `labels.a > labels.b`, `labels.a == labels.b`, `event.value == event.value`,
		`event.value > 0`, `event.value >= -0.0`, `event.code == "C1"`, `"C1" == event.code`, `event.code <= event.source`,
		`false && labels.a > labels.b`, `labels.x == nil || event.labels.x < "a"`,
		`event.labels.x < "a" || true`, `true || event.labels.x < "a"`, `!(event.labels.x < "a") && false`,
		`not (metrics.m > 1) and metrics.nope < 2`, `!firing("p") || event.value > 1`, `firing("p") == true`,
		`event.labels["é"] == "ü"`, `event.labels["a b"] != "x y"`, `labels["ünï"] < "z"`,
		`metrics.m > 1 == false`, `(metrics.m > 1) != (event.value > 1)`, `metrics.m > 2 * 3`, `metrics.m > 10 / 4`,
		`metrics.m > -(1)`, `event.labels.x == "a" || event.labels.x == "b"`,
	}
	var fast, slow []*Condition
	for _, src := range srcs {
		c, err := Compile(src)
		if err != nil {
			t.Logf("%q: not compiled: %v", src, err)
			continue
		}
		fast, slow = append(fast, c), append(slow, slowCopy(c))
	}
	rf, rs := NewRuntime(nil, nil), NewRuntime(nil, nil)
	rf.Prepare(fast)
	rs.Prepare(slow)
	both := func(f func(r *Runtime)) { f(rf); f(rs) }
	check := func(step string) {
		for i := range fast {
			agree(t, step, rf, rs, fast[i], slow[i])
		}
	}
	check("nothing observed")
	for _, v := range []float64{0, math.Copysign(0, -1), 1, math.NaN(), math.Inf(1), math.Inf(-1), 9007199254740992, 9007199254740994, -9007199254740994} {
		both(func(r *Runtime) {
			r.ObserveSample(t0, map[string]float64{"m": v})
			r.ClearEvent()
		})
		check(fmt.Sprintf("sample %v", v))
		both(func(r *Runtime) {
			r.ObserveEvent(t0, "C1", "wa", "", v, map[string]string{"x": "a", "é": "ü", "a b": "x y"})
		})
		check(fmt.Sprintf("event value %v", v))
	}
	both(func(r *Runtime) { r.SetLabels(map[string]string{"a": "1", "b": "", "ünï": "y"}) })
	check("labels")
	both(func(r *Runtime) { r.ObserveEvent(t0, "C2", "C2", "", 0, nil) })
	check("event without labels")
}

// A reload that changes which conditions read a key: the expr environment and the slots
// must agree afterwards, on keys newly read by expr and on keys that went out of use
// and came back.
func TestFastPathReload(t *testing.T) {
	a := mustCompile(t, `event.labels.x == "1"`)            // fast
	b := mustCompile(t, `event.labels.x in ["1"]`)          // expr only
	m := mustCompile(t, `metrics.m > 1 || labels.t == "a"`) // fast
	if a.fast == nil || b.fast != nil || m.fast == nil {
		t.Fatal("shapes changed: a fast, b expr, m fast expected")
	}
	other := mustCompile(t, `event.code == "C"`)
	for _, tc := range []struct {
		name  string
		steps func(r *Runtime, a, b, m *Condition)
		eval  []*Condition
	}{
		{"expr starts reading a key the fast path kept", func(r *Runtime, a, b, m *Condition) {
			r.Prepare([]*Condition{a})
			r.ObserveEvent(t0, "C", "s", "", 0, map[string]string{"x": "1"})
			r.Prepare([]*Condition{a, b})
		}, []*Condition{b}},
		{"a key out of use and back", func(r *Runtime, a, b, m *Condition) {
			r.Prepare([]*Condition{a, m})
			r.ObserveEvent(t0, "C", "s", "", 0, map[string]string{"x": "1"})
			r.SetLabels(map[string]string{"t": "a"})
			r.ObserveSample(t0, map[string]float64{"m": 5})
			r.Prepare([]*Condition{other})
			r.ObserveEvent(t0, "C", "s", "", 0, nil)
			r.ClearEvent()
			r.SetLabels(nil)
			r.Prepare([]*Condition{a, m, b})
		}, []*Condition{a, b, m}},
		{"a condition evaluated after its keys went out of use", func(r *Runtime, a, b, m *Condition) {
			r.Prepare([]*Condition{a, m})
			r.ObserveEvent(t0, "C", "s", "", 0, map[string]string{"x": "1"})
			r.SetLabels(map[string]string{"t": "a"})
			r.Prepare([]*Condition{other})
		}, []*Condition{a, m}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rf, rs := NewRuntime(nil, nil), NewRuntime(nil, nil)
			as, bs, ms := slowCopy(a), slowCopy(b), slowCopy(m)
			tc.steps(rf, a, b, m)
			tc.steps(rs, as, bs, ms)
			slowOf := map[*Condition]*Condition{a: as, b: bs, m: ms}
			for _, c := range tc.eval {
				agree(t, tc.name, rf, rs, c, slowOf[c])
				// The fast runtime's expr-only condition against its own explanation.
				if c.fast == nil {
					v, _ := rf.Eval(c, t0)
					if x := fmt.Sprint(rf.Explain(c, t0)); v != (x == `[event.labels.x="1"]`) {
						t.Errorf("%q = %v but explained as %s", c.Source, v, x)
					}
				}
			}
		})
	}
}
