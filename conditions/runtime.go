package conditions

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Runtime evaluates compiled conditions. It holds the flat environment, the history
// windows and expr's VM, all reused between evaluations. It is owned by one goroutine
// (the engine's); it is not safe for concurrent use.
type Runtime struct {
	env     map[string]any
	vm      vm.VM
	hist    History
	loc     *time.Location
	now     time.Time
	cur     *Condition
	firing  func(policy string) bool
	eventK  []string
	labelK  []string
	metricC map[string]*floatCell
	strs    map[string]*strBox
	floats  map[string]*floatCell
}

// NewRuntime returns a runtime whose hour() and weekday() use loc (UTC if nil) and whose
// firing() asks the given function.
func NewRuntime(loc *time.Location, firing func(string) bool) *Runtime {
	if loc == nil {
		loc = time.UTC
	}
	if firing == nil {
		firing = func(string) bool { return false }
	}
	r := &Runtime{loc: loc, firing: firing, env: map[string]any{}, metricC: map[string]*floatCell{},
		strs: map[string]*strBox{}, floats: map[string]*floatCell{}}
	r.env[callName] = r.call
	return r
}

// Prepare makes the runtime ready for a set of conditions: it creates the environment
// keys they read and sizes the history. Values and history of keys that stay in use are
// kept, so a reload does not forget recent samples.
func (r *Runtime) Prepare(conds []*Condition) {
	r.hist.prepare(conds)
	keys := map[string]bool{}
	for _, c := range conds {
		for _, k := range c.uses.Keys {
			keys[k] = true
		}
	}
	r.eventK, r.labelK = r.eventK[:0], r.labelK[:0]
	for k := range r.env {
		if k != callName && !keys[k] {
			delete(r.env, k)
		}
	}
	for k := range keys {
		switch {
		case strings.HasPrefix(k, "event."):
			r.eventK = append(r.eventK, k)
			if _, ok := r.env[k]; !ok {
				r.env[k] = nil
			}
		case strings.HasPrefix(k, "labels."):
			r.labelK = append(r.labelK, k)
			if _, ok := r.env[k]; !ok {
				r.env[k] = nil
			}
		case strings.HasPrefix(k, "metrics."):
			name := k[len("metrics."):]
			c := r.metricC[name]
			if c == nil {
				// An absent metric is NaN: every comparison with it is false, as an absent
				// series gives no result in Prometheus.
				c = newFloatCell(math.NaN())
				r.metricC[name] = c
			}
			r.env[k] = c.boxed
		}
	}
	sort.Strings(r.eventK)
	sort.Strings(r.labelK)
}

// ObserveEvent records an event in the history and makes it the current `event`.
func (r *Runtime) ObserveEvent(t time.Time, code, source, message string, value float64, labels map[string]string) {
	r.hist.observeEvent(t, code)
	r.SetEvent(code, source, message, value, labels)
}

// SetEvent makes an event the current `event` without recording it (to re-check a
// pending event policy when its `for` runs out).
func (r *Runtime) SetEvent(code, source, message string, value float64, labels map[string]string) {
	for _, k := range r.eventK {
		switch k {
		case "event.code":
			r.env[k] = r.str(k, code)
		case "event.source":
			r.env[k] = r.str(k, source)
		case "event.message":
			r.env[k] = r.str(k, message)
		case "event.value":
			c := r.floats[k]
			if c == nil {
				c = newFloatCell(0)
				r.floats[k] = c
			}
			r.env[k] = c.set(value)
		default: // event.labels.<name>
			if v, ok := labels[k[len("event.labels."):]]; ok {
				r.env[k] = r.str(k, v)
			} else {
				r.env[k] = nil
			}
		}
	}
}

// ClearEvent removes the current event (for samples and ticks): event fields are nil.
func (r *Runtime) ClearEvent() {
	for _, k := range r.eventK {
		r.env[k] = nil
	}
}

// ObserveSample records a sample in the history and updates `metrics`.
func (r *Runtime) ObserveSample(t time.Time, values map[string]float64) {
	r.hist.observeSample(t, values)
	for name, c := range r.metricC {
		if v, ok := values[name]; ok {
			c.set(v)
		}
	}
}

// SetLabels sets the instance's labels (`labels.<name>`).
func (r *Runtime) SetLabels(labels map[string]string) { r.SetInstanceLabels(labels, nil, nil) }

// SetInstanceLabels sets `labels.<name>` for an instance that may not exist yet: the
// names in groupBy come from the event's labels, the others from the policy's.
func (r *Runtime) SetInstanceLabels(policy, event map[string]string, groupBy []string) {
	for _, k := range r.labelK {
		name := k[len("labels."):]
		src := policy
		for _, g := range groupBy {
			if g == name {
				src = event
			}
		}
		if v, ok := src[name]; ok {
			r.env[k] = r.str(k, v)
		} else {
			r.env[k] = nil
		}
	}
}

func (r *Runtime) str(key, v string) any {
	b := r.strs[key]
	if b == nil {
		b = &strBox{}
		r.strs[key] = b
	}
	return b.box(v)
}

// Eval evaluates c at time now against the current event, metrics and labels.
// An evaluation error (for example comparing a missing label with a number) is
// returned with a false result; the engine treats it as "condition not met".
func (r *Runtime) Eval(c *Condition, now time.Time) (bool, error) {
	r.cur, r.now = c, now
	out, err := r.vm.Run(c.program, r.env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

func (r *Runtime) call(arg any) any {
	s := r.cur.sites[arg.(int)]
	return r.siteValue(s)
}

func (r *Runtime) siteValue(s *Site) any {
	switch s.Func {
	case FuncCount:
		return s.int.set(r.hist.count(s.Name, r.now, s.Window))
	case FuncSince:
		return s.float.set(r.hist.since(s.Name, r.now))
	case FuncFiring:
		return r.firing(s.Name)
	case FuncHour:
		return r.now.In(r.loc).Hour()
	case FuncWeekday:
		return int(r.now.In(r.loc).Weekday())
	default:
		return s.float.set(r.hist.aggregate(s.Func, s.Name, r.now, s.Window))
	}
}

// Value is one identifier of an expression with its value at evaluation time.
type Value struct {
	Name  string
	Value any
}

func (v Value) String() string {
	switch x := v.Value.(type) {
	case nil:
		return v.Name + "=<absent>"
	case string:
		return fmt.Sprintf("%s=%q", v.Name, x)
	case float64:
		return fmt.Sprintf("%s=%s", v.Name, formatFloat(x))
	default:
		return fmt.Sprintf("%s=%v", v.Name, x)
	}
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	}
	return fmt.Sprintf("%.4g", f)
}

// Explain returns the value of every identifier and helper call of c as it would be
// read now. Values are copies: they stay valid after later inputs.
func (r *Runtime) Explain(c *Condition, now time.Time) []Value {
	r.cur, r.now = c, now
	out := make([]Value, 0, len(c.explain))
	for _, e := range c.explain {
		var v any
		if e.key != "" {
			v = r.env[e.key]
		} else {
			v = r.siteValue(c.sites[e.site])
		}
		// Copy out of the reusable cells.
		switch x := v.(type) {
		case float64:
			v = x
		case int:
			v = x
		}
		out = append(out, Value{Name: e.text, Value: v})
	}
	return out
}

// Longest is the longest history window the prepared conditions read: how far back
// recorded inputs must be replayed (Observe*) to rebuild the history after a restart.
func (r *Runtime) Longest() time.Duration { return r.hist.longest() }
