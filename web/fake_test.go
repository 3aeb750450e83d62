package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// fake is a Backend in memory: it records every state change the API makes, so a test
// can tell that a refused request changed nothing.
type fake struct {
	mu       sync.Mutex
	inputs   []engine.Input
	silences []Silence
	acks     []int64
	reloads  int
	events   []engine.Event // what Events answers
	alerts   []Alert        // what Alerts answers (nil: one alert, #1)
}

var _ Backend = (*fake)(nil)

func (f *fake) Overview(ctx context.Context) Overview {
	return Overview{Version: "test", WhatsApp: "off"}
}
func (f *fake) Policies(ctx context.Context) ([]engine.PolicyStatus, error) {
	return []engine.PolicyStatus{{Name: "p"}}, nil
}
func (f *fake) TryPolicy(name string, in engine.Input) (engine.TryResult, error) {
	if name != "p" {
		return engine.TryResult{}, fmt.Errorf("no policy named %q: %w", name, ErrNotFound)
	}
	return engine.TryResult{Matched: true}, nil
}
func (f *fake) Ingest(ctx context.Context, ins []engine.Input) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, ins...)
	return nil
}
func (f *fake) Reload(ctx context.Context) ReloadStatus {
	f.mu.Lock()
	f.reloads++
	f.mu.Unlock()
	return ReloadStatus{OK: true}
}
func (f *fake) History(ctx context.Context, since time.Time) ([]engine.Sample, error) {
	return nil, nil
}
func (f *fake) Events(ctx context.Context, limit int) ([]engine.Event, error) {
	return f.events[:min(limit, len(f.events))], nil
}
func (f *fake) Decisions(ctx context.Context, policy string, limit int) ([]DecisionRecord, error) {
	return nil, nil
}
func (f *fake) Actions(ctx context.Context, limit int) ([]ActionRecord, error) {
	return nil, fmt.Errorf("disk I/O error at /var/lib/remedy/secret-path")
}
func (f *fake) DeadLetters(ctx context.Context, queue string, pending bool) ([]DeadLetter, error) {
	return nil, nil
}
func (f *fake) Report(ctx context.Context) (Report, error) {
	return Report{}, fmt.Errorf("no daily report yet: %w", ErrNotFound)
}
func (f *fake) Alerts(ctx context.Context, limit int) ([]Alert, error) {
	if f.alerts != nil {
		return f.alerts[:min(limit, len(f.alerts))], nil
	}
	return []Alert{{ID: 1}}, nil
}
func (f *fake) Outbox(ctx context.Context) ([]OutboxEntry, error) { return nil, nil }
func (f *fake) Silences(ctx context.Context) ([]Silence, error)   { return f.silences, nil }
func (f *fake) Expire(ctx context.Context, id int64) error {
	return fmt.Errorf("no silence: %w", ErrNotFound)
}
func (f *fake) Ack(ctx context.Context, id int64, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != 1 {
		return fmt.Errorf("no alert #%d: %w", id, ErrNotFound)
	}
	f.acks = append(f.acks, id)
	return nil
}
func (f *fake) Unack(ctx context.Context, id int64) error {
	return fmt.Errorf("no ack on #%d: %w", id, ErrNotFound)
}
func (f *fake) Silence(ctx context.Context, s Silence) (Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.ID = int64(len(f.silences) + 1)
	f.silences = append(f.silences, s)
	return s, nil
}

// changes counts the state changes the backend saw.
func (f *fake) changes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inputs) + len(f.silences) + len(f.acks) + f.reloads
}

// serve starts a server on loopback with opts (Backend and Hub filled in).
func serve(t *testing.T, opts Options) (*fake, *httptest.Server) {
	t.Helper()
	f := &fake{}
	opts.Backend, opts.Hub = f, NewHub()
	if opts.ListenHost == "" {
		opts.ListenHost = "127.0.0.1"
	}
	srv := httptest.NewServer(NewServer(opts))
	t.Cleanup(srv.Close)
	return f, srv
}

// call makes a request with headers given as name, value pairs ("Host" sets the Host).
func call(t *testing.T, srv *httptest.Server, method, path, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
