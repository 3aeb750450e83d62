package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

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
// with 429, so a flood cannot grow memory (300 concurrent posts of 1,000 events peaked
// at 362 MB without it). A slot is taken only once the body has been read (readBody),
// so slow clients cannot hold the slots (issue 26, A22: 32 bodies sent a byte every 3 s
// refused every ingest for 30 s, renewable forever).
const maxIngestInFlight = 32

// Bounds of an ingest body being read, before it takes a slot: it must arrive within
// ingestBodyTimeout plus one second per ingestBodyRate bytes it declares (10 s for
// 1 MiB of events, 74 s for a 16 MiB upload), and all the bodies being read hold at
// most maxIngestBuffered bytes in memory (charged as bytes arrive, so a slow client
// holds only what it sent). Past the deadline the connection is closed; past the
// budget the request is refused with 429.
const (
	ingestBodyTimeout = 10 * time.Second
	ingestBodyRate    = 256 << 10
	maxIngestBuffered = 256 << 20
)

// limitIngest reads the body (readBody), then runs h in one of maxIngestInFlight
// slots; past them it answers 429 + Retry-After.
func (s *Server) limitIngest(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		release, ok := s.readBody(w, r)
		defer release()
		if !ok {
			w.Header().Set("Retry-After", strconv.Itoa(ingestRetryAfter))
			writeError(w, http.StatusTooManyRequests, "overloaded", "too many ingest bodies being received at once; nothing was accepted, post again later")
			return
		}
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

// readBody reads r's body into memory under its own read deadline and the byte budget,
// and replaces r.Body with what was read followed by the read's error (a
// *http.MaxBytesError or a timeout), so the handler answers it as before. It returns
// the budget's release and false when the budget is spent.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	declared := r.ContentLength
	if declared < 0 {
		declared = s.bodyLimit(r)
	}
	deadline := ingestBodyTimeout + time.Duration(declared/ingestBodyRate)*time.Second
	// Not every ResponseWriter has a connection (httptest's recorder): no deadline there.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(deadline))
	s.reading.Add(1)
	defer s.reading.Add(-1)
	var buf bytes.Buffer
	var held int64
	release = func() { s.buffered.Add(-held) }
	chunk := make([]byte, 32<<10)
	var rerr error
	for {
		if s.buffered.Add(int64(len(chunk))) > maxIngestBuffered {
			s.buffered.Add(-int64(len(chunk)))
			return release, false
		}
		n, err := r.Body.Read(chunk)
		s.buffered.Add(int64(n - len(chunk)))
		held += int64(n)
		buf.Write(chunk[:n])
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	r.Body = io.NopCloser(io.MultiReader(&buf, errReader{rerr}))
	return release, true
}

// errReader returns err (io.EOF when nil).
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
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
