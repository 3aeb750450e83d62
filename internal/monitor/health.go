package monitor

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// Check is one readiness probe.
type Check func(ctx context.Context) error

// StateCheck is a readiness probe that also names the state it found ("connected",
// "unpaired", "off"): /readyz shows that word for it while it passes, so a probe that
// passes for a deliberate reason says which (an unpaired WhatsApp is ready, but not "ok").
type StateCheck func(ctx context.Context) (state string, err error)

// Health answers /healthz and /readyz and runs the scheduled health check.
type Health struct {
	mu     sync.Mutex
	checks map[string]StateCheck
	failed map[string]bool
}

// NewHealth returns a health endpoint with no checks.
func NewHealth() *Health { return &Health{checks: map[string]StateCheck{}, failed: map[string]bool{}} }

// Add registers a readiness probe (database writable, engine keeping up, …); /readyz
// shows "ok" for it while it passes.
func (h *Health) Add(name string, c Check) {
	h.AddState(name, func(ctx context.Context) (string, error) { return "ok", c(ctx) })
}

// AddState registers a readiness probe that names its state (WhatsApp: "connected",
// "unpaired", "off").
func (h *Health) AddState(name string, c StateCheck) {
	h.mu.Lock()
	h.checks[name] = c
	h.mu.Unlock()
}

// Remove drops a readiness probe (a WhatsApp session a reload removed).
func (h *Health) Remove(name string) {
	h.mu.Lock()
	delete(h.checks, name)
	delete(h.failed, name)
	h.mu.Unlock()
}

// Run runs every probe with a timeout and returns the failures by name.
func (h *Health) Run(ctx context.Context) map[string]string {
	_, fails := h.run(ctx)
	return fails
}

// run runs every probe (5 s each, concurrently) and returns each one's state while it
// passes and its error when it fails.
func (h *Health) run(ctx context.Context) (states, fails map[string]string) {
	h.mu.Lock()
	checks := make(map[string]StateCheck, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	h.mu.Unlock()
	states, fails = map[string]string{}, map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			st, err := c(cctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails[name] = err.Error()
			} else {
				states[name] = cmp.Or(st, "ok")
			}
		}()
	}
	wg.Wait()
	return states, fails
}

// Live serves /healthz: the process answers.
func (h *Health) Live(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("ok\n"))
}

// Ready serves /readyz: 200 if every probe passes, 503 with the failures otherwise;
// "checks" holds each probe's state ("ok", or the word a StateCheck gave) or its error.
func (h *Health) Ready(w http.ResponseWriter, r *http.Request) {
	states, fails := h.run(r.Context())
	w.Header().Set("Content-Type", "application/json")
	status := map[string]string{}
	maps.Copy(status, states)
	maps.Copy(status, fails)
	if len(fails) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": len(fails) == 0, "checks": status})
}

// RunScheduled runs the probes every interval (default in the daemon: 5 minutes) and
// reports a probe that starts failing as HEALTH_CHECK_FAILED, and one that passes again
// as HEALTH_CHECK_OK.
func (h *Health) RunScheduled(ctx context.Context, every time.Duration, events func(engine.Event)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.CheckOnce(ctx, events)
		}
	}
}

// CheckOnce runs the probes and reports the transitions.
func (h *Health) CheckOnce(ctx context.Context, events func(engine.Event)) {
	fails := h.Run(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	for name := range h.checks {
		msg, bad := fails[name]
		switch {
		case bad && !h.failed[name]:
			h.failed[name] = true
			events(engine.Event{Time: time.Now(), Code: "HEALTH_CHECK_FAILED", Source: "monitor", Labels: map[string]string{"check": name}, Message: msg})
		case !bad && h.failed[name]:
			h.failed[name] = false
			events(engine.Event{Time: time.Now(), Code: "HEALTH_CHECK_OK", Source: "monitor", Labels: map[string]string{"check": name}})
		}
	}
}
