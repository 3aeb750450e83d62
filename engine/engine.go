package engine

import (
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/remedy-run/remedy/conditions"
	"github.com/remedy-run/remedy/policies"
)

// Options configure an engine.
type Options struct {
	// Seed makes backoff jitter reproducible: the same inputs and seed give the same
	// decisions.
	Seed uint64
	// Location is the time zone of hour() and weekday(); UTC if nil.
	Location *time.Location
	// ResultGrace is how long past an attempt's timeout the engine waits for its result
	// event before counting the attempt as timed out (default 10s). It guards against a
	// lost result, which would otherwise stall the ladder.
	ResultGrace time.Duration
	// Trace, if set, receives every condition evaluation with its identifier values.
	// It costs allocations; the tester uses it to explain why a policy did not fire.
	Trace func(Trace)
}

// Trace is one evaluation of a policy's condition.
type Trace struct {
	Time     time.Time
	Policy   string
	Instance string
	Input    string
	Result   bool
	Err      error
	Values   []conditions.Value
}

// Stats are counters since the engine was created.
type Stats struct {
	Inputs, Evaluations, EvalErrors, Decisions, Suppressed uint64
	// TimerVisits counts instances whose timers were run; the work of an input is in
	// proportion to the instances due, not to all instances kept.
	TimerVisits uint64
}

// Engine is the policy state machine. It is owned by one goroutine; it has no locks.
type Engine struct {
	opts  Options
	set   *policies.Set
	pols  []*policyState
	named map[string]*policyState
	// routing
	exact    map[string][]*policyState
	globs    []globRoute
	resExact map[string][]*policyState
	resGlobs []globRoute
	retry    map[string][]*policyState
	samplers []*policyState
	routes   map[string]*route
	rt       *conditions.Runtime
	rng      *rand.Rand
	pcg      *rand.PCG // rng's source, kept to snapshot it
	now      time.Time
	seq      uint64
	out      []Decision
	timers   timerHeap
	dirty    []dirtyInst
	// inhibition (inhibit.go): target policy -> its inhibitors; source -> its targets
	inhibitors map[string][]inhibitor
	inhibits   map[string][]*policyState
	keyBuf     []byte
	cur        Input
	stats      Stats
}

type globRoute struct {
	prefix string
	ps     *policyState
}

type route struct {
	on, resolve, retry []*policyState
	hist               conditions.CodeRef // the code's history, for count() and since()
}

const maxRoutes = 4096

// policyState is a policy with the state of its instances.
type policyState struct {
	// What the hot loops (onEvent, onSample) read for every input that wakes the policy
	// comes first, together: cond, groupBy and labels are p's, copied so that those
	// loops do not reach into the large Policy for them.
	cond      *conditions.Condition
	groupBy   []string
	labels    map[string]string
	instances map[string]*instance
	// budgetHit is !overBudget.IsZero(), tested on every evaluation.
	budgetHit bool
	// ownLabels: the condition reads the instance's labels (ReadsInstance); the hot
	// loops set them in the runtime only then.
	ownLabels bool

	p         *policies.Policy
	idx       int // position in the set: the order of timers due together
	firing    int
	lastFired time.Time
	example   map[string]any // Example(p), made on the first Status
	limitHit  bool           // the instance limit was reached since the overflow instance was collected
	flapping  int            // instances flapping (flap.go)
	// overBudget is when the condition last stopped at its evaluation budget (zero:
	// never, or it answered since); budgetErr says how.
	overBudget time.Time
	budgetErr  string
}

// sortedKeys are the instance keys in order, for every walk over instances whose
// result depends on the order (the same inputs must give the same decisions).
func (ps *policyState) sortedKeys() []string {
	keys := make([]string, 0, len(ps.instances))
	for k := range ps.instances {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// New returns an engine running set.
func New(set *policies.Set, opts Options) *Engine {
	if opts.ResultGrace <= 0 {
		opts.ResultGrace = 10 * time.Second
	}
	pcg := rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)
	e := &Engine{opts: opts, pcg: pcg, rng: rand.New(pcg)}
	e.rt = conditions.NewRuntime(opts.Location, e.isFiring)
	e.rt.SetFiringEqual(e.isFiringEqual)
	e.Swap(set)
	return e
}

// Diff reports what a Swap changed.
type Diff struct {
	Added, Changed, Removed, Kept []string
	// Decisions are the resolutions of incidents that ended with the reload: a firing
	// instance of a changed or removed policy that was notified is resolved, with the
	// reason, on the channels it was notified on. Handle them as Process's decisions.
	Decisions []Decision
}

// Swap replaces the policy set. A policy's identity is its definition
// (policies.Policy.Hash): a policy whose definition did not change keeps its state — a
// pending `for` keeps counting, a ladder keeps its place, a firing incident stays
// firing; changed and new policies start fresh; removed ones are dropped. Every firing
// instance of a changed or removed policy that was notified gets a resolved decision
// saying so (Diff.Decisions), so nobody who was paged is left with an incident that
// silently disappeared; a changed policy whose condition still holds fires again, as a
// new incident. History windows of metrics and codes still used are kept.
func (e *Engine) Swap(set *policies.Set) Diff {
	var d Diff
	old := e.named
	e.set = set
	e.pols = nil
	e.named = map[string]*policyState{}
	var conds []*conditions.Condition
	for _, p := range set.Policies {
		ps := &policyState{p: p, idx: len(e.pols), instances: map[string]*instance{},
			cond: p.Cond, groupBy: p.GroupBy, labels: p.Labels, ownLabels: p.Cond != nil && p.Cond.ReadsInstance()}
		if o := old[p.Name]; o != nil {
			if o.p.Hash == p.Hash {
				ps.instances, ps.firing, ps.lastFired, ps.flapping = o.instances, o.firing, o.lastFired, o.flapping
				d.Kept = append(d.Kept, p.Name)
			} else {
				d.Changed = append(d.Changed, p.Name)
			}
		} else if old != nil {
			d.Added = append(d.Added, p.Name)
		}
		e.pols = append(e.pols, ps)
		e.named[p.Name] = ps
		if p.Cond != nil {
			conds = append(conds, p.Cond)
		}
	}
	for name := range old {
		if e.named[name] == nil {
			d.Removed = append(d.Removed, name)
		}
	}
	sort.Strings(d.Removed)
	e.out = e.out[:0]
	for _, name := range d.Changed {
		e.endAll(old[name], "policy changed by a reload; its incidents start over")
	}
	for _, name := range d.Removed {
		e.endAll(old[name], "policy removed by a reload")
	}
	// What a changed or removed policy inhibited is told now.
	for _, name := range append(append([]string(nil), d.Changed...), d.Removed...) {
		for _, t := range e.pols {
			for _, in := range old[name].p.Inhibits {
				if in.Matches(t.p.Name) {
					e.inhibits[name] = appendUnique(e.inhibits[name], t)
				}
			}
		}
		e.releaseInhibited(name)
		delete(e.inhibits, name)
	}
	e.buildInhibits()
	d.Decisions = append([]Decision(nil), e.out...)
	e.out = e.out[:0]
	e.rt.Prepare(conds)
	e.buildRoutes()
	e.buildInhibits()
	e.rebuildTimers()
	return d
}

func (e *Engine) buildRoutes() {
	e.exact, e.resExact, e.retry = map[string][]*policyState{}, map[string][]*policyState{}, map[string][]*policyState{}
	e.globs, e.resGlobs, e.samplers = nil, nil, nil
	e.routes = map[string]*route{}
	for _, ps := range e.pols {
		if !ps.p.Enabled {
			continue
		}
		for _, c := range ps.p.On {
			switch {
			case c == policies.SampleCode:
				e.samplers = append(e.samplers, ps)
			case strings.HasSuffix(c, "*"):
				e.globs = append(e.globs, globRoute{strings.TrimSuffix(c, "*"), ps})
			default:
				e.exact[c] = append(e.exact[c], ps)
			}
		}
		for _, c := range ps.p.RetryOn {
			e.retry[strings.TrimSuffix(c, "*")] = append(e.retry[strings.TrimSuffix(c, "*")], ps)
		}
		for _, c := range ps.p.ResolveOn {
			if strings.HasSuffix(c, "*") {
				e.resGlobs = append(e.resGlobs, globRoute{strings.TrimSuffix(c, "*"), ps})
			} else {
				e.resExact[c] = append(e.resExact[c], ps)
			}
		}
	}
}

// routeFor returns the policies woken and resolved by code, cached per code.
func (e *Engine) routeFor(code string) *route {
	if r, ok := e.routes[code]; ok {
		return r
	}
	r := &route{hist: e.rt.CodeRef(code)}
	r.on = appendUnique(r.on, e.exact[code]...)
	for _, g := range e.globs {
		if strings.HasPrefix(code, g.prefix) {
			r.on = appendUnique(r.on, g.ps)
		}
	}
	r.retry = appendUnique(r.retry, e.retry[code]...)
	r.resolve = appendUnique(r.resolve, e.resExact[code]...)
	for _, g := range e.resGlobs {
		if strings.HasPrefix(code, g.prefix) {
			r.resolve = appendUnique(r.resolve, g.ps)
		}
	}
	if len(e.routes) < maxRoutes {
		e.routes[code] = r
	}
	return r
}

func appendUnique(list []*policyState, add ...*policyState) []*policyState {
	for _, a := range add {
		dup := false
		for _, l := range list {
			dup = dup || l == a
		}
		if !dup {
			list = append(list, a)
		}
	}
	return list
}

// Process feeds one input and returns the decisions it caused, in order. The returned
// slice is reused by the next call. Timers that fell due before the input's time are
// handled at their own time first. An input older than the engine's clock is treated
// as happening now (sources are not perfectly ordered).
func (e *Engine) Process(in Input) []Decision {
	e.out = e.out[:0]
	e.stats.Inputs++
	t := in.At()
	if len(e.timers) > 0 || len(e.dirty) > 0 { // nothing scheduled (steady state): no call
		e.runTimers(t)
	}
	if t.After(e.now) {
		e.now = t
	}
	e.cur = in
	switch in := in.(type) {
	case Event:
		e.onEvent(&in)
	case *Event:
		e.onEvent(in)
	case Sample:
		e.onSample(&in)
	case *Sample:
		e.onSample(in)
	}
	e.cur = nil
	e.stats.Decisions += uint64(len(e.out))
	return e.out
}

// endAll resolves every notified firing instance of a policy that leaves the set.
func (e *Engine) endAll(ps *policyState, why string) {
	for _, key := range ps.sortedKeys() {
		inst := ps.instances[key]
		if inst.state != Firing || !inst.notifiedFiring && !inst.inhibited {
			continue
		}
		inst.state, inst.since = Resolved, e.now
		e.emitState(ps, inst, Resolved, why)
		e.end(ps, inst, why)
	}
}

// Firing is the number of firing instances across the set: what the status badge, the
// admin chat and /metrics show. Instant policies are never counted (they fire and
// resolve on the same event).
func (e *Engine) Firing() int {
	n := 0
	for _, ps := range e.pols {
		n += ps.firing
	}
	return n
}

// PolicyCount is one policy's count of firing and kept instances.
type PolicyCount struct {
	Name              string
	Firing, Instances int
	Flapping          int // instances whose notifications are held as flapping
}

// Counts are the per-policy counts, in set order, without walking instances (cheap
// enough to publish after every input).
func (e *Engine) Counts() []PolicyCount {
	out := make([]PolicyCount, len(e.pols))
	for i, ps := range e.pols {
		out[i] = PolicyCount{Name: ps.p.Name, Firing: ps.firing, Instances: len(ps.instances), Flapping: ps.flapping}
	}
	return out
}

// Now is the engine's clock: the latest input or timer time.
func (e *Engine) Now() time.Time { return e.now }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats { return e.stats }

// Set returns the running policy set.
func (e *Engine) Set() *policies.Set { return e.set }

func (e *Engine) isFiring(name string) bool {
	ps := e.named[name]
	return ps != nil && ps.firing > 0
}

// isFiringEqual answers firing("policy", "label", …): a firing instance whose values of
// labels are values ("" for an absent label, as inhibits' equal reads it).
func (e *Engine) isFiringEqual(name string, labels, values []string) bool {
	ps := e.named[name]
	if ps == nil || ps.firing == 0 {
		return false
	}
	if len(labels) == 1 && len(ps.groupBy) == 1 && labels[0] == ps.groupBy[0] {
		// The instance key is that label's value: one lookup (firing("wa-logged-out",
		// "session") in a policy grouped by session, once per WhatsApp event).
		inst := ps.instances[values[0]]
		return inst != nil && inst.state == Firing
	}
	for _, inst := range ps.instances { // any order: whether one exists
		if inst.state != Firing {
			continue
		}
		same := true
		for i, l := range labels {
			same = same && inst.labels[l] == values[i]
		}
		if same {
			return true
		}
	}
	return false
}

func (e *Engine) onEvent(ev *Event) {
	r := e.routeFor(ev.Code)
	e.rt.ObserveEventRef(r.hist, e.now, ev.Code, ev.Source, ev.Message, ev.Value, ev.Labels)
	switch ev.Code {
	case CodeActionSucceeded, CodeActionFailed, CodeActionTimeout:
		e.onResult(ev)
	}
	for _, ps := range r.resolve {
		e.resolveByEvent(ps, ev)
	}
	for _, ps := range r.retry {
		e.retryByEvent(ps, ev)
	}
	for _, ps := range r.on {
		key := e.key(ps, ev.Labels)
		var inst *instance
		if len(ps.instances) > 0 {
			inst = ps.instances[key]
		}
		switch {
		case !ps.ownLabels:
		case inst != nil:
			e.rt.SetLabels(inst.labels)
		default:
			e.rt.SetInstanceLabels(ps.labels, ev.Labels, ps.groupBy)
		}
		ok := true
		if c := ps.cond; c != nil { // eval, by hand as in onSample
			e.stats.Evaluations++
			var fast bool
			if ok, fast = e.rt.EvalFast(c, e.now); !fast || ps.budgetHit || e.opts.Trace != nil {
				ok = e.evalSlow(ps, key, ok, fast)
			}
		}
		if !ok {
			continue
		}
		if inst == nil {
			inst = e.instanceFor(ps, key, ev.Labels)
		}
		e.trigger(ps, inst, ev)
	}
}

func (e *Engine) onSample(s *Sample) {
	e.rt.ObserveSample(e.now, s.Values)
	e.rt.ClearEvent()
	for _, ps := range e.samplers {
		var inst *instance
		if len(ps.instances) > 0 { // most sample policies are quiet: no instance, no lookup
			inst = ps.instances[""]
		}
		switch {
		case !ps.ownLabels:
		case inst != nil:
			e.rt.SetLabels(inst.labels)
		default:
			e.rt.SetLabels(ps.labels)
		}
		ok := true
		if c := ps.cond; c != nil { // eval, by hand: Go does not inline it, and this runs per policy
			e.stats.Evaluations++
			var fast bool
			if ok, fast = e.rt.EvalFast(c, e.now); !fast || ps.budgetHit || e.opts.Trace != nil {
				ok = e.evalSlow(ps, "", ok, fast)
			}
		}
		if inst == nil {
			if !ok {
				continue
			}
			inst = e.newInstance(ps, "", nil)
		}
		e.sampleResult(ps, inst, ok)
	}
}

// eval evaluates ps's condition for the instance key (whose labels are set).
func (e *Engine) eval(ps *policyState, key string) bool {
	c := ps.cond
	if c == nil {
		return true
	}
	e.stats.Evaluations++
	// The fast path answers almost every evaluation, with no error to record; the rest
	// (expr, a budget to clear, a trace) is evalSlow's.
	v, ok := e.rt.EvalFast(c, e.now)
	if !ok || ps.budgetHit || e.opts.Trace != nil {
		v = e.evalSlow(ps, key, v, ok)
	}
	return v
}

// evalSlow finishes an evaluation that EvalFast did not settle: fast says whether it
// answered (with v), else the condition runs through Eval.
func (e *Engine) evalSlow(ps *policyState, key string, v, fast bool) bool {
	ok, err := v, error(nil)
	if !fast {
		ok, err = e.rt.Eval(ps.cond, e.now)
	}
	if err != nil {
		e.stats.EvalErrors++
	}
	if err != nil || ps.budgetHit { // the common case costs one test per evaluation
		e.budget(ps, key, err)
	}
	if e.opts.Trace != nil {
		e.opts.Trace(Trace{Time: e.now, Policy: ps.p.Name, Instance: key, Input: e.describeInput(),
			Result: ok, Err: err, Values: e.rt.Explain(ps.p.Cond, e.now)})
	}
	return ok
}

// key is the instance key of ps: the group_by label values joined by ",". It allocates
// only for a new multi-label instance.
func (e *Engine) key(ps *policyState, labels map[string]string) string {
	switch len(ps.groupBy) {
	case 0:
		return ""
	case 1:
		return labels[ps.groupBy[0]]
	}
	return e.multiKey(ps, labels)
}

// multiKey is key for two or more group_by labels (apart, so that key inlines).
func (e *Engine) multiKey(ps *policyState, labels map[string]string) string {
	e.keyBuf = e.keyBuf[:0]
	for i, g := range ps.groupBy {
		if i > 0 {
			e.keyBuf = append(e.keyBuf, ',')
		}
		e.keyBuf = append(e.keyBuf, labels[g]...)
	}
	if inst, ok := ps.instances[string(e.keyBuf)]; ok {
		return inst.key
	}
	return string(e.keyBuf)
}

func (e *Engine) describeInput() string {
	switch in := e.cur.(type) {
	case Event:
		return describeEvent(&in)
	case *Event:
		return describeEvent(in)
	case Sample, *Sample:
		return "sample"
	case nil:
		return "timer"
	}
	return "tick"
}

func describeEvent(ev *Event) string {
	if len(ev.Labels) == 0 {
		return "event " + ev.Code
	}
	return "event " + ev.Code + formatMap(ev.Labels)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
