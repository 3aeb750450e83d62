package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
)

// recorder writes the engine's inputs and decisions to the databases in batches, off the
// engine loop: events and decisions to remedy.db (for replay and the timeline), samples
// to the metrics database.
type recorder struct {
	data *store.Data
	log  *slog.Logger

	mu        sync.Mutex
	events    []engine.Event
	decisions []engine.Decision
	samples   []engine.Sample
	wake      chan struct{}
}

func newRecorder(data *store.Data, log *slog.Logger) *recorder {
	return &recorder{data: data, log: log, wake: make(chan struct{}, 1)}
}

func (r *recorder) add(in engine.Input, ds []engine.Decision) {
	r.mu.Lock()
	switch x := in.(type) {
	case engine.Event:
		r.events = append(r.events, x)
	case engine.Sample:
		r.samples = append(r.samples, x)
	}
	r.decisions = append(r.decisions, ds...)
	n := len(r.events) + len(r.decisions)
	r.mu.Unlock()
	if n >= 200 {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// run flushes every 200 ms (or sooner when a batch is large) until ctx ends, then once
// more.
func (r *recorder) run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r.flush(fctx)
			cancel()
			return
		case <-t.C:
		case <-r.wake:
		}
		r.flush(ctx)
	}
}

func (r *recorder) flush(ctx context.Context) {
	r.mu.Lock()
	evs, ds, ss := r.events, r.decisions, r.samples
	r.events, r.decisions, r.samples = nil, nil, nil
	r.mu.Unlock()
	if err := r.data.Main.InsertEvents(ctx, evs); err != nil {
		r.log.Error("recording events", "count", len(evs), "error", err)
	}
	if err := r.data.Main.InsertDecisions(ctx, ds); err != nil {
		r.log.Error("recording decisions", "count", len(ds), "error", err)
	}
	for _, s := range ss {
		// Samples are shed first on a full disk; InsertSample counts what it drops.
		_ = r.data.Metrics.InsertSample(ctx, s)
	}
}
