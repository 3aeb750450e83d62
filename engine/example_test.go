package engine

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/policies"
)

// Every default policy's example wakes it, and makes its condition true unless the
// condition needs history one input cannot give (count() over a window, trends): before,
// the dashboard offered a CPU sample for every policy, and memory-high answered
// mem_percent=NaN.
func TestExamplesWakeTheirPolicy(t *testing.T) {
	set, err := policies.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range set.Policies {
		ex := Example(p)
		b, _ := json.Marshal(ex)
		var in Input
		if e, ok := ex["event"].(map[string]any); ok {
			ev := Event{Time: exampleTime, Code: e["code"].(string), Source: e["source"].(string), Labels: e["labels"].(map[string]string)}
			if v, ok := e["value"].(float64); ok {
				ev.Value = v
			}
			in = ev
		} else {
			s := ex["sample"].(map[string]any)
			in = Sample{Time: exampleTime, Values: s["values"].(map[string]float64)}
		}
		r := Try(p, in, nil)
		needsHistory := false
		if p.Cond != nil {
			u := p.Cond.Uses()
			needsHistory = len(u.Codes) > 0
			for _, w := range u.Metrics {
				needsHistory = needsHistory || w > 0
			}
		}
		for _, v := range r.Values {
			if strings.Contains(v.String(), "NaN") {
				t.Errorf("%s: example %s leaves %s unset", p.Name, b, v)
			}
		}
		if !r.Matched || r.Err != nil || (!r.Result && !needsHistory) {
			t.Errorf("%s: example %s: matched %v, result %v, %v, values %v", p.Name, b, r.Matched, r.Result, r.Err, r.Values)
		}
	}
	// Every example value is inside its metric's range (before: error-rate-high offered
	// error_rate=95, a ratio of 0..1).
	for _, p := range set.Policies {
		s, ok := Example(p)["sample"].(map[string]any)
		if !ok {
			continue
		}
		for m, v := range s["values"].(map[string]float64) {
			unit := policies.MetricUnit(m)
			if (unit == "ratio" && (v < 0 || v > 1)) || (unit == "%" && (v < 0 || v > 100)) {
				t.Errorf("%s: example %s=%v is outside its unit %q", p.Name, m, v, unit)
			}
		}
	}
	memory := Example(set.ByName("memory-high"))
	values := memory["sample"].(map[string]any)["values"].(map[string]float64)
	if _, ok := values["mem_percent"]; !ok || len(values) != 1 {
		t.Fatalf("memory-high's example: %v", memory)
	}
}
