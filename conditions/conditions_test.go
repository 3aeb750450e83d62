package conditions

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func mustCompile(t testing.TB, src string) *Condition {
	t.Helper()
	c, err := Compile(src)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return c
}

func TestCompileErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{`event.cod == "x"`, "(1:7)"},
		{`metrics.cpu_percent > "high"`, "invalid operation"},
		{`rate("x")`, "not enough arguments"},
		{`event.code`, "expected bool"},
		{`rate(event.code, "5m") > 1`, "arguments must be string constants"},
		{`count("X", "5 minutes") > 1`, "invalid duration"},
		{`avg_over("x", "-5m") > 1`, "window must be positive"},
		{`len(event.labels) > 0`, "event.labels is not a value"},
		{`now() > 0`, "unknown name now"},
		{"event.code == \"a\" &&\n  nope > 1", "(2:3)"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := Compile(tt.src)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *Error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestEvalEventAndLabels(t *testing.T) {
	c := mustCompile(t, `event.code == "WA_DISCONNECTED" && event.labels.reason != "logged_out" && labels.team == "ops"`)
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	r.SetLabels(map[string]string{"team": "ops"})
	r.ObserveEvent(t0, "WA_DISCONNECTED", "wa", "", 0, map[string]string{"reason": "network"})
	if ok, err := r.Eval(c, t0); !ok || err != nil {
		t.Fatalf("network: got %v, %v", ok, err)
	}
	r.ObserveEvent(t0, "WA_DISCONNECTED", "wa", "", 0, map[string]string{"reason": "logged_out"})
	if ok, _ := r.Eval(c, t0); ok {
		t.Fatal("logged_out matched")
	}
	r.ClearEvent()
	if ok, _ := r.Eval(c, t0); ok {
		t.Fatal("matched with no event")
	}
}

func TestMetricsAbsentIsFalse(t *testing.T) {
	gt := mustCompile(t, `metrics.cpu_percent > 90`)
	lt := mustCompile(t, `metrics.cpu_percent < 90`)
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{gt, lt})
	for _, c := range []*Condition{gt, lt} {
		if ok, _ := r.Eval(c, t0); ok {
			t.Fatalf("%s true before any sample", c.Source)
		}
	}
	r.ObserveSample(t0, map[string]float64{"cpu_percent": 95})
	if ok, _ := r.Eval(gt, t0); !ok {
		t.Fatal("95 > 90 false")
	}
	// A sample without the metric keeps the latest value.
	r.ObserveSample(t0.Add(time.Second), map[string]float64{"mem_percent": 5})
	if ok, _ := r.Eval(gt, t0); !ok {
		t.Fatal("latest value lost")
	}
}

func TestWindowFunctions(t *testing.T) {
	srcs := map[string]string{
		"rate": `rate("c", "1m")`, "increase": `increase("c", "1m")`, "avg": `avg_over("c", "1m")`,
		"max": `max_over("c", "1m")`, "min": `min_over("c", "1m")`, "count": `count("E", "1m")`, "since": `since("E")`,
	}
	conds := map[string]*Condition{}
	var all []*Condition
	for k, s := range srcs {
		conds[k] = mustCompile(t, s+" >= 0")
		all = append(all, conds[k])
	}
	r := NewRuntime(nil, nil)
	r.Prepare(all)
	// Counter 0,10,20,5(reset),15 at 0,15,30,45,60 s.
	for i, v := range []float64{0, 10, 20, 5, 15} {
		r.ObserveSample(t0.Add(time.Duration(i)*15*time.Second), map[string]float64{"c": v})
	}
	now := t0.Add(60 * time.Second)
	r.ObserveEvent(t0.Add(-time.Second), "E", "", "", 0, nil) // outside the window
	r.ObserveEvent(t0.Add(30*time.Second), "E", "", "", 0, nil)
	r.ObserveEvent(now, "E", "", "", 0, nil)
	want := map[string]float64{"increase": 10 + 10 + 5 + 10, "rate": 35.0 / 60, "avg": 10, "max": 20, "min": 0, "count": 2, "since": 0}
	for k, w := range want {
		v := r.Explain(conds[k], now)[0].Value
		var got float64
		switch x := v.(type) {
		case float64:
			got = x
		case int:
			got = float64(x)
		}
		if math.Abs(got-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", srcs[k], v, w)
		}
	}
	// The window reaches back exactly its length: at now+1s the first sample (t0) is out.
	if v := r.Explain(conds["min"], now.Add(time.Second))[0].Value.(float64); v != 5 {
		t.Errorf("min one second later = %v, want 5", v)
	}
	if v := r.Explain(conds["since"], now.Add(90*time.Second))[0].Value.(float64); v != 90 {
		t.Errorf("since = %v, want 90", v)
	}
}

func TestSinceNeverIsInf(t *testing.T) {
	c := mustCompile(t, `since("WA_LOGGED_OUT") > 3600`)
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	if ok, _ := r.Eval(c, t0); !ok {
		t.Fatal("since of a never-seen code should be +Inf")
	}
}

func TestHourWeekdayInZone(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Jakarta")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	c := mustCompile(t, `hour() == 16 && weekday() == 1`)
	r := NewRuntime(loc, nil)
	r.Prepare([]*Condition{c})
	if ok, _ := r.Eval(c, t0); !ok { // 09:00 UTC Monday = 16:00 WIB
		t.Fatal("hour/weekday not in the configured zone")
	}
}

func TestFiringAsksEngine(t *testing.T) {
	c := mustCompile(t, `!firing("wa-logged-out")`)
	firing := false
	r := NewRuntime(nil, func(p string) bool { return p == "wa-logged-out" && firing })
	r.Prepare([]*Condition{c})
	if ok, _ := r.Eval(c, t0); !ok {
		t.Fatal("want true while not firing")
	}
	firing = true
	if ok, _ := r.Eval(c, t0); ok {
		t.Fatal("want false while firing")
	}
}

// firing("policy", "label", …) asks for an instance whose labels are the current
// event's; with no current event, the instance's being evaluated. An absent label reads "".
func TestFiringEqual(t *testing.T) {
	c := mustCompile(t, `!firing("wa-logged-out", "session")`)
	if got := c.Sites()[0].Equal; len(got) != 1 || got[0] != "session" {
		t.Fatalf("Equal = %q", got)
	}
	firingFor := map[string]bool{"a": true} // wa-logged-out fires for session a
	var asked []string
	r := NewRuntime(nil, func(string) bool { return true })
	r.SetFiringEqual(func(p string, labels, values []string) bool {
		asked = append(asked, p+":"+labels[0]+"="+values[0])
		return p == "wa-logged-out" && firingFor[values[0]]
	})
	r.Prepare([]*Condition{c})
	for _, tc := range []struct {
		event    map[string]string // nil: no current event
		instance map[string]string
		want     bool
		asked    string
	}{
		{event: map[string]string{"session": "a"}, want: false, asked: "wa-logged-out:session=a"},
		{event: map[string]string{"session": "b"}, want: true, asked: "wa-logged-out:session=b"},
		{event: map[string]string{}, want: true, asked: "wa-logged-out:session="},
		{instance: map[string]string{"session": "a"}, want: false, asked: "wa-logged-out:session=a"},
		{instance: map[string]string{}, want: true, asked: "wa-logged-out:session="},
	} {
		asked = nil
		if tc.event != nil {
			r.ObserveEvent(t0, "WA_DISCONNECTED", "whatsapp", "", 0, tc.event)
		} else {
			r.ClearEvent()
		}
		r.SetLabels(tc.instance)
		for _, eval := range []func() (bool, error){
			func() (bool, error) { return r.Eval(c, t0) },
			func() (bool, error) {
				v, ok := r.EvalFast(c, t0)
				return v, map[bool]error{true: nil, false: errors.New("not fast")}[ok]
			},
		} {
			if got, err := eval(); err != nil || got != tc.want {
				t.Errorf("event %v, instance %v: got %v, %v; want %v", tc.event, tc.instance, got, err, tc.want)
			}
		}
		if len(asked) != 2 || asked[0] != tc.asked {
			t.Errorf("event %v, instance %v: asked %q, want %q twice", tc.event, tc.instance, asked, tc.asked)
		}
	}
	if !c.ReadsInstance() {
		t.Error("firing() with labels must read the instance (its labels when there is no event)")
	}
	// Without SetFiringEqual the labelled form is false; the plain one still asks firing.
	r2 := NewRuntime(nil, func(string) bool { return true })
	c2 := mustCompile(t, `firing("p", "session") || !firing("p")`)
	r2.Prepare([]*Condition{c2})
	if ok, _ := r2.Eval(c2, t0); ok {
		t.Error("firing with labels and no FiringEqual: want false")
	}
}

func TestFiringEqualCompileErrors(t *testing.T) {
	for src, want := range map[string]string{
		`firing()`:                          "not enough arguments to call firing (1:1)",
		`firing("p", 1)`:                    "(1:13)",
		`firing("p", event.labels.s)`:       "firing: arguments must be string constants (1:26)",
		`firing("p", "bad-label")`:          `firing: "bad-label" is not a label name (1:13)`,
		`firing("p", "session", "session")`: `firing: label "session" given twice (1:24)`,
	} {
		_, err := Compile(src)
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an *Error with %q", src, err, want)
		}
	}
}

func TestReloadKeepsHistory(t *testing.T) {
	c := mustCompile(t, `count("E", "10m") == 2`)
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	r.ObserveEvent(t0, "E", "", "", 0, nil)
	c2 := mustCompile(t, `count("E", "10m") == 2 && true`)
	r.Prepare([]*Condition{c2})
	r.ObserveEvent(t0.Add(time.Minute), "E", "", "", 0, nil)
	if ok, _ := r.Eval(c2, t0.Add(time.Minute)); !ok {
		t.Fatal("history lost on Prepare")
	}
}

func TestSameSiteTwiceInOneExpression(t *testing.T) {
	c := mustCompile(t, `max_over("a", "1m") > max_over("b", "1m")`)
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	r.ObserveSample(t0, map[string]float64{"a": 2, "b": 1})
	if ok, _ := r.Eval(c, t0); !ok {
		t.Fatal("2 > 1 false: call sites share a cell")
	}
}

func TestEvalDoesNotAllocate(t *testing.T) {
	c := mustCompile(t, `event.code == "WA_DISCONNECTED" && event.labels.reason != "logged_out" && metrics.cpu_percent > 90 && rate("msgs", "5m") >= 0 && count("WA_DISCONNECTED", "10m") >= 1`)
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	labels := map[string]string{"reason": "network"}
	r.ObserveSample(t0, map[string]float64{"cpu_percent": 95, "msgs": 1})
	r.ObserveSample(t0.Add(time.Second), map[string]float64{"cpu_percent": 95, "msgs": 2})
	now := t0.Add(time.Second)
	r.ObserveEvent(now, "WA_DISCONNECTED", "wa", "", 0, labels)
	allocs := testing.AllocsPerRun(1000, func() {
		r.ObserveEvent(now, "WA_DISCONNECTED", "wa", "", 0, labels)
		if ok, err := r.Eval(c, now); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per evaluation", allocs)
	}
}

// FuzzCompile checks that no expression text makes compiling or evaluating panic.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`metrics.cpu_percent > 90`, `event.labels.reason != "x" && count("E", "5m") > 1`,
		`rate("m", "1m") > 0 || firing("p") || hour() == 3`, `event.labels`, `len(event.code) > 2`,
		`avg_over("m", "5m") - min_over("m", "1h") > 10`, `since("E") < 60`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Compile(src)
		if err != nil {
			return
		}
		r := NewRuntime(nil, nil)
		r.Prepare([]*Condition{c})
		r.ObserveSample(t0, map[string]float64{"m": 1})
		r.ObserveEvent(t0, "E", "s", "msg", 1, map[string]string{"reason": "r"})
		r.Eval(c, t0)
		r.Explain(c, t0)
	})
}
