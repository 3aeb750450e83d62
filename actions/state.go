package actions

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Machine is an in-process state machine that RESET_STATE can reset when it has not
// progressed within the TTL (a conversation flow, a pairing attempt).
type Machine interface {
	Name() string
	Scope() string // sessions or conversations
	LastProgress() time.Time
	// Reset returns the machine to its initial state and returns a description of the
	// state it left (the before-image, for the audit).
	Reset() string
}

// Machines is a StateResetter over in-process state machines.
type Machines struct {
	mu       sync.Mutex
	machines []Machine
	now      func() time.Time
}

// NewMachines returns an empty set.
func NewMachines() *Machines { return &Machines{now: time.Now} }

// Add registers a machine.
func (m *Machines) Add(mc Machine) {
	m.mu.Lock()
	m.machines = append(m.machines, mc)
	m.mu.Unlock()
}

// ResetState resets the machines of the scope that have not progressed within ttl; the
// before-images go to the attempt's output (the audit).
func (m *Machines) ResetState(ctx context.Context, scope string, ttl time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, mc := range m.machines {
		if scope != "all" && mc.Scope() != scope {
			continue
		}
		if m.now().Sub(mc.LastProgress()) < ttl {
			continue
		}
		before := mc.Reset()
		fmt.Fprintf(Output(ctx), "reset %s (no progress since %s): was %s\n", mc.Name(),
			mc.LastProgress().UTC().Format(time.RFC3339), before)
		n++
	}
	return n, nil
}
