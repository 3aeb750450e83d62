package conditions

import (
	"testing"
	"time"
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
