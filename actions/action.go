// Package actions runs recovery actions: the Action interface, the registry, the
// executor, and the built-in actions. (Which actions exist and what parameters they take
// is part of the policy language: policies.ActionSpecs.)
//
// Retries are not done here: an action runs one attempt and reports the outcome; the
// engine decides whether and when to try again.
package actions

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/remedy-run/remedy/policies"
)

// Params are an action's parameters after the policy's templates have been rendered.
type Params map[string]string

// Action performs one attempt of a recovery step. It must honour ctx's deadline.
type Action interface {
	Run(ctx context.Context, p Params) error
}

// ActionFunc adapts a plain function to Action.
type ActionFunc func(ctx context.Context, p Params) error

// Run calls f.
func (f ActionFunc) Run(ctx context.Context, p Params) error { return f(ctx, p) }

// ErrUnknownAction is returned for a name that no registry entry has.
var ErrUnknownAction = errors.New("unknown action")

// Registry maps action names to their implementation. It is built explicitly in code
// (no init side effects) and is not safe for concurrent registration.
type Registry struct {
	actions map[string]Action
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{actions: map[string]Action{}} }

// Register adds an action under name. The name must be in the catalogue and not yet taken.
func (r *Registry) Register(name string, a Action) error {
	if _, ok := policies.LookupAction(name); !ok {
		return fmt.Errorf("register %q: %w", name, ErrUnknownAction)
	}
	if _, dup := r.actions[name]; dup {
		return fmt.Errorf("register %q: already registered", name)
	}
	r.actions[name] = a
	return nil
}

// Get returns the action registered under name.
func (r *Registry) Get(name string) (Action, error) {
	a, ok := r.actions[name]
	if !ok {
		return nil, fmt.Errorf("action %q: %w", name, ErrUnknownAction)
	}
	return a, nil
}

// Names lists the registered actions in order.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.actions))
	for n := range r.actions {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
