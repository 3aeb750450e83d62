package daemon

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/web"
)

// runner runs the engine: it owns the engine, the bounded inbox every source feeds, and
// the loop, the one goroutine that hands the engine its inputs, ticks at its deadlines,
// reloads and read queries, one at a time. After each input it calls effects with the
// decisions, on the loop goroutine: effects hand work to the executor, the alert
// pipeline, the writers and the hub, and never block or touch SQLite, so a stalled disk
// never stalls a recovery decision.
type runner struct {
	eng      *engine.Engine // touched only by the loop goroutine
	inbox    *inbox
	queries  chan func(*engine.Engine)
	reloads  chan chan web.ReloadStatus
	lastLoop atomic.Int64 // unix nanos of the loop's last turn, for readiness and the watchdog
	stopping atomic.Bool  // the loop is draining for shutdown: decisions are recorded, no action starts

	effects func(e *engine.Engine, it item, ds []engine.Decision)
	reload  func(ctx context.Context) web.ReloadStatus
}

func newRunner(eng *engine.Engine) runner {
	return runner{eng: eng, inbox: newInbox(20_000), queries: make(chan func(*engine.Engine)),
		reloads: make(chan chan web.ReloadStatus)}
}

// loop runs until ctx ends; then it processes what the inbox still holds (inputs taken
// are finished, not dropped) and returns.
func (r *runner) loop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.lastLoop.Store(time.Now().UnixNano())
		if next := r.eng.NextDeadline(); !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		} else {
			timer.Reset(time.Minute) // nothing scheduled; turn anyway so readiness sees the loop alive
		}
		select {
		case <-ctx.Done():
			r.drain()
			return
		case <-r.inbox.notify:
			r.drain()
		case <-timer.C:
			r.step(item{in: engine.Tick{Time: time.Now()}})
		case reply := <-r.reloads:
			reply <- r.reload(ctx)
		case q := <-r.queries:
			q(r.eng)
		}
	}
}

func (r *runner) drain() {
	for _, it := range r.inbox.take() {
		r.step(it)
	}
}

func (r *runner) step(it item) {
	ds := r.eng.Process(it.in)
	r.effects(r.eng, it, append([]engine.Decision(nil), ds...))
}

// query runs f on the engine in the loop goroutine.
func (r *runner) query(ctx context.Context, f func(*engine.Engine)) error {
	done := make(chan struct{})
	select {
	case r.queries <- func(e *engine.Engine) { f(e); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Policies describes every policy and instance.
func (r *runner) Policies(ctx context.Context) ([]engine.PolicyStatus, error) {
	var out []engine.PolicyStatus
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := r.query(qctx, func(e *engine.Engine) { out = e.Status() })
	return out, err
}

// Reload asks the loop to reload and waits for the result.
func (r *runner) Reload(ctx context.Context) web.ReloadStatus {
	reply := make(chan web.ReloadStatus, 1)
	select {
	case r.reloads <- reply:
	case <-ctx.Done():
		return web.ReloadStatus{Time: time.Now(), Errors: []string{ctx.Err().Error()}}
	}
	select {
	case st := <-reply:
		return st
	case <-ctx.Done():
		return web.ReloadStatus{Time: time.Now(), Errors: []string{ctx.Err().Error()}}
	}
}
