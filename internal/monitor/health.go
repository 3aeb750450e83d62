package monitor

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// Check is one readiness probe.
type Check func(ctx context.Context) error

// Health answers /healthz and /readyz and runs the scheduled health check.
type Health struct {
	mu     sync.Mutex
	checks map[string]Check
	failed map[string]bool
}

// NewHealth returns a health endpoint with no checks.
func NewHealth() *Health { return &Health{checks: map[string]Check{}, failed: map[string]bool{}} }

// Add registers a readiness probe (WhatsApp connected or deliberately unpaired, database
// writable, engine keeping up, …).
func (h *Health) Add(name string, c Check) {
	h.mu.Lock()
	h.checks[name] = c
	h.mu.Unlock()
}

// Run runs every probe with a timeout and returns the failures by name.
func (h *Health) Run(ctx context.Context) map[string]string {
	h.mu.Lock()
	checks := make(map[string]Check, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	h.mu.Unlock()
	out := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := c(cctx); err != nil {
				mu.Lock()
				out[name] = err.Error()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// Live serves /healthz: the process answers.
func (h *Health) Live(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("ok\n"))
}

// Ready serves /readyz: 200 if every probe passes, 503 with the failures otherwise.
func (h *Health) Ready(w http.ResponseWriter, r *http.Request) {
	fails := h.Run(r.Context())
	w.Header().Set("Content-Type", "application/json")
	names := make([]string, 0, len(h.checks))
	h.mu.Lock()
	for n := range h.checks {
		names = append(names, n)
	}
	h.mu.Unlock()
	sort.Strings(names)
	status := map[string]string{}
	for _, n := range names {
		status[n] = "ok"
		if e, bad := fails[n]; bad {
			status[n] = e
		}
	}
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
