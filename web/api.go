package web

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/remedy-run/remedy/conditions"
	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

func (s *Server) routes() {
	api := func(pattern string, h http.HandlerFunc) {
		websocket := pattern == "GET /api/v1/stream"
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if s.authorize(w, r, websocket) {
				h(w, r)
			}
		})
	}
	b := s.opts.Backend
	api("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, b.Overview(r.Context())) })
	api("GET /api/v1/policies", func(w http.ResponseWriter, r *http.Request) {
		ps, err := b.Policies(r.Context())
		respond(s, w, r, ps, err)
	})
	api("POST /api/v1/policies/{name}/try", s.tryPolicy)
	s.pairRoutes(api)
	s.sessionRoutes(api)
	s.mediaRoutes(api)
	s.drillRoutes(api)
	s.messageRoutes(api)
	api("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		rows, err := b.Alerts(r.Context(), limit(r, 100))
		respond(s, w, r, rows, err)
	})
	api("POST /api/v1/alerts/{id}/ack", s.ack)
	api("DELETE /api/v1/alerts/{id}/ack", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeError(w, 400, "bad_id", "the alert id must be a number")
			return
		}
		// The incident's latest notification, if the ack held it, goes out now.
		if err := b.Unack(r.Context(), id); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, 200, map[string]any{"unacknowledged": id})
	})
	api("GET /api/v1/silences", func(w http.ResponseWriter, r *http.Request) {
		sl, err := b.Silences(r.Context())
		respond(s, w, r, sl, err)
	})
	api("POST /api/v1/silences", s.createSilence)
	api("DELETE /api/v1/silences/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeError(w, 400, "bad_id", "the silence id must be a number")
			return
		}
		if err := b.Expire(r.Context(), id); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, 200, map[string]any{"expired": id})
	})
	api("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		evs, err := b.Events(r.Context(), limit(r, 200))
		respond(s, w, r, evs, err)
	})
	api("POST /api/v1/events", s.limitIngest(s.ingestEvents))
	api("POST /api/v1/samples", s.limitIngest(s.ingestSample))
	api("GET /api/v1/decisions", func(w http.ResponseWriter, r *http.Request) {
		rows, err := b.Decisions(r.Context(), r.URL.Query().Get("policy"), limit(r, 50))
		respond(s, w, r, rows, err)
	})
	api("GET /api/v1/actions", func(w http.ResponseWriter, r *http.Request) {
		rows, err := b.Actions(r.Context(), limit(r, 100))
		respond(s, w, r, foldNotHeld(rows), err)
	})
	api("GET /api/v1/deadletters", func(w http.ResponseWriter, r *http.Request) {
		dls, err := b.DeadLetters(r.Context(), r.URL.Query().Get("queue"), r.URL.Query().Get("all") == "")
		respond(s, w, r, dls, err)
	})
	api("GET /api/v1/outbox", func(w http.ResponseWriter, r *http.Request) {
		p, err := b.Outbox(r.Context())
		respond(s, w, r, p, err)
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
		rep, err := b.Report(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, 200, rep)
	})
	api("GET /api/v1/history", func(w http.ResponseWriter, r *http.Request) {
		mins := limit(r, 30)
		if v, err := strconv.Atoi(r.URL.Query().Get("minutes")); err == nil && v > 0 && v <= 48*60 {
			mins = v
		}
		h, err := b.History(r.Context(), time.Now().Add(-time.Duration(mins)*time.Minute))
		respond(s, w, r, h, err)
	})
	api("GET /api/v1/stream", s.stream)
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// respond answers a list (never null) or the error.
func respond[T any](s *Server, w http.ResponseWriter, r *http.Request, v []T, err error) {
	if err != nil {
		s.fail(w, r, err)
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

// provenance gives a posted event its source, the poster's name ("api" when it gives
// none), and refuses what only remedy may say: a source that is one of remedy's adapters,
// and a code one of them owns (policies.CodeOwner) unless the configuration allows that
// code; an allowed one keeps the poster's source, so policies can tell it from remedy's.
func (s *Server) provenance(e EventIn) (source string, refused []string) {
	source = e.Source
	if source == "" {
		source = "api"
	}
	if policies.InternalSource(source) {
		refused = append(refused, fmt.Sprintf("source %q is one of remedy's own; name your program (e.g. \"node-bot\")", e.Source))
	}
	switch owner := policies.CodeOwner(e.Code, e.Labels); {
	case owner == "" || slices.Contains(s.opts.AllowCodes, e.Code):
	case owner == "executor" || owner == "daemon" || owner == "drill":
		refused = append(refused, fmt.Sprintf("code %s is remedy's own report of its work (%s) and never comes from the API", e.Code, owner))
	default:
		refused = append(refused, fmt.Sprintf("code %s belongs to remedy's %s adapter and is not taken from the API "+
			"(a separate program reporting its own %s: list the code under ingest.allow_codes; it then carries your source)",
			e.Code, owner, owner))
	}
	return source, refused
}

func (e EventIn) validate(now time.Time) (engine.Event, []string) {
	var errs []string
	if !codeRE.MatchString(e.Code) {
		errs = append(errs, fmt.Sprintf("code %q: upper case letters, digits and _, starting with a letter, at most 64", e.Code))
	}
	// Invisible characters too: "whatsapp\u200b" reads as remedy's own source on the
	// dashboard while slipping past the provenance check.
	if len(e.Source) > 64 || strings.IndexFunc(e.Source, func(r rune) bool { return !unicode.IsGraphic(r) }) >= 0 {
		errs = append(errs, "source: at most 64 characters, no control or invisible characters")
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
	return engine.Event{Time: t, Code: e.Code, Source: e.Source, Labels: e.Labels, Message: e.Message, Value: e.Value}, errs
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
	var errs, refused []string
	for i, e := range list {
		ev, es := e.validate(now)
		for _, msg := range es {
			errs = append(errs, fmt.Sprintf("event %d: %s", i, msg))
		}
		var rs []string
		ev.Source, rs = s.provenance(e)
		for _, msg := range rs {
			refused = append(refused, fmt.Sprintf("event %d: %s", i, msg))
		}
		evs = append(evs, ev)
	}
	if len(refused) > 0 {
		writeError(w, http.StatusForbidden, "reserved", strings.Join(refused, "; "))
		return
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
	var refused []string
	for k := range in.Values {
		if policies.OwnMetric(k) && !slices.Contains(s.opts.AllowMetrics, k) {
			refused = append(refused, k)
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		writeError(w, http.StatusForbidden, "reserved", fmt.Sprintf("metric(s) %s are measured by remedy itself and not taken from the API "+
			"(name your own metrics, e.g. bot_rss_mb; or list them under ingest.allow_metrics)", strings.Join(refused, ", ")))
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
		if len(errs) > 0 {
			writeError(w, http.StatusUnprocessableEntity, "invalid", strings.Join(errs, "; "))
			return
		}
		// A dry run changes nothing, so any code may be tried; without a source it is
		// tried as coming from its owner, as the running policies would see it.
		ev.Source = cmp.Or(policies.SourceOf(ev.Code, ev.Source, ev.Labels), "api")
		in = ev
	case body.Sample != nil && body.Event == nil:
		in = engine.Sample{Time: time.Now(), Values: body.Sample.Values}
	default:
		writeError(w, 400, "bad_request", `give {"event": {...}} or {"sample": {"values": {...}}}`)
		return
	}
	res, err := s.opts.Backend.TryPolicy(r.PathValue("name"), in)
	if err != nil {
		s.fail(w, r, err)
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
	if err := s.opts.Backend.Ack(r.Context(), id, body.By); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, map[string]any{"acked": id})
}

// matcherErrors refuses matchers that can match no alert, as Alertmanager refuses a
// bad label name: a silence an operator believes in that holds nothing is worse than
// an error. Values are non-empty; a severity is one of the four (or a prefix ending
// in *). Unknown keys are refused by the pipeline (alert.ErrBadSilence).
func matcherErrors(m map[string]string) []string {
	var errs []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		switch {
		case v == "":
			errs = append(errs, fmt.Sprintf("matchers: %s: empty; a value, or a prefix ending in *", k))
		case k == "severity" && !strings.HasSuffix(v, "*") && policies.Severity(v).Rank() == 0:
			errs = append(errs, fmt.Sprintf("matchers: severity %q: one of info, warning, error, critical", v))
		}
	}
	return errs
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
	errs = append(errs, matcherErrors(body.Matchers)...)
	if body.Author == "" {
		errs = append(errs, "author: who silences")
	}
	if len(errs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid", strings.Join(errs, "; "))
		return
	}
	now := time.Now()
	sil, err := s.opts.Backend.Silence(r.Context(), Silence{Matchers: body.Matchers, Starts: now, Ends: now.Add(d),
		Author: body.Author, Reason: body.Reason})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, sil)
}
