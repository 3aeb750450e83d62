package conditions

import (
	"sync"

	"github.com/expr-lang/expr/ast"
)

// The fast path. Most policy conditions are comparisons of a field, a metric, a label or
// a helper call with a constant, and firing(), joined by &&, || and !. Compile turns
// those shapes into a tree of Go closures over the runtime's typed slots, which runs
// several times faster than expr's VM over a map environment (BenchmarkEval vs
// BenchmarkEvalExpr; engine: BenchmarkEngine vs BenchmarkHandWritten). Anything else —
// arithmetic, `in`, `matches`, ternaries, builtins — stays with expr.
//
// The closures follow expr's runtime semantics exactly (vm/runtime Equal, Less, …):
// values of different kinds are unequal, an absent value equals only nil, NaN compares
// false (and != true), and an ordering of an absent value or of mixed kinds is an error.
// Where expr would fail, the closure does not try to reproduce the message: it bails
// out, and Eval runs the expr program for that evaluation, so results and errors are
// identical both ways (TestFastPathDifferential checks this on random conditions).

// kind is the type of a slot value.
type kind uint8

const (
	absent kind = iota // nil in expr: no current event, a missing label
	str
	num // float64 (ints from count/hour/weekday are converted; exact below 2^53)
)

// value is a typed slot: what the flat environment holds for one key, unboxed.
type value struct {
	k kind
	s string
	f float64
}

// boolFn evaluates a boolean node; ok is false where expr would fail (see above).
type boolFn func(r *Runtime) (v, ok bool)

// valFn evaluates an operand.
type valFn func(r *Runtime) value

// Keys get process-wide slot numbers, so a compiled (immutable, shareable) condition
// can address a runtime's slots by index.
var keyIDs = struct {
	sync.Mutex
	ids map[string]int
}{ids: map[string]int{}}

func keyID(k string) int {
	keyIDs.Lock()
	defer keyIDs.Unlock()
	id, ok := keyIDs.ids[k]
	if !ok {
		id = len(keyIDs.ids)
		keyIDs.ids[k] = id
	}
	return id
}

// maxExactInt bounds integer constants taken by the fast path: below it a float64 holds
// an int exactly, so comparing as floats gives expr's integer result.
const maxExactInt = 1 << 53

// fastCompiler builds the closures for one condition.
type fastCompiler struct{ sites []*Site }

// boolNode returns the closure for a boolean node, or nil if the shape is not covered.
func (fc *fastCompiler) boolNode(n ast.Node) boolFn {
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*Runtime) (bool, bool) { return v, true }
	case *ast.ConstantNode:
		v, ok := n.Value.(bool)
		if !ok {
			return nil
		}
		return func(*Runtime) (bool, bool) { return v, true }
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		x := fc.boolNode(n.Node)
		if x == nil {
			return nil
		}
		return func(r *Runtime) (bool, bool) { v, ok := x(r); return !v, ok }
	case *ast.CallNode:
		s := fc.site(n)
		if s == nil || s.Func != FuncFiring {
			return nil
		}
		if len(s.Equal) > 0 {
			return func(r *Runtime) (bool, bool) { return r.firingSite(s), true }
		}
		name := s.Name
		return func(r *Runtime) (bool, bool) { return r.firing(name), true }
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			return fc.logic(n)
		case "==", "!=", "<", "<=", ">", ">=":
			return fc.compare(n)
		}
	}
	return nil
}

func (fc *fastCompiler) logic(n *ast.BinaryNode) boolFn {
	a, b := fc.boolNode(n.Left), fc.boolNode(n.Right)
	if a == nil || b == nil {
		return nil
	}
	if n.Operator == "&&" || n.Operator == "and" {
		return func(r *Runtime) (bool, bool) {
			if v, ok := a(r); !v || !ok {
				return v, ok
			}
			return b(r)
		}
	}
	return func(r *Runtime) (bool, bool) {
		if v, ok := a(r); v || !ok {
			return v, ok
		}
		return b(r)
	}
}

// constant returns the value of a constant operand.
func constant(n ast.Node) (value, bool) {
	var v any
	switch n := n.(type) {
	case *ast.IntegerNode:
		v = n.Value
	case *ast.FloatNode:
		v = n.Value
	case *ast.StringNode:
		v = n.Value
	case *ast.NilNode:
		v = nil
	case *ast.ConstantNode:
		v = n.Value
	default:
		return value{}, false
	}
	switch x := v.(type) {
	case nil:
		return value{k: absent}, true
	case string:
		return value{k: str, s: x}, true
	case float64:
		return value{k: num, f: x}, true
	case int:
		if x > -maxExactInt && x < maxExactInt {
			return value{k: num, f: float64(x)}, true
		}
	}
	return value{}, false
}

// operand returns the closure reading a key or a helper call, or nil.
func (fc *fastCompiler) operand(n ast.Node) valFn {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		if !validKey(n.Value) {
			return nil
		}
		id := keyID(n.Value)
		return func(r *Runtime) value { return r.val(id) }
	case *ast.CallNode:
		s := fc.site(n)
		if s == nil {
			return nil
		}
		id, w := seriesID(s), s.Window
		switch s.Func {
		case FuncCount:
			return func(r *Runtime) value { return value{k: num, f: float64(r.hist.getView(id).pick(r).count(r.now, w))} }
		case FuncSince:
			return func(r *Runtime) value { return value{k: num, f: r.hist.getView(id).pick(r).since(r.now)} }
		case FuncHour:
			return func(r *Runtime) value { return value{k: num, f: float64(r.now.In(r.loc).Hour())} }
		case FuncWeekday:
			return func(r *Runtime) value { return value{k: num, f: float64(r.now.In(r.loc).Weekday())} }
		case FuncRate, FuncIncrease, FuncAvgOver, FuncMaxOver, FuncMinOver:
			f := s.Func
			return func(r *Runtime) value { return value{k: num, f: r.hist.get(id).aggregate(f, r.now, w)} }
		}
	}
	return nil
}

// site returns the helper call that the rewriter left as $call(i), or nil.
func (fc *fastCompiler) site(n *ast.CallNode) *Site {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || id.Value != callName || len(n.Arguments) != 1 {
		return nil
	}
	i, ok := n.Arguments[0].(*ast.IntegerNode)
	if !ok || i.Value < 0 || i.Value >= len(fc.sites) {
		return nil
	}
	return fc.sites[i.Value]
}

// compare covers an operand or constant on each side; at least one side reads a value.
func (fc *fastCompiler) compare(n *ast.BinaryNode) boolFn {
	op := n.Operator
	lc, lconst := constant(n.Left)
	rc, rconst := constant(n.Right)
	var lf, rf valFn
	if !lconst {
		if lf = fc.operand(n.Left); lf == nil {
			return nil
		}
	}
	if !rconst {
		if rf = fc.operand(n.Right); rf == nil {
			return nil
		}
	}
	if f := fc.compareKey(n, op, rc, rconst); f != nil {
		return f
	}
	switch {
	case lconst && rconst:
		return nil // expr folds these; nothing to gain
	case rconst && rc.k == num:
		// The commonest shape, `metric > 90`, without the generic comparison.
		c := rc.f
		switch op {
		case ">":
			return func(r *Runtime) (bool, bool) { v := lf(r); return v.f > c, v.k == num }
		case ">=":
			return func(r *Runtime) (bool, bool) { v := lf(r); return v.f >= c, v.k == num }
		case "<":
			return func(r *Runtime) (bool, bool) { v := lf(r); return v.f < c, v.k == num }
		case "<=":
			return func(r *Runtime) (bool, bool) { v := lf(r); return v.f <= c, v.k == num }
		}
	case rconst && rc.k == str && (op == "==" || op == "!="):
		c, neg := rc.s, op == "!="
		return func(r *Runtime) (bool, bool) { v := lf(r); return (v.k == str && v.s == c) != neg, true }
	}
	return func(r *Runtime) (bool, bool) {
		a, b := lc, rc
		if lf != nil {
			a = lf(r)
		}
		if rf != nil {
			b = rf(r)
		}
		return compareValues(op, a, b)
	}
}

// compareKey is compare for a key on the left and a number or string constant on the
// right, the commonest shape by far (`metrics.cpu > 90`, `event.labels.reason !=
// "logged_out"`): the closure reads the slot itself instead of calling an operand
// closure, one indirect call less per comparison. nil if n has another shape.
func (fc *fastCompiler) compareKey(n *ast.BinaryNode, op string, rc value, rconst bool) boolFn {
	id, ok := n.Left.(*ast.IdentifierNode)
	if !ok || !rconst || !validKey(id.Value) {
		return nil
	}
	k := keyID(id.Value)
	switch {
	case rc.k == num:
		c := rc.f
		switch op {
		case ">":
			return func(r *Runtime) (bool, bool) { v := r.val(k); return v.f > c, v.k == num }
		case ">=":
			return func(r *Runtime) (bool, bool) { v := r.val(k); return v.f >= c, v.k == num }
		case "<":
			return func(r *Runtime) (bool, bool) { v := r.val(k); return v.f < c, v.k == num }
		case "<=":
			return func(r *Runtime) (bool, bool) { v := r.val(k); return v.f <= c, v.k == num }
		}
	case rc.k == str && op == "==":
		c := rc.s
		return func(r *Runtime) (bool, bool) { v := r.val(k); return v.k == str && v.s == c, true }
	case rc.k == str && op == "!=":
		c := rc.s
		return func(r *Runtime) (bool, bool) { v := r.val(k); return v.k != str || v.s != c, true }
	}
	return nil
}

// compareValues is expr's Equal/Less/… for the kinds a slot holds; ok is false where
// expr panics (an ordering of nil or of a string with a number).
func compareValues(op string, a, b value) (v, ok bool) {
	switch op {
	case "==":
		return equal(a, b), true
	case "!=":
		return !equal(a, b), true
	}
	if a.k != b.k || a.k == absent {
		return false, false
	}
	if a.k == str {
		switch op {
		case "<":
			return a.s < b.s, true
		case "<=":
			return a.s <= b.s, true
		case ">":
			return a.s > b.s, true
		default:
			return a.s >= b.s, true
		}
	}
	switch op {
	case "<":
		return a.f < b.f, true
	case "<=":
		return a.f <= b.f, true
	case ">":
		return a.f > b.f, true
	default:
		return a.f >= b.f, true
	}
}

func equal(a, b value) bool {
	if a.k != b.k {
		return false
	}
	switch a.k {
	case str:
		return a.s == b.s
	case num:
		return a.f == b.f // NaN is unequal to everything, as in expr
	}
	return true // both nil
}

// boxed is v as expr would hold it (for Explain and for the expr fallback).
func (v value) boxed() any {
	switch v.k {
	case str:
		return v.s
	case num:
		return v.f
	}
	return nil
}
