package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/remedy-run/remedy/engine"
)

// ingestBackend answers Ingest with err and records what it was given; the rest of the
// Backend is the in-memory fake's.
type ingestBackend struct {
	fake
	err error
	got []engine.Input
}

func (b *ingestBackend) Ingest(_ context.Context, ins []engine.Input) error {
	if b.err != nil {
		return b.err
	}
	b.got = append(b.got, ins...)
	return nil
}

// The ingest contract: 202 only when the backend committed; 429 for a full queue and 503
// for a store that could not commit, both with Retry-After and the JSON error shape.
func TestIngestAnswersAfterCommit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		code  int
		retry bool
		body  string
	}{
		{"committed", nil, 202, false, `"accepted": 2`},
		{"queue full", ErrOverloaded, 429, true, `"code": "overloaded"`},
		{"not stored", errors.Join(ErrNotStored, errors.New("database or disk is full")), 503, true, `"code": "not_stored"`},
		{"request ended", context.DeadlineExceeded, 503, true, `"code": "not_stored"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &ingestBackend{err: tc.err}
			s := NewServer(Options{Backend: b, Hub: NewHub()})
			for _, req := range []struct{ path, body string }{
				{"/api/v1/events", `[{"code":"A"},{"code":"B"}]`},
				{"/api/v1/samples", `{"values":{"x":1,"y":2}}`},
			} {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, jsonPost(req.path, req.body))
				if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) {
					t.Fatalf("%s: %d %s", req.path, w.Code, w.Body)
				}
				if got := w.Header().Get("Retry-After"); (got != "") != tc.retry {
					t.Fatalf("%s: Retry-After %q", req.path, got)
				}
			}
			if tc.err != nil && len(b.got) != 0 {
				t.Fatalf("inputs taken on a refusal: %v", b.got)
			}
		})
	}
}

// blockingBackend holds every Ingest until release is closed.
type blockingBackend struct {
	ingestBackend
	entered chan struct{}
	release chan struct{}
}

func (b *blockingBackend) Ingest(ctx context.Context, ins []engine.Input) error {
	b.entered <- struct{}{}
	<-b.release
	return nil
}

// A flood of ingest requests is bounded: past maxIngestInFlight at once, requests are
// refused with 429 + Retry-After before their body is read.
func TestIngestInFlightBound(t *testing.T) {
	b := &blockingBackend{entered: make(chan struct{}, maxIngestInFlight), release: make(chan struct{})}
	s := NewServer(Options{Backend: b, Hub: NewHub()})
	var wg sync.WaitGroup
	for range maxIngestInFlight {
		wg.Go(func() {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, jsonPost("/api/v1/events", `{"code":"A"}`))
			if w.Code != 202 {
				t.Errorf("within the bound: %d", w.Code)
			}
		})
	}
	for range maxIngestInFlight {
		<-b.entered
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, jsonPost("/api/v1/samples", `{"values":{"x":1}}`))
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("past the bound: %d %s", w.Code, w.Body)
	}
	close(b.release)
	wg.Wait()
}

// jsonPost is a POST with a JSON body to a loopback Host, as the API's guard wants.
func jsonPost(path, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Host = "127.0.0.1"
	r.Header.Set("Content-Type", "application/json")
	return r
}
