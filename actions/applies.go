package actions

import (
	"context"
	"errors"
)

// ErrNotApplicable means an action cannot apply to its target: a queue, database or
// subsystem remedy does not have. Retrying cannot change that, so the executor records
// the attempt as "refused" (one outcome, nothing run) and reports it with the label
// outcome=refused; the engine then counts the step used up instead of retrying it.
var ErrNotApplicable = errors.New("not applicable")

// Applier is an action that can tell, before it runs, whether it applies to its target.
// Applies returns nil when it does, and an error wrapping ErrNotApplicable or
// ErrNotConfigured (saying what is missing) when it does not.
type Applier interface {
	Applies(ctx context.Context, p Params) error
}

// checked is an action with a check of its target made before it runs.
type checked struct {
	check func(ctx context.Context, p Params) error
	run   ActionFunc
}

var _ Applier = checked{}

func (c checked) Run(ctx context.Context, p Params) error     { return c.run(ctx, p) }
func (c checked) Applies(ctx context.Context, p Params) error { return c.check(ctx, p) }

// refused reports whether err says the action cannot apply (see ErrNotApplicable).
func refused(err error) bool {
	return errors.Is(err, ErrNotApplicable) || errors.Is(err, ErrNotConfigured)
}
