package engine

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/remedy-run/remedy/policies"
)

// exampleValues are tried in turn for the values a condition reads; the first that makes
// it true is the example (a percentage above a high threshold, one below a low one, a
// ratio, a count, nothing).
var exampleValues = []float64{95, 5, 0.5, 1, 0, 1000}

// exampleTime is when examples are evaluated (a weekday morning), so hour() and
// weekday() in them are plausible.
var exampleTime = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// Example returns an input that wakes p, in the shape the try API takes
// ({"event": {code, labels, value}} or {"sample": {"values": {...}}}), for the
// dashboard's Test box: an event of its first `on` code (a glob is filled from the
// catalogue) from the code's source, with its group_by labels and the labels its
// condition reads, or a sample
// with every metric its condition reads. Where a value decides, the first of
// exampleValues that makes the condition true is used, so the example shows the policy
// firing when one such value exists.
func Example(p *policies.Policy) map[string]any {
	var keys []string
	var metrics []string
	if p.Cond != nil {
		u := p.Cond.Uses()
		keys = u.Keys
		for m := range u.Metrics {
			metrics = append(metrics, m)
		}
		for _, k := range keys {
			if m, ok := strings.CutPrefix(k, "metrics."); ok {
				metrics = append(metrics, m)
			}
		}
		slices.Sort(metrics)
		metrics = slices.Compact(metrics)
	}
	if p.IsSample() {
		if len(metrics) == 0 {
			metrics = []string{"cpu_percent"}
		}
		values := func(v float64) map[string]float64 {
			out := map[string]float64{}
			for _, m := range metrics {
				out[m] = inRange(m, v)
			}
			return out
		}
		build := func(v float64) map[string]any {
			return map[string]any{"sample": map[string]any{"values": values(v)}}
		}
		return pickExample(p, build, func(v float64) Input {
			return Sample{Time: exampleTime, Values: values(v)}
		})
	}
	code := exampleCode(p.On)
	source := "bot" // a code of the catalogue comes from its own source (policies may check it)
	for _, c := range policies.Codes {
		if c.Code == code {
			source = c.Source
		}
	}
	labels := map[string]string{}
	for _, g := range p.GroupBy {
		labels[g] = "example"
	}
	readsValue := false
	for _, k := range keys {
		if l, ok := strings.CutPrefix(k, "event.labels."); ok {
			labels[l] = "example"
		}
		readsValue = readsValue || k == "event.value"
	}
	build := func(v float64) map[string]any {
		ev := map[string]any{"code": code, "source": source, "labels": maps.Clone(labels)}
		if readsValue {
			ev["value"] = v
		}
		return map[string]any{"event": ev}
	}
	return pickExample(p, build, func(v float64) Input {
		return Event{Time: exampleTime, Code: code, Source: source, Labels: maps.Clone(labels), Value: v}
	})
}

// pickExample returns build(v) for the first example value that makes p's condition true,
// else build of the first value.
func pickExample(p *policies.Policy, build func(float64) map[string]any, input func(float64) Input) map[string]any {
	for _, v := range exampleValues {
		if r := Try(p, input(v), time.UTC); r.Matched && r.Result && r.Err == nil {
			return build(v)
		}
	}
	return build(exampleValues[0])
}

// exampleCode is the first code of on: without a glob, else the first catalogued code a
// glob matches, else the glob's prefix.
func exampleCode(on []string) string {
	for _, c := range on {
		if !strings.HasSuffix(c, "*") {
			return c
		}
	}
	if len(on) == 0 {
		return "EXAMPLE"
	}
	prefix := strings.TrimSuffix(on[0], "*")
	for _, k := range policies.Codes {
		if strings.HasPrefix(k.Code, prefix) {
			return k.Code
		}
	}
	return prefix + "EXAMPLE"
}

// inRange keeps an example value inside its metric's catalogued range: a ratio is 0..1
// (95 becomes 0.95: error_rate=95 would read as 9,500 %), a percentage 0..100.
func inRange(metric string, v float64) float64 {
	switch policies.MetricUnit(metric) {
	case "ratio":
		if v > 1 {
			v = min(v/100, 1)
		}
	case "%":
		v = min(v, 100)
	}
	return v
}
