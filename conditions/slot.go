package conditions

import "unsafe"

// A boxed value is an interface whose data word points at a cell that remedy owns, so
// a new float or int can be written into it without allocating a new interface. expr
// keeps every value on its stack as `any`; boxing each fresh float64 would cost an
// allocation per metric per evaluation, and the engine's target is zero allocations per
// input. The engine is single-goroutine and expr does not keep values between runs, so
// mutating the cell between evaluations is safe. Cells are always allocated here (never a
// compiler-owned static), which makes writing to them legal.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

var (
	floatType = typeOf(any(float64(1.5)))
	intType   = typeOf(any(int(1 << 20)))
)

func typeOf(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

// floatCell is a float64 that can be read by expr as an `any` without allocation.
type floatCell struct {
	v     *float64
	boxed any
}

func newFloatCell(v float64) *floatCell {
	c := &floatCell{v: new(float64)}
	*c.v = v
	*(*eface)(unsafe.Pointer(&c.boxed)) = eface{typ: floatType, data: unsafe.Pointer(c.v)}
	return c
}

func (c *floatCell) set(v float64) any { *c.v = v; return c.boxed }

// intCell is the same for int.
type intCell struct {
	v     *int
	boxed any
}

func newIntCell() *intCell {
	c := &intCell{v: new(int)}
	*(*eface)(unsafe.Pointer(&c.boxed)) = eface{typ: intType, data: unsafe.Pointer(c.v)}
	return c
}

func (c *intCell) set(v int) any { *c.v = v; return c.boxed }

// strBox keeps boxed strings so that repeated values (event codes, label values) do not
// allocate each time they are put into the environment.
type strBox struct {
	last  string
	boxed any
	seen  map[string]any
}

const maxInterned = 256

func (b *strBox) box(s string) any {
	if b.boxed != nil && s == b.last {
		return b.boxed
	}
	if v, ok := b.seen[s]; ok {
		b.last, b.boxed = s, v
		return v
	}
	v := any(s)
	if b.seen == nil {
		b.seen = map[string]any{}
	}
	if len(b.seen) < maxInterned {
		b.seen[s] = v
	}
	b.last, b.boxed = s, v
	return v
}
