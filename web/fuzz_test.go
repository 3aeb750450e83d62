package web

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

// Fuzz targets, one per JSON endpoint. Their seed corpus runs with every `go test`;
// .ci/run fuzzes each for a few seconds. The invariant: any body gets a JSON answer
// with one of the endpoint's statuses (never a panic or a 5xx), and what is accepted
// passed every rule (no forged code or source, finite values, times in range).

func fuzzServer() (*fake, *Server) {
	f := &fake{}
	return f, NewServer(Options{Backend: f, Hub: NewHub(), ListenHost: "127.0.0.1", AllowCodes: []string{"WA_CONNECTED"},
		Token: "operator-0123456789abcdef",
		Drill: func(ctx context.Context, req DrillRequest) (DrillStarted, error) {
			return DrillStarted{Scenario: req.Scenario}, nil
		}})
}

func fuzzPost(t *testing.T, s *Server, path string, body []byte, statuses ...int) int {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Host = "127.0.0.1:8080"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer operator-0123456789abcdef")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if !slices.Contains(statuses, rec.Code) {
		t.Fatalf("POST %s %q: status %d %s", path, body, rec.Code, rec.Body)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("POST %s %q: not JSON: %s", path, body, rec.Body)
	}
	return rec.Code
}

func FuzzEvents(f *testing.F) {
	for _, seed := range []string{`{"code":"BOT_X"}`, `[{"code":"BOT_X","source":"bot","labels":{"a":"b"},"value":1.5}]`,
		`{"code":"WA_LOGGED_OUT"}`, `{"code":"WA_CONNECTED","source":"bot2"}`, `{"code":"QUEUE_OK","labels":{"queue":"inbound"}}`,
		`{"code":"X","time":"2099-01-01T00:00:00Z"}`, `[]`, `{"code":"X","source":"whatsapp"}`, `{"code":"X","value":1e309}`, `nul`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fk, s := fuzzServer()
		if fuzzPost(t, s, "/api/v1/events", body, 202, 400, 403, 413, 422) != 202 {
			if len(fk.inputs) != 0 {
				t.Fatal("refused but ingested")
			}
			return
		}
		now := time.Now()
		for _, in := range fk.inputs {
			ev := in.(engine.Event)
			owner := policies.CodeOwner(ev.Code, ev.Labels)
			if (owner != "" && ev.Code != "WA_CONNECTED") || policies.InternalSource(ev.Source) || ev.Source == "" ||
				math.IsNaN(ev.Value) || ev.Time.After(now.Add(6*time.Minute)) {
				t.Fatalf("accepted %+v", ev)
			}
		}
	})
}

func FuzzSamples(f *testing.F) {
	for _, seed := range []string{`{"values":{"cpu_percent":1}}`, `{"values":{"queue_jobs_depth":1}}`, `{"values":{}}`, `{"values":{"CPU":1}}`, `{"time":"2000-01-01T00:00:00Z","values":{"a":1}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fk, s := fuzzServer()
		if fuzzPost(t, s, "/api/v1/samples", body, 202, 400, 403, 413, 422) == 202 {
			for k, v := range fk.inputs[0].(engine.Sample).Values {
				if !metricRE.MatchString(k) || math.IsNaN(v) || math.IsInf(v, 0) || policies.OwnMetric(k) {
					t.Fatalf("accepted %s=%v", k, v)
				}
			}
		}
	})
}

func FuzzSilences(f *testing.F) {
	for _, seed := range []string{silenceAll, `{"matchers":{},"duration":"1h","author":"a"}`, `{"matchers":{"policy":"x"},"duration":"-1h","author":"a"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fk, s := fuzzServer()
		if fuzzPost(t, s, "/api/v1/silences", body, 201, 400, 413, 422) == 201 {
			sl := fk.silences[0]
			if len(sl.Matchers) == 0 || sl.Author == "" || sl.Ends.Sub(sl.Starts) > 30*24*time.Hour || !sl.Ends.After(sl.Starts) {
				t.Fatalf("accepted %+v", sl)
			}
		}
	})
}

func FuzzAck(f *testing.F) {
	for _, seed := range []string{`{"by":"me"}`, `{"by":""}`, `{}`} {
		f.Add([]byte(seed), "1")
	}
	f.Add([]byte(`{"by":"me"}`), "x")
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		if id == "" {
			return // "/alerts//ack": the router redirects to the clean path
		}
		_, s := fuzzServer()
		fuzzPost(t, s, "/api/v1/alerts/"+urlPathEscape(id)+"/ack", body, 200, 400, 404, 405, 413, 422)
	})
}

func FuzzTryPolicy(f *testing.F) {
	for _, seed := range []string{`{"event":{"code":"WA_LOGGED_OUT"}}`, `{"sample":{"values":{"cpu_percent":95}}}`, `{"event":{},"sample":{}}`, `{}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, s := fuzzServer()
		fuzzPost(t, s, "/api/v1/policies/p/try", body, 200, 400, 413, 422)
	})
}

func FuzzDrills(f *testing.F) {
	for _, seed := range []string{`{"scenario":"queue"}`, `{"scenario":"database","seconds":5}`, `{"scenario":"nope"}`, `{"scenario":"service","seconds":-1}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, s := fuzzServer()
		fuzzPost(t, s, "/api/v1/drills", body, 202, 400, 413, 422)
	})
}

// urlPathEscape keeps a fuzzed path segment one segment.
func urlPathEscape(s string) string {
	var b bytes.Buffer
	for _, c := range []byte(s) {
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + string("0123456789ABCDEF"[c>>4]) + string("0123456789ABCDEF"[c&15]))
		}
	}
	return b.String()
}
