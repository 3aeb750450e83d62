package policytest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

// record is one JSON line: an event (with code) or a sample (with values).
type record struct {
	Time    time.Time          `json:"time"`
	Code    string             `json:"code"`
	Source  string             `json:"source"`
	Labels  map[string]string  `json:"labels"`
	Message string             `json:"message"`
	Value   float64            `json:"value"`
	Values  map[string]float64 `json:"values"`
}

// ReadJSONLines reads recorded inputs, one JSON object a line: an event
// {"time":…, "code":…, "labels":{…}} or a sample {"time":…, "values":{…}}. Blank lines
// and lines starting with # are skipped. Errors name the line.
func ReadJSONLines(r io.Reader, name string) ([]engine.Input, error) {
	var out []engine.Input
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	var errs []string
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var rec record
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			errs = append(errs, fmt.Sprintf("%s:%d: %v", name, line, err))
			continue
		}
		switch {
		case rec.Time.IsZero():
			errs = append(errs, fmt.Sprintf("%s:%d: missing time", name, line))
		case rec.Code != "" && rec.Values != nil:
			errs = append(errs, fmt.Sprintf("%s:%d: a line is an event (code) or a sample (values), not both", name, line))
		case rec.Code != "":
			out = append(out, engine.Event{Time: rec.Time, Code: rec.Code, Source: policies.SourceOf(rec.Code, rec.Source, rec.Labels), Labels: rec.Labels, Message: rec.Message, Value: rec.Value})
		case rec.Values != nil:
			out = append(out, engine.Sample{Time: rec.Time, Values: rec.Values})
		default:
			errs = append(errs, fmt.Sprintf("%s:%d: neither code nor values", name, line))
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Sprintf("%s: %v", name, err))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At().Before(out[j].At()) })
	return out, nil
}

// Since keeps the inputs within d of the newest one.
func Since(in []engine.Input, d time.Duration) []engine.Input {
	if len(in) == 0 || d <= 0 {
		return in
	}
	cutoff := in[len(in)-1].At().Add(-d)
	i := sort.Search(len(in), func(i int) bool { return !in[i].At().Before(cutoff) })
	return in[i:]
}

// PolicySummary counts what one policy would have done, for one session (WhatsApp
// number) when its decisions carry the label `session`.
type PolicySummary struct {
	Policy  string
	Session string
	Fired   int
	Actions map[string]int
	Skipped int
	Alerts  int
	Escal   int
}

// Summarize counts a timeline per policy and session, in policy-name then session
// order: one number's incidents are not added to another's.
func Summarize(timeline []engine.Decision) []PolicySummary {
	type key struct{ policy, session string }
	by := map[key]*PolicySummary{}
	get := func(k key) *PolicySummary {
		s := by[k]
		if s == nil {
			s = &PolicySummary{Policy: k.policy, Session: k.session, Actions: map[string]int{}}
			by[k] = s
		}
		return s
	}
	for _, d := range timeline {
		s := get(key{d.Policy, d.Labels["session"]})
		switch d.Kind {
		case engine.KindState:
			switch d.State {
			case engine.Firing:
				s.Fired++
			case engine.Escalated, engine.Exhausted:
				s.Escal++
			}
		case engine.KindAction:
			if d.Action.Skipped != "" {
				s.Skipped++
			} else {
				s.Actions[d.Action.Do]++
			}
		case engine.KindAlert:
			if d.Alert == nil || d.Alert.Held == "" { // an inhibited alert is not sent
				s.Alerts++
			}
		}
	}
	out := make([]PolicySummary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Policy != out[j].Policy {
			return out[i].Policy < out[j].Policy
		}
		return out[i].Session < out[j].Session
	})
	return out
}

// String is the summary in words: "would fire 12, would run RESTART_SERVICE×3, …",
// after the policy and, if any, the session: "wa-reconnect{session=sales}: …".
func (s PolicySummary) String() string {
	parts := []string{fmt.Sprintf("would fire %d", s.Fired)}
	names := make([]string, 0, len(s.Actions))
	for n := range s.Actions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("would run %s×%d", n, s.Actions[n]))
	}
	if s.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d attempts not run (dry run or breaker)", s.Skipped))
	}
	if s.Escal > 0 {
		parts = append(parts, fmt.Sprintf("escalate %d", s.Escal))
	}
	parts = append(parts, fmt.Sprintf("alert %d", s.Alerts))
	name := s.Policy
	if s.Session != "" {
		name += "{session=" + s.Session + "}"
	}
	return name + ": " + strings.Join(parts, ", ")
}
