package web

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/remedy-run/remedy/conditions"
	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/alert"
	"github.com/remedy-run/remedy/internal/queue"
)

func (s *Server) routes() {
	api := func(pattern string, h http.HandlerFunc) {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !s.authorized(r) {
				writeError(w, http.StatusUnauthorized, "unauthorized", "a valid token is required (Authorization: Bearer TOKEN)")
				return
			}
			h(w, r)
		})
	}
	b := s.opts.Backend
	api("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, b.Overview(r.Context())) })
	api("GET /api/v1/policies", func(w http.ResponseWriter, r *http.Request) {
		ps, err := b.Policies(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "busy", err.Error())
			return
		}
		writeJSON(w, 200, ps)
	})
	api("POST /api/v1/policies/{name}/try", s.tryPolicy)
	s.pairRoutes(api)
	s.drillRoutes(api)
	api("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		rows, err := b.Store().Main.Alerts(r.Context(), limit(r, 100))
		respond(w, rows, err)
	})
	api("POST /api/v1/alerts/{id}/ack", s.ack)
	api("GET /api/v1/silences", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, nonNil(b.Pipeline().Silences())) })
	api("POST /api/v1/silences", s.createSilence)
	api("DELETE /api/v1/silences/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeError(w, 400, "bad_id", "the silence id must be a number")
			return
		}
		if err := b.Pipeline().Expire(r.Context(), id); err != nil {
			writeError(w, 404, "not_found", err.Error())
			return
		}
		writeJSON(w, 200, map[string]any{"expired": id})
	})
	api("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		evs, err := b.Store().Main.RecentEvents(r.Context(), limit(r, 200))
		respond(w, evs, err)
	})
	api("POST /api/v1/events", s.limitIngest(s.ingestEvents))
	api("POST /api/v1/samples", s.limitIngest(s.ingestSample))
	api("GET /api/v1/decisions", func(w http.ResponseWriter, r *http.Request) {
		rows, err := b.Store().Main.Decisions(r.Context(), r.URL.Query().Get("policy"), limit(r, 50))
		respond(w, rows, err)
	})
	api("GET /api/v1/actions", func(w http.ResponseWriter, r *http.Request) {
		rows, err := b.Store().Main.Audit(r.Context(), limit(r, 100))
		respond(w, rows, err)
	})
	api("GET /api/v1/deadletters", func(w http.ResponseWriter, r *http.Request) {
		dls, err := queue.DeadLetters(r.Context(), b.Store().Main, r.URL.Query().Get("queue"), r.URL.Query().Get("all") == "")
		respond(w, dls, err)
	})
	api("GET /api/v1/outbox", func(w http.ResponseWriter, r *http.Request) {
		p, err := b.Pipeline().Pending(r.Context())
		respond(w, p, err)
	})
	api("POST /api/v1/reload", func(w http.ResponseWriter, r *http.Request) {
		st := b.Reload(r.Context())
		code := 200
		if !st.OK {
			code = http.StatusUnprocessableEntity
		}
		writeJSON(w, code, st)
	})
	api("GET /api/v1/report", func(w http.ResponseWriter, r *http.Request) {
		at, body, err := alert.Latest(r.Context(), b.Store().Main)
		if err != nil {
			writeError(w, 404, "not_found", "no daily report yet")
			return
		}
		writeJSON(w, 200, map[string]any{"time": at, "report": body})
	})
	api("GET /api/v1/history", func(w http.ResponseWriter, r *http.Request) {
		mins := limit(r, 30)
		if v, err := strconv.Atoi(r.URL.Query().Get("minutes")); err == nil && v > 0 && v <= 48*60 {
			mins = v
		}
		h, err := b.History(r.Context(), time.Now().Add(-time.Duration(mins)*time.Minute))
		respond(w, h, err)
	})
	api("GET /api/v1/stream", s.stream)
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func respond[T any](w http.ResponseWriter, v []T, err error) {
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	writeJSON(w, 200, nonNil(v))
}

func limit(r *http.Request, def int) int {
	if v, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && v > 0 && v <= 1000 {
		return v
	}
	return def
}

// EventIn is an event posted by another program (for example an existing Node.js bot).
type EventIn struct {
	Time    *time.Time        `json:"time"`
	Code    string            `json:"code"`
	Source  string            `json:"source"`
	Labels  map[string]string `json:"labels"`
	Message string            `json:"message"`
	Value   float64           `json:"value"`
}

var (
	codeRE   = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
	labelRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`)
	metricRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,99}$`)
)

// reserved codes are emitted by remedy itself; accepting them from outside would let a
// program forge a recovery's result.
func reserved(code string) bool {
	return strings.HasPrefix(code, "ACTION_") || strings.HasPrefix(code, "POLICY_RELOAD")
}

func (e EventIn) validate(now time.Time) (engine.Event, []string) {
	var errs []string
	switch {
	case !codeRE.MatchString(e.Code):
		errs = append(errs, fmt.Sprintf("code %q: upper case letters, digits and _, starting with a letter, at most 64", e.Code))
	case reserved(e.Code):
		errs = append(errs, fmt.Sprintf("code %s is reserved for remedy's own events", e.Code))
	}
	if len(e.Source) > 64 {
		errs = append(errs, "source: at most 64 characters")
	}
	if len(e.Labels) > 32 {
		errs = append(errs, "labels: at most 32")
	}
	for k, v := range e.Labels {
		if !labelRE.MatchString(k) {
			errs = append(errs, fmt.Sprintf("label %q: a name of letters, digits and _", k))
		}
		if len(v) > 1024 {
			errs = append(errs, fmt.Sprintf("label %s: value longer than 1024", k))
		}
	}
	if len(e.Message) > 4096 {
		errs = append(errs, "message: at most 4096 characters")
	}
	if math.IsNaN(e.Value) || math.IsInf(e.Value, 0) {
		errs = append(errs, "value: not a finite number")
	}
	t := now
	if e.Time != nil {
		t = *e.Time
		if t.After(now.Add(5*time.Minute)) || t.Before(now.Add(-24*time.Hour)) {
			errs = append(errs, "time: more than 5 minutes ahead or 24 hours behind this machine's clock")
		}
	}
	src := e.Source
	if src == "" {
		src = "api"
	}
	return engine.Event{Time: t, Code: e.Code, Source: src, Labels: e.Labels, Message: e.Message, Value: e.Value}, errs
}

// ingestEvents takes one event or a list of up to 1000; all are checked before any is
// accepted, and all are committed to disk before the answer (see accept).
func (s *Server) ingestEvents(w http.ResponseWriter, r *http.Request) {
	var raw jsonRaw
	if !decode(w, r, &raw) {
		return
	}
	var list []EventIn
	if err := raw.unmarshalOneOrMany(&list); err != nil {
		writeError(w, 400, "bad_json", err.Error())
		return
	}
	if len(list) == 0 || len(list) > 1000 {
		writeError(w, 400, "bad_request", "post 1 to 1000 events")
		return
	}
	now := time.Now()
	evs := make([]engine.Event, 0, len(list))
	var errs []string
	for i, e := range list {
		ev, es := e.validate(now)
		for _, msg := range es {
			errs = append(errs, fmt.Sprintf("event %d: %s", i, msg))
		}
		evs = append(evs, ev)
	}
	if len(errs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid", strings.Join(errs, "; "))
		return
	}
	ins := make([]engine.Input, len(evs))
	for i, ev := range evs {
		ins[i] = ev
	}
	s.accept(w, r, ins, len(evs))
}

// SampleIn is a set of metric values posted by another program.
type SampleIn struct {
	Time   *time.Time         `json:"time"`
	Values map[string]float64 `json:"values"`
}

func (s *Server) ingestSample(w http.ResponseWriter, r *http.Request) {
	var in SampleIn
	if !decode(w, r, &in) {
		return
	}
	var errs []string
	if len(in.Values) == 0 || len(in.Values) > 200 {
		errs = append(errs, "values: 1 to 200 metrics")
	}
	for k, v := range in.Values {
		if !metricRE.MatchString(k) {
			errs = append(errs, fmt.Sprintf("metric %q: lower case letters, digits and _", k))
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Sprintf("metric %s: not a finite number", k))
		}
	}
	now := time.Now()
	t := now
	if in.Time != nil {
		t = *in.Time
		if t.After(now.Add(5*time.Minute)) || t.Before(now.Add(-24*time.Hour)) {
			errs = append(errs, "time: more than 5 minutes ahead or 24 hours behind this machine's clock")
		}
	}
	if len(errs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid", strings.Join(errs, "; "))
		return
	}
	s.accept(w, r, []engine.Input{engine.Sample{Time: t, Values: in.Values}}, len(in.Values))
}

func (s *Server) tryPolicy(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Event  *EventIn  `json:"event"`
		Sample *SampleIn `json:"sample"`
	}
	if !decode(w, r, &body) {
		return
	}
	var in engine.Input
	switch {
	case body.Event != nil && body.Sample == nil:
		ev, errs := body.Event.validate(time.Now())
		if len(errs) > 0 && !(len(errs) == 1 && reserved(body.Event.Code)) {
			writeError(w, http.StatusUnprocessableEntity, "invalid", strings.Join(errs, "; "))
			return
		}
		in = ev
	case body.Sample != nil && body.Event == nil:
		in = engine.Sample{Time: time.Now(), Values: body.Sample.Values}
	default:
		writeError(w, 400, "bad_request", `give {"event": {...}} or {"sample": {"values": {...}}}`)
		return
	}
	res, err := s.opts.Backend.TryPolicy(r.PathValue("name"), in)
	if err != nil {
		writeError(w, 404, "not_found", err.Error())
		return
	}
	out := map[string]any{"matched": res.Matched, "result": res.Result}
	var vals []string
	for _, v := range res.Values {
		vals = append(vals, v.String())
	}
	out["values"] = nonNil(vals)
	var ds []string
	for _, d := range res.Decisions {
		ds = append(ds, d.String())
	}
	out["decisions"] = nonNil(ds)
	if res.Err != nil {
		out["error"] = res.Err.Error()
	}
	writeJSON(w, 200, out)
}

func (s *Server) ack(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, 400, "bad_id", "the alert id must be a number")
		return
	}
	var body struct {
		By string `json:"by"`
	}
	if !decode(w, r, &body) {
		return
	}
	if body.By == "" || len(body.By) > 100 {
		writeError(w, http.StatusUnprocessableEntity, "invalid", "by: who acknowledges (1 to 100 characters)")
		return
	}
	if err := s.opts.Backend.Pipeline().Ack(r.Context(), id, body.By); err != nil {
		writeError(w, 404, "not_found", err.Error())
		return
	}
	writeJSON(w, 200, map[string]any{"acked": id})
}

func (s *Server) createSilence(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Matchers map[string]string `json:"matchers"`
		Duration string            `json:"duration"`
		Author   string            `json:"author"`
		Reason   string            `json:"reason"`
	}
	if !decode(w, r, &body) {
		return
	}
	// The same durations as policy files (30m, 2h, 1d).
	d, err := conditions.ParseDuration(body.Duration)
	var errs []string
	if err != nil || d <= 0 || d > 30*24*time.Hour {
		errs = append(errs, "duration: like 30m, 2h or 1d, at most 30d")
	}
	if len(body.Matchers) == 0 {
		errs = append(errs, "matchers: at least one, e.g. {\"policy\": \"wa-*\"}")
	}
	if body.Author == "" {
		errs = append(errs, "author: who silences")
	}
	if len(errs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid", strings.Join(errs, "; "))
		return
	}
	now := time.Now()
	sil, err := s.opts.Backend.Pipeline().Silence(r.Context(), alert.Silence{Matchers: body.Matchers, Starts: now, Ends: now.Add(d),
		Author: body.Author, Reason: body.Reason})
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, sil)
}

var _ context.Context
