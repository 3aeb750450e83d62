package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/remedy-run/remedy/engine"
)

// Errors a Backend's Ingest returns; status maps them to 429 and 503.
var (
	// ErrOverloaded: too many inputs are waiting (the engine's inbox or the writer's
	// queue is at its bound). Answered 429 with Retry-After: the client should wait and
	// post the same inputs again.
	ErrOverloaded = errors.New("too many inputs waiting")
	// ErrNotStored: the store could not commit the inputs within the bound (a held lock,
	// a full disk, an I/O error). Answered 503 with Retry-After; nothing of the request
	// was acknowledged, so the client posts it again.
	ErrNotStored = errors.New("inputs not stored")
)

// ingestRetryAfter is the Retry-After of a refused ingest, in seconds.
const ingestRetryAfter = 5

// maxIngestInFlight bounds the ingest requests being decoded and committed at once
// (each up to 1 MiB of JSON, several times that decoded): past it a request is refused
// with 429 before its body is read, so a flood cannot grow memory (300 concurrent posts
// of 1,000 events peaked at 362 MB without it).
const maxIngestInFlight = 32

// limitIngest refuses ingest requests past maxIngestInFlight with 429 + Retry-After.
func (s *Server) limitIngest(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.ingestSlots <- struct{}{}:
			defer func() { <-s.ingestSlots }()
			h(w, r)
		default:
			w.Header().Set("Retry-After", strconv.Itoa(ingestRetryAfter))
			writeError(w, http.StatusTooManyRequests, "overloaded", "too many ingest requests at once; nothing was accepted, post again later")
		}
	}
}

// accept hands validated inputs to the backend and answers: 202 once they are committed
// to disk ("accepted" is their count), 429 or 503 with Retry-After when they are not.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, ins []engine.Input, count int) {
	err := s.opts.Backend.Ingest(r.Context(), ins)
	if err == nil {
		writeJSON(w, http.StatusAccepted, map[string]int{"accepted": count})
		return
	}
	// ErrNotStored, or the request's own end: either way nothing was acknowledged.
	if !errors.Is(err, ErrOverloaded) && !errors.Is(err, ErrNotStored) {
		err = fmt.Errorf("%w: %w", ErrNotStored, err)
	}
	w.Header().Set("Retry-After", strconv.Itoa(ingestRetryAfter))
	s.fail(w, r, err)
}
