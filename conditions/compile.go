// Package conditions compiles the `when` expressions of policies once, at load time, and
// evaluates them against the engine's current input and history without allocating.
//
// An expression is compiled twice: first against a typed declaration of the environment
// (so that `event.cod` or `rate(1, 2)` is a load-time error with expr's position and
// snippet), then, after rewriting, into the program that runs: member paths such as
// `event.labels.reason` become single keys of a flat map[string]any, and helper calls
// such as `rate("x", "5m")` become typed calls with a call-site number. Both rewrites
// keep expr on its fast paths. The common shapes (comparisons with constants, helper
// calls, firing(), &&, ||, !) are also compiled to Go closures over typed slots, which
// run instead of expr with identical results (fast.go; BenchmarkEval vs BenchmarkEvalExpr).
package conditions

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Error is an expression error with its position inside the expression text
// (Line from 1, Column from 0, as expr reports them).
type Error struct {
	Line, Column int
	Message      string
	Snippet      string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d:%d)", e.Message, e.Line, e.Column+1) }

// Func names a helper function.
type Func int

// The helper functions of the policy language.
const (
	FuncRate Func = iota
	FuncIncrease
	FuncAvgOver
	FuncMaxOver
	FuncMinOver
	FuncCount
	FuncSince
	FuncFiring
	FuncHour
	FuncWeekday
)

var funcNames = map[string]Func{
	"rate": FuncRate, "increase": FuncIncrease, "avg_over": FuncAvgOver, "max_over": FuncMaxOver,
	"min_over": FuncMinOver, "count": FuncCount, "since": FuncSince, "firing": FuncFiring,
	"hour": FuncHour, "weekday": FuncWeekday,
}

// Site is one call of a helper function in an expression; its arguments are constants.
type Site struct {
	Func   Func
	Name   string        // metric name, event code or policy name
	Window time.Duration // for windowed functions
	Text   string        // the call as written, for explanations
	// By and Match are the selector of count() and since() (selector.go): the labels
	// that tie an event to the instance (the policy's group_by unless the call writes
	// `by (…)`) and the label matchers an event must pass.
	By    []string
	Match []Matcher
	view  string // the history the call reads (viewKey)
	// Equal are firing()'s label names after the policy's: an instance counts only if
	// its values of these labels are the current event's (FiringEqual).
	Equal []string
}

// Option adjusts how an expression is compiled.
type Option func(*options)

type options struct{ groupBy []string }

// GroupBy gives the policy's group_by labels: count() and since() then see, by default,
// the events whose values of these labels equal the instance's.
func GroupBy(labels []string) Option {
	return func(o *options) { o.groupBy = slices.Clone(labels) }
}

// Uses lists what an expression reads, so the engine keeps only the history it needs.
type Uses struct {
	Keys    []string                 // flat environment keys, e.g. "event.labels.reason"
	Metrics map[string]time.Duration // metric name -> longest window used (0: latest only)
	Codes   map[string]time.Duration // event code -> longest count() window (0: since() only)
	Firing  []string                 // policies named in firing()
}

// Condition is a compiled `when` expression. It is immutable after Compile and may be
// shared by engines, but evaluated by one goroutine at a time (see Runtime).
type Condition struct {
	Source  string
	program *vm.Program
	fast    boolFn // nil: expr only (fast.go)
	sites   []*Site
	uses    Uses
	ids     []int // slots of uses.Keys
	// instance: the condition reads the instance's labels (ReadsInstance).
	instance bool
	// explain holds one small program per identifier, for the reasons of decisions.
	explain []explainer
}

type explainer struct {
	text string
	key  string // flat key, or "" for a site
	id   int    // the key's slot
	site int
}

// Uses reports what the expression reads.
func (c *Condition) Uses() Uses { return c.uses }

// Sites returns the helper calls of the expression.
func (c *Condition) Sites() []*Site { return c.sites }

// eventDecl declares the type of `event` for the load-time type check.
type eventDecl struct {
	Code    string            `expr:"code"`
	Source  string            `expr:"source"`
	Message string            `expr:"message"`
	Value   float64           `expr:"value"`
	Labels  map[string]string `expr:"labels"`
}

func stub(...any) (any, error) { return nil, nil }

func checkOptions() []expr.Option {
	env := map[string]any{
		"event":   eventDecl{},
		"metrics": map[string]float64{},
		"labels":  map[string]string{},
	}
	return []expr.Option{
		expr.Env(env), expr.AsBool(), expr.DisableBuiltin("now"), expr.DisableBuiltin("count"),
		expr.Function("rate", stub, new(func(string, string) float64)),
		expr.Function("increase", stub, new(func(string, string) float64)),
		expr.Function("avg_over", stub, new(func(string, string) float64)),
		expr.Function("max_over", stub, new(func(string, string) float64)),
		expr.Function("min_over", stub, new(func(string, string) float64)),
		expr.Function("count", stub, new(func(string, string) int), new(func(string, string, string) int)),
		expr.Function("since", stub, new(func(string) float64), new(func(string, string) float64)),
		expr.Function("firing", stub, new(func(string) bool), new(func(string, ...string) bool)),
		expr.Function("hour", stub, new(func() int)),
		expr.Function("weekday", stub, new(func() int)),
	}
}

// Compile type-checks src and builds its runtime program. Errors are *Error, with the
// position inside src.
func Compile(src string, opts ...Option) (*Condition, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if _, err := expr.Compile(src, checkOptions()...); err != nil {
		return nil, convertErr(err)
	}
	rw := &rewriter{src: file.NewSource(src), groupBy: o.groupBy}
	eopts := []expr.Option{
		expr.Env(map[string]any{callName: func(any) any { return nil }, stepName: func(v any) any { return v }}),
		expr.AllowUndefinedVariables(), expr.AsBool(), expr.DisableBuiltin("now"), expr.DisableBuiltin("count"),
		expr.Patch(rw),
	}
	// Declared so the parser reads them as calls (count is also an expr builtin); every
	// call is rewritten before it could run.
	for name := range funcNames {
		eopts = append(eopts, expr.Function(name, stub))
	}
	prog, err := expr.Compile(src, eopts...)
	if rw.err != nil {
		return nil, rw.err
	}
	if err != nil {
		return nil, convertErr(err)
	}
	if rw.check(prog.Node()); rw.err != nil {
		return nil, rw.err
	}
	c := &Condition{Source: src, program: prog, sites: rw.sites}
	c.fast = (&fastCompiler{sites: rw.sites}).boolNode(prog.Node())
	c.uses = Uses{Metrics: map[string]time.Duration{}, Codes: map[string]time.Duration{}}
	seen := map[string]bool{}
	for _, k := range rw.keys {
		if !seen[k] {
			seen[k] = true
			c.uses.Keys = append(c.uses.Keys, k)
			c.explain = append(c.explain, explainer{text: k, key: k, id: keyID(k)})
		}
		if name, ok := strings.CutPrefix(k, "metrics."); ok {
			if _, has := c.uses.Metrics[name]; !has {
				c.uses.Metrics[name] = 0
			}
		}
	}
	for i, s := range rw.sites {
		if !seen[s.Text] {
			seen[s.Text] = true
			c.explain = append(c.explain, explainer{text: s.Text, site: i})
		}
		switch s.Func {
		case FuncRate, FuncIncrease, FuncAvgOver, FuncMaxOver, FuncMinOver:
			c.uses.Metrics[s.Name] = max(c.uses.Metrics[s.Name], s.Window)
		case FuncCount, FuncSince:
			c.uses.Codes[s.Name] = max(c.uses.Codes[s.Name], s.Window)
		case FuncFiring:
			c.uses.Firing = append(c.uses.Firing, s.Name)
		}
	}
	sort.Strings(c.uses.Keys)
	for _, k := range c.uses.Keys {
		c.ids = append(c.ids, keyID(k))
		c.instance = c.instance || strings.HasPrefix(k, "labels.")
	}
	for _, s := range rw.sites {
		c.instance = c.instance || (s.Func == FuncCount || s.Func == FuncSince) && len(s.By) > 0
		// firing() with labels reads the instance's when there is no current event.
		c.instance = c.instance || s.Func == FuncFiring && len(s.Equal) > 0
	}
	return c, nil
}

// ReadsInstance reports whether the condition reads the instance it is evaluated for:
// a `labels.<name>` key, count() or since() of the instance's own events (a selector
// with by labels), or firing() with labels (which reads them when there is no event).
// Nothing else reads what SetLabels and SetInstanceLabels set, so a
// caller may skip them before evaluating a condition that does not.
func (c *Condition) ReadsInstance() bool { return c.instance }

// labelName is a label name, as group_by and inhibits' equal take them.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// callName is the typed function all helper calls are rewritten to; expr calls a
// func(any) any without building an argument slice.
const callName = "$call"

func convertErr(err error) error {
	if fe, ok := err.(*file.Error); ok {
		return &Error{Line: fe.Line, Column: fe.Column, Message: fe.Message, Snippet: fe.Snippet}
	}
	return &Error{Line: 1, Message: err.Error()}
}

// rewriter flattens member paths and numbers helper calls. ast.Walk visits children
// before parents, so `event.labels` is already an identifier when `.reason` is seen.
type rewriter struct {
	src     file.Source
	groupBy []string
	keys    []string
	sites   []*Site
	err     error
}

var roots = map[string]bool{"event": true, "metrics": true, "labels": true}

func (r *rewriter) fail(n ast.Node, format string, args ...any) {
	if r.err != nil {
		return
	}
	fe := (&file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)}).Bind(r.src)
	r.err = &Error{Line: fe.Line, Column: fe.Column, Message: fe.Message, Snippet: fe.Snippet}
}

func (r *rewriter) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || !roots[strings.SplitN(id.Value, ".", 2)[0]] {
			return
		}
		prop, ok := n.Property.(*ast.StringNode)
		if !ok {
			r.fail(n, "the name after %s must be a constant", id.Value)
			return
		}
		ast.Patch(node, &ast.IdentifierNode{Value: id.Value + "." + prop.Value})
	case *ast.IdentifierNode:
		// Checked after the walk: only complete paths may remain.
	case *ast.CallNode:
		r.call(node, n)
	case *ast.BuiltinNode:
		wrapPredicates(n)
	}
}

func (r *rewriter) call(node *ast.Node, n *ast.CallNode) {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return
	}
	fn, ok := funcNames[id.Value]
	if !ok {
		return
	}
	s := &Site{Func: fn}
	var strs []string
	for _, a := range n.Arguments {
		sn, ok := a.(*ast.StringNode)
		if !ok {
			r.fail(a, "%s: arguments must be string constants", id.Value)
			return
		}
		strs = append(strs, sn.Value)
	}
	quoted := make([]string, len(strs))
	for i, v := range strs {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	s.Text = id.Value + "(" + strings.Join(quoted, ", ") + ")"
	if len(strs) > 0 {
		s.Name = strs[0]
	}
	sel := 0 // the selector's argument, if the function takes one
	switch fn {
	case FuncCount:
		sel = 2
	case FuncSince:
		sel = 1
	}
	if fn == FuncFiring && len(strs) > 1 {
		for i, l := range strs[1:] {
			if !labelName.MatchString(l) {
				r.fail(n.Arguments[i+1], "firing: %q is not a label name", l)
				return
			}
			if slices.Contains(strs[1:i+1], l) {
				r.fail(n.Arguments[i+1], "firing: label %q given twice", l)
				return
			}
		}
		s.Equal = strs[1:]
	}
	if sel > 0 {
		var parsed selector
		if len(strs) > sel {
			var err error
			if parsed, err = parseSelector(strs[sel], r.groupBy); err != nil {
				r.fail(n.Arguments[sel], "%s: %v", id.Value, err)
				return
			}
		}
		s.By, s.Match = parsed.by, parsed.match
		if !parsed.byGiven {
			s.By = r.groupBy
		}
		s.view = viewKey(s.Name, s.By, s.Match)
	}
	if len(strs) > 1 && fn != FuncSince && fn != FuncFiring {
		w, err := ParseDuration(strs[1])
		if err != nil {
			r.fail(n.Arguments[1], "%s: %v", id.Value, err)
			return
		}
		if w <= 0 {
			r.fail(n.Arguments[1], "%s: window must be positive", id.Value)
			return
		}
		s.Window = w
	}
	r.sites = append(r.sites, s)
	ast.Patch(node, &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: callName},
		Arguments: []ast.Node{&ast.IntegerNode{Value: len(r.sites) - 1}},
	})
}

// check validates the identifiers left after rewriting and records the keys read.
func (r *rewriter) check(tree ast.Node) {
	ast.Walk(&tree, visitFunc(func(node *ast.Node) {
		id, ok := (*node).(*ast.IdentifierNode)
		if !ok || id.Value == callName {
			return
		}
		if !roots[strings.SplitN(id.Value, ".", 2)[0]] {
			return
		}
		if !validKey(id.Value) {
			r.fail(id, "%s is not a value; name one field, e.g. event.labels.reason or metrics.cpu_percent", id.Value)
			return
		}
		r.keys = append(r.keys, id.Value)
	}))
}

// validKey reports whether k names one value of the flat environment.
func validKey(k string) bool {
	parts := strings.Split(k, ".")
	switch parts[0] {
	case "event":
		return (len(parts) == 2 && parts[1] != "labels") || (len(parts) == 3 && parts[1] == "labels")
	case "metrics", "labels":
		return len(parts) == 2
	}
	return false
}

type visitFunc func(*ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(n) }
