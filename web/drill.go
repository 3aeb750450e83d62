package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"
)

// Drill scenarios: each injects a real, reversible fault into the running daemon.
var DrillScenarios = []string{"whatsapp", "database", "queue", "service"}

// DrillRequest asks for a fire drill.
type DrillRequest struct {
	Scenario string `json:"scenario"`
	// Seconds is how long the fault lasts (database: the write lock is held; queue: the
	// items stall at most this long). 0: the scenario's default.
	Seconds int    `json:"seconds,omitempty"`
	Service string `json:"service,omitempty"` // service: which one (default: the only one)
}

// DrillStarted says what was injected and what the policies are expected to do, so
// that a client can watch the event log for the outcome.
type DrillStarted struct {
	Scenario string    `json:"scenario"`
	Started  time.Time `json:"started"`
	Ends     time.Time `json:"ends,omitzero"` // when the injected fault stops by itself
	Detail   string    `json:"detail"`
	// Policies are the default policies that should detect it.
	Policies []string `json:"policies"`
	// Recovered is the event code (with labels that must match) that shows recovery.
	Recovered       string            `json:"recovered"`
	RecoveredLabels map[string]string `json:"recovered_labels,omitempty"`
}

// ErrDrillUnavailable is a drill that cannot run now (WhatsApp off or not connected, a
// drill already running, no such service); answered 409.
var ErrDrillUnavailable = errors.New("drill unavailable")

func (s *Server) drillRoutes(api func(string, http.HandlerFunc)) {
	api("POST /api/v1/drills", func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Drill == nil {
			writeError(w, http.StatusNotFound, "no_drills", "this server runs no drills")
			return
		}
		// A drill breaks things on purpose: never on an API anyone on the host can call.
		if s.opts.Token == "" {
			writeError(w, http.StatusForbidden, "token_required",
				"drills need an API token: set token_env or REMEDY_TOKEN and restart remedy")
			return
		}
		var req DrillRequest
		if !decode(w, r, &req) {
			return
		}
		if !slices.Contains(DrillScenarios, req.Scenario) {
			writeError(w, http.StatusBadRequest, "bad_scenario", "scenario must be one of whatsapp, database, queue, service")
			return
		}
		if req.Seconds < 0 || req.Seconds > 1800 {
			writeError(w, http.StatusBadRequest, "bad_seconds", "seconds must be between 0 and 1800")
			return
		}
		st, err := s.opts.Drill(context.WithoutCancel(r.Context()), req)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, st)
	})
}
