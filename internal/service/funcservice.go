package service

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// Func is an in-process service: a function that runs until its context ends (message
// workers, the WhatsApp connection, the sampler, the web server). If it returns or
// panics on its own, that is a crash.
type Func struct {
	name   string
	run    func(ctx context.Context) error
	health func(ctx context.Context) error
	out    *Ring

	mu       sync.Mutex
	cancel   context.CancelFunc
	done     chan struct{}
	stopping bool
	onExit   func(code int, err error)
}

// NewFunc returns an in-process service. health may be nil (running means healthy).
func NewFunc(name string, run, health func(ctx context.Context) error) *Func {
	return &Func{name: name, run: run, health: health, out: NewRing(50)}
}

// Name is the service's name.
func (f *Func) Name() string { return f.name }

// Output holds the errors and panics of past runs.
func (f *Func) Output() []string { return f.out.Lines() }

func (f *Func) setOnExit(h func(code int, err error)) { f.onExit = h }

// Start runs the function in a goroutine.
func (f *Func) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done != nil {
		return fmt.Errorf("%s: already running", f.name)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	f.cancel, f.done, f.stopping = cancel, done, false
	go func() {
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
				}
			}()
			err = f.run(rctx)
		}()
		if err == nil {
			err = errors.New("returned")
		}
		fmt.Fprintf(f.out, "%s: %v\n", time.Now().UTC().Format(time.RFC3339), err)
		f.mu.Lock()
		stopping := f.stopping
		f.done, f.cancel = nil, nil
		onExit := f.onExit
		f.mu.Unlock()
		cancel()
		close(done)
		if !stopping && onExit != nil {
			onExit(-1, err)
		}
	}()
	return nil
}

// Stop cancels the function's context and waits up to grace for it to return. A
// goroutine cannot be killed: one that does not return is abandoned and reported.
func (f *Func) Stop(ctx context.Context, grace time.Duration) error {
	f.mu.Lock()
	cancel, done := f.cancel, f.done
	if done == nil {
		f.mu.Unlock()
		return nil
	}
	f.stopping = true
	f.mu.Unlock()
	cancel()
	if grace <= 0 {
		grace = 10 * time.Second
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	f.mu.Lock()
	f.done, f.cancel = nil, nil // abandoned; a new run may start
	f.mu.Unlock()
	return fmt.Errorf("%s: did not stop within %v; abandoned", f.name, grace)
}

// Health is the service's own check, or whether it runs.
func (f *Func) Health(ctx context.Context) error {
	f.mu.Lock()
	running := f.done != nil
	f.mu.Unlock()
	if !running {
		return errors.New("not running")
	}
	if f.health != nil {
		return f.health(ctx)
	}
	return nil
}
