package conditions

import (
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// BenchmarkEval measures one three-clause condition; compare with the hand-written
// equivalent below (TESTING-FACTS.md: ~170 ns map env, ~18 ns plain Go).
func BenchmarkEval(b *testing.B) {
	c := mustCompile(b, `event.code == "WA_DISCONNECTED" && event.labels.reason != "logged_out" && metrics.cpu_percent > 90`)
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	labels := map[string]string{"reason": "network"}
	r.ObserveSample(t0, map[string]float64{"cpu_percent": 95})
	r.ObserveEvent(t0, "WA_DISCONNECTED", "wa", "", 0, labels)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := r.Eval(c, t0); !ok {
			b.Fatal("false")
		}
	}
}

// BenchmarkEvalExpr is BenchmarkEval's condition with the fast path turned off: expr's
// VM over the flat map environment.
func BenchmarkEvalExpr(b *testing.B) {
	c := mustCompile(b, `event.code == "WA_DISCONNECTED" && event.labels.reason != "logged_out" && metrics.cpu_percent > 90`)
	c.fast = nil
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	r.ObserveSample(t0, map[string]float64{"cpu_percent": 95})
	r.ObserveEvent(t0, "WA_DISCONNECTED", "wa", "", 0, map[string]string{"reason": "network"})
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := r.Eval(c, t0); !ok {
			b.Fatal("false")
		}
	}
}

func BenchmarkEvalHandWritten(b *testing.B) {
	code, labels, metrics := "WA_DISCONNECTED", map[string]string{"reason": "network"}, map[string]float64{"cpu_percent": 95}
	b.ReportAllocs()
	for b.Loop() {
		if !(code == "WA_DISCONNECTED" && labels["reason"] != "logged_out" && metrics["cpu_percent"] > 90) {
			b.Fatal("false")
		}
	}
}

func BenchmarkCountWindow(b *testing.B) {
	c := mustCompile(b, `count("E", "10m") > 5`)
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		r.ObserveEvent(now, "E", "", "", 0, nil)
		r.Eval(c, now)
	}
}

// The two representations the design considered, with plain expr: a nested
// map[string]any environment and a struct environment. remedy's flat, rewritten
// environment (BenchmarkEval) is compared against these.
func BenchmarkEnvNestedMap(b *testing.B) {
	env := map[string]any{
		"event":   map[string]any{"code": "WA_DISCONNECTED", "labels": map[string]string{"reason": "network"}},
		"metrics": map[string]any{"cpu_percent": 95.0},
	}
	prog, err := expr.Compile(`event.code == "WA_DISCONNECTED" && event.labels.reason != "logged_out" && metrics.cpu_percent > 90`, expr.Env(env))
	if err != nil {
		b.Fatal(err)
	}
	var v vm.VM
	b.ReportAllocs()
	for b.Loop() {
		if out, _ := v.Run(prog, env); out != true {
			b.Fatal(out)
		}
	}
}

type structEvent struct {
	Code   string            `expr:"code"`
	Labels map[string]string `expr:"labels"`
}

type structEnv struct {
	Event   structEvent        `expr:"event"`
	Metrics map[string]float64 `expr:"metrics"`
}

func BenchmarkEnvStruct(b *testing.B) {
	env := &structEnv{Event: structEvent{Code: "WA_DISCONNECTED", Labels: map[string]string{"reason": "network"}},
		Metrics: map[string]float64{"cpu_percent": 95}}
	prog, err := expr.Compile(`event.code == "WA_DISCONNECTED" && event.labels.reason != "logged_out" && metrics.cpu_percent > 90`, expr.Env(env))
	if err != nil {
		b.Fatal(err)
	}
	var v vm.VM
	b.ReportAllocs()
	for b.Loop() {
		if out, _ := v.Run(prog, env); out != true {
			b.Fatal(out)
		}
	}
}
