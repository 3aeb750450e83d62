package conditions

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Runtime evaluates compiled conditions. It holds the current values in typed slots
// (read by the fast path, fast.go), the flat environment for expr, the history windows
// and expr's VM, all reused between evaluations. It is owned by one goroutine (the
// engine's); it is not safe for concurrent use.
type Runtime struct {
	env    map[string]any
	vm     vm.VM
	hist   History
	loc    *time.Location
	now    time.Time
	cur    *Condition
	firing func(policy string) bool
	// firingEq answers firing() with labels (SetFiringEqual); evLabels are the current
	// event's labels, hasEvent whether there is one.
	firingEq  FiringEqual
	evLabels  map[string]string
	hasEvent  bool
	equalVals []string
	// vals are the slots by key number (keyID); sync marks the keys that an expr-only
	// condition reads, whose env entry is kept current on every input. The others are
	// written into env only when a fast condition falls back to expr (syncEnv).
	vals    []value
	sync    []bool
	used    []bool // the slots of the keys the prepared conditions read
	eventK  []slotKey
	labelK  []slotKey
	metricC map[string]*metricSlot
	// targets are what a sample updates: metric slots and history series, one map
	// lookup per name.
	targets []sampleTarget
	strs    map[string]*strBox
	floats  map[string]*floatCell
	// sites are the cells that helper calls' results are boxed in. They belong to the
	// runtime, not to the compiled Condition, because a Condition is shared by engines
	// (the daemon's, the policy tester's) that run on different goroutines.
	sites map[*Site]*siteCell
	// The instance being evaluated, for count() and since() (views.go): the labels in
	// grpBy come from grpEvent, the others from grpPolicy (SetInstanceLabels).
	grpPolicy, grpEvent map[string]string
	grpBy               []string
	keyBuf              []byte
	// spent is the current evaluation's work against EvalBudget (budget.go).
	spent int
}

// siteCell boxes one helper call's result: an int for count(), a float otherwise.
type siteCell struct {
	f *floatCell
	i *intCell
}

// slotKey is an event or label key: its env key, slot, and field or label name.
type slotKey struct {
	key   string
	id    int
	field eventField // event keys: which field (SetEvent switches on it for every event)
	name  string     // the label name
}

// eventField is the field of `event` a key reads.
type eventField uint8

const (
	fieldLabel   eventField = iota // event.labels.<name>
	fieldCode                      // event.code
	fieldSource                    // event.source
	fieldMessage                   // event.message
	fieldValue                     // event.value
	fieldNone                      // anything else (the type check rejects it): absent
)

var eventFields = map[string]eventField{"code": fieldCode, "source": fieldSource, "message": fieldMessage, "value": fieldValue}

// metricSlot is a metric's expr cell and slot. Cells are never dropped, so a metric that
// a reload stops and a later one starts using again keeps its latest value.
type metricSlot struct {
	id   int
	cell *floatCell
}

type sampleTarget struct {
	name string
	m    *metricSlot // nil: history only
	s    *series     // nil: latest value only
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
	r := &Runtime{loc: loc, firing: firing, env: map[string]any{}, metricC: map[string]*metricSlot{},
		strs: map[string]*strBox{}, floats: map[string]*floatCell{}, sites: map[*Site]*siteCell{}}
	r.env[callName] = r.call
	r.env[stepName] = r.step
	return r
}

// FiringEqual reports whether policy has a firing instance whose value of each of
// labels is the one at the same index of values ("" stands for an absent label on
// either side, as Alertmanager's inhibit `equal` reads a missing label). values is
// reused after the call returns.
type FiringEqual func(policy string, labels, values []string) bool

// SetFiringEqual sets what answers `firing("policy", "label", …)`. Without it, that
// form is false.
func (r *Runtime) SetFiringEqual(f FiringEqual) { r.firingEq = f }

// firingSite answers a firing() call: any instance, or with labels one whose values are
// the current event's — or, with no current event (a sample policy), the instance's
// being evaluated (SetLabels, SetInstanceLabels).
func (r *Runtime) firingSite(s *Site) bool {
	if len(s.Equal) == 0 {
		return r.firing(s.Name)
	}
	if r.firingEq == nil {
		return false
	}
	vals := r.equalVals[:0]
	for _, l := range s.Equal {
		if r.hasEvent {
			vals = append(vals, r.evLabels[l])
		} else {
			vals = append(vals, r.groupValue(l))
		}
	}
	r.equalVals = vals
	return r.firingEq(s.Name, s.Equal, vals)
}

// Prepare makes the runtime ready for a set of conditions: it creates the environment
// keys they read and sizes the history. Values and history of keys that stay in use are
// kept, so a reload does not forget recent samples.
func (r *Runtime) Prepare(conds []*Condition) {
	r.hist.prepare(conds)
	sites := make(map[*Site]*siteCell, len(r.sites))
	for _, c := range conds {
		for _, s := range c.sites {
			sites[s] = r.siteCell(s)
		}
	}
	r.sites = sites // cells of conditions no longer prepared are dropped
	keys := map[string]int{}
	n := len(r.vals)
	for _, c := range conds {
		for i, k := range c.uses.Keys {
			keys[k] = c.ids[i]
			n = max(n, c.ids[i]+1)
		}
	}
	r.vals = append(r.vals, make([]value, n-len(r.vals))...)
	// A key that comes into use or goes out of use starts absent, as expr reads a key
	// that its environment did not have (a label seen before a reload that stopped
	// reading it is not the current one after the reload that reads it again).
	used := make([]bool, n)
	for _, id := range keys {
		used[id] = true
	}
	for id := range r.vals {
		if id < len(r.used) && r.used[id] != used[id] || id >= len(r.used) && used[id] {
			r.vals[id] = value{}
		}
	}
	r.used = used
	r.sync = make([]bool, n)
	for _, c := range conds {
		if c.fast == nil {
			for _, id := range c.ids {
				r.sync[id] = true
			}
		}
	}
	r.eventK, r.labelK = r.eventK[:0], r.labelK[:0]
	for k := range r.env {
		if _, used := keys[k]; k != callName && k != stepName && !used {
			delete(r.env, k)
		}
	}
	for k, id := range keys {
		switch {
		case strings.HasPrefix(k, "event."):
			sk := slotKey{key: k, id: id, field: fieldNone}
			if f, ok := eventFields[k[len("event."):]]; ok {
				sk.field = f
			}
			if name, ok := strings.CutPrefix(k, "event.labels."); ok {
				sk.field, sk.name = fieldLabel, name
			}
			r.eventK = append(r.eventK, sk)
			if _, ok := r.env[k]; !ok {
				r.env[k] = nil
			}
		case strings.HasPrefix(k, "labels."):
			r.labelK = append(r.labelK, slotKey{key: k, id: id, name: k[len("labels."):]})
			if _, ok := r.env[k]; !ok {
				r.env[k] = nil
			}
		case strings.HasPrefix(k, "metrics."):
			name := k[len("metrics."):]
			m := r.metricC[name]
			if m == nil {
				// An absent metric is NaN: every comparison with it is false, as an absent
				// series gives no result in Prometheus.
				m = &metricSlot{id: id, cell: newFloatCell(math.NaN())}
				r.metricC[name] = m
			}
			r.env[k] = m.cell.boxed
			r.vals[id] = value{k: num, f: *m.cell.v}
		}
	}
	// Keys that expr now reads get their current values: while only the fast path read
	// them, their env entries were not kept up to date.
	for k, id := range keys {
		if r.sync[id] && !strings.HasPrefix(k, "metrics.") {
			r.setEnv(k, r.vals[id])
		}
	}
	r.targets = r.targets[:0]
	for name, m := range r.metricC {
		r.targets = append(r.targets, sampleTarget{name: name, m: m, s: r.hist.metrics[name]})
	}
	for name, s := range r.hist.metrics {
		if r.metricC[name] == nil {
			r.targets = append(r.targets, sampleTarget{name: name, s: s})
		}
	}
	sort.Slice(r.eventK, func(i, j int) bool { return r.eventK[i].key < r.eventK[j].key })
	sort.Slice(r.labelK, func(i, j int) bool { return r.labelK[i].key < r.labelK[j].key })
}

// ObserveEvent records an event in the history and makes it the current `event`.
func (r *Runtime) ObserveEvent(t time.Time, code, source, message string, value float64, labels map[string]string) {
	r.ObserveEventRef(r.CodeRef(code), t, code, source, message, value, labels)
}

// CodeRef is a handle on an event code's history, valid until the next Prepare: a
// caller that routes by code anyway (the engine) keeps it with its route and saves a
// lookup per event.
type CodeRef struct{ views []*view }

// CodeRef returns the handle of code (an empty one if no condition counts it).
func (r *Runtime) CodeRef(code string) CodeRef {
	if h := r.hist.codes[code]; h != nil {
		return CodeRef{h.views}
	}
	return CodeRef{}
}

// ObserveEventRef is ObserveEvent with the code's handle, from CodeRef after the latest
// Prepare. The event goes into every view of its code that its labels pass, under its
// group (views.go).
func (r *Runtime) ObserveEventRef(ref CodeRef, t time.Time, code, source, message string, value float64, labels map[string]string) {
	for _, v := range ref.views {
		v.observe(t.UnixNano(), labels, &r.keyBuf)
	}
	r.SetEvent(code, source, message, value, labels)
}

// SetEvent makes an event the current `event` without recording it (to re-check a
// pending event policy when its `for` runs out). labels is read, not copied, until the
// next SetEvent or ClearEvent.
func (r *Runtime) SetEvent(code, source, message string, val float64, labels map[string]string) {
	r.evLabels, r.hasEvent = labels, true
	for i := range r.eventK {
		k := &r.eventK[i]
		var v value
		switch k.field {
		case fieldCode:
			v = value{k: str, s: code}
		case fieldSource:
			v = value{k: str, s: source}
		case fieldMessage:
			v = value{k: str, s: message}
		case fieldValue:
			v = value{k: num, f: val}
		case fieldLabel:
			if s, ok := labels[k.name]; ok {
				v = value{k: str, s: s}
			}
		}
		r.set(k, v)
	}
}

// set writes a slot, and its env entry if expr reads it.
func (r *Runtime) set(k *slotKey, v value) {
	r.vals[k.id] = v
	if r.sync[k.id] {
		r.setEnv(k.key, v)
	}
}

// val is a slot's value; absent for a key no prepared condition reads (a condition
// evaluated without Prepare reads nothing, as expr reads a missing key as nil).
func (r *Runtime) val(id int) value {
	if id < len(r.vals) {
		return r.vals[id]
	}
	return value{}
}

func (r *Runtime) setEnv(key string, v value) {
	switch v.k {
	case str:
		r.env[key] = r.str(key, v.s)
	case num:
		c := r.floats[key]
		if c == nil {
			c = newFloatCell(0)
			r.floats[key] = c
		}
		r.env[key] = c.set(v.f)
	default:
		r.env[key] = nil
	}
}

// syncEnv brings c's event and label keys into env, for a fast condition that falls back
// to expr. Metrics are always current in env (their cells).
func (r *Runtime) syncEnv(c *Condition) {
	for i, k := range c.uses.Keys {
		if !strings.HasPrefix(k, "metrics.") {
			r.setEnv(k, r.val(c.ids[i]))
		}
	}
}

// ClearEvent removes the current event (for samples and ticks): event fields are nil.
func (r *Runtime) ClearEvent() {
	r.evLabels, r.hasEvent = nil, false
	for i := range r.eventK {
		r.set(&r.eventK[i], value{})
	}
}

// ObserveSample records a sample in the history and updates `metrics`.
func (r *Runtime) ObserveSample(t time.Time, values map[string]float64) {
	ns := t.UnixNano()
	for i := range r.targets {
		tg := &r.targets[i]
		v, ok := values[tg.name]
		if !ok {
			continue
		}
		if tg.s != nil {
			tg.s.add(ns, v, true)
		}
		if tg.m != nil {
			tg.m.cell.set(v)
			r.vals[tg.m.id] = value{k: num, f: v}
		}
	}
}

// SetLabels sets the instance's labels (`labels.<name>`).
func (r *Runtime) SetLabels(labels map[string]string) {
	r.grpPolicy, r.grpEvent, r.grpBy = labels, nil, nil
	if len(r.labelK) > 0 {
		r.setLabelSlots(labels, nil, nil)
	}
}

// SetInstanceLabels sets `labels.<name>` for an instance that may not exist yet: the
// names in groupBy come from the event's labels, the others from the policy's. count()
// and since() read the events of this instance's group until the next call. The maps
// are read, not copied: they must stay unchanged until then.
func (r *Runtime) SetInstanceLabels(policy, event map[string]string, groupBy []string) {
	r.grpPolicy, r.grpEvent, r.grpBy = policy, event, groupBy
	if len(r.labelK) > 0 { // kept small enough to inline: the engine calls it per policy woken
		r.setLabelSlots(policy, event, groupBy)
	}
}

func (r *Runtime) setLabelSlots(policy, event map[string]string, groupBy []string) {
	for i := range r.labelK {
		k := &r.labelK[i]
		src := policy
		for _, g := range groupBy {
			if g == k.name {
				src = event
			}
		}
		var v value
		if s, ok := src[k.name]; ok {
			v = value{k: str, s: s}
		}
		r.set(k, v)
	}
}

// groupValue is the instance's value of a group_by label ("" if it has none, as an
// event without the label is grouped).
func (r *Runtime) groupValue(name string) string {
	for _, g := range r.grpBy {
		if g == name {
			return r.grpEvent[name]
		}
	}
	return r.grpPolicy[name]
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
	if c.fast != nil {
		if v, ok := c.fast(r); ok {
			return v, nil
		}
		r.syncEnv(c) // expr gives the error, with its message
	}
	r.spent = 0
	out, err := r.vm.Run(c.program, r.env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// EvalFast evaluates c at time now on the fast path (fast.go) alone, for a caller that
// evaluates many conditions per input (the engine): it is small enough to inline, so
// such a caller pays one call per evaluation, the condition's own. ok is false when c
// is not on the fast path or expr would report an error here; Eval then gives the
// result and the error. When ok, v is what Eval returns, with a nil error.
func (r *Runtime) EvalFast(c *Condition, now time.Time) (v, ok bool) {
	if f := c.fast; f != nil {
		r.now = now
		v, ok = f(r)
	}
	return
}

func (r *Runtime) call(arg any) any {
	s := r.cur.sites[arg.(int)]
	return r.siteValue(s)
}

// siteCell returns s's cell, made on first use (a condition evaluated without Prepare).
func (r *Runtime) siteCell(s *Site) *siteCell {
	if c := r.sites[s]; c != nil {
		return c
	}
	c := &siteCell{}
	if s.Func == FuncCount {
		c.i = newIntCell()
	} else {
		c.f = newFloatCell(math.NaN())
	}
	r.sites[s] = c
	return c
}

func (r *Runtime) siteValue(s *Site) any {
	switch s.Func {
	case FuncCount:
		return r.siteCell(s).i.set(r.hist.views[s.view].pick(r).count(r.now, s.Window))
	case FuncSince:
		return r.siteCell(s).f.set(r.hist.views[s.view].pick(r).since(r.now))
	case FuncFiring:
		return r.firingSite(s)
	case FuncHour:
		return r.now.In(r.loc).Hour()
	case FuncWeekday:
		return int(r.now.In(r.loc).Weekday())
	default:
		return r.siteCell(s).f.set(r.hist.aggregate(s.Func, s.Name, r.now, s.Window))
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
			v = r.val(e.id).boxed()
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
