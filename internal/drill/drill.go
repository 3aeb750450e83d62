// Package drill runs fire drills against a running remedy through its API: it asks the
// daemon to inject a real, reversible fault (POST /api/v1/drills), then reads the event
// log, the decisions, the action audit and the alerts to report whether the policies
// detected the fault, recovered from it and alerted, and how long each took.
package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/web"
)

// Client talks to one daemon.
type Client struct {
	Base  string // http://127.0.0.1:8080
	Token string
	HTTP  *http.Client
	// Poll is how often Watch reads the daemon (default 250 ms).
	Poll time.Duration
}

// Start asks the daemon to inject the fault.
func (c *Client) Start(ctx context.Context, req web.DrillRequest) (web.DrillStarted, error) {
	var st web.DrillStarted
	body, _ := json.Marshal(req)
	err := c.call(ctx, http.MethodPost, "/api/v1/drills", body, &st)
	return st, err
}

func (c *Client) call(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	h := c.HTTP
	if h == nil {
		h = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := h.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s %s: %s (%s)", method, path, e.Error.Message, resp.Status)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.Unmarshal(data, out)
}

// Mark is one step of the outcome, timed from the injection.
type Mark struct {
	What  string        `json:"what"`
	After time.Duration `json:"after_ns"`
}

// Report is what a drill showed.
type Report struct {
	Scenario  string    `json:"scenario"`
	Detail    string    `json:"detail"`
	Started   time.Time `json:"started"`
	Detected  *Mark     `json:"detected,omitempty"`       // the first decision of an expected policy
	Actions   []Mark    `json:"actions,omitempty"`        // recovery attempts with their outcome
	Alerts    []Mark    `json:"alerts,omitempty"`         // alerts handed to the channels
	Recovered *Mark     `json:"recovered,omitempty"`      // the recovery event
	Other     []string  `json:"other_policies,omitempty"` // other policies that decided meanwhile
	// decided counts the attempts the expected policies decided; their outcomes reach
	// the audit separately from the events, so a report waits for them.
	decided int
}

// Passed is true when the fault was detected and recovered from.
func (r Report) Passed() bool { return r.Detected != nil && r.Recovered != nil }

// WatchOptions bound Watch.
type WatchOptions struct {
	Timeout time.Duration // overall (default 3 min)
	// AlertWait is how long to keep watching for an alert after recovery (default 75 s:
	// some policies notify only when the recovery has been stable for 60 s).
	AlertWait time.Duration
}

// Watch reads the daemon until the drill was detected, recovered and alerted (or
// AlertWait passed after recovery, or Timeout passed) and returns what it saw.
func (c *Client) Watch(ctx context.Context, st web.DrillStarted, o WatchOptions) (Report, error) {
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.AlertWait <= 0 {
		o.AlertWait = 75 * time.Second
	}
	poll := c.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	deadline := time.Now().Add(o.Timeout)
	var rep Report
	for {
		var err error
		if rep, err = c.Read(ctx, st); err != nil {
			return rep, err
		}
		now := time.Now()
		// Decisions reach the log in batches, after the audit row and the recovery event:
		// recovered alone is not the end of the story.
		complete := len(rep.Actions) >= rep.decided // every decided attempt has its outcome
		if rep.Recovered != nil && rep.Detected != nil && complete && (len(rep.Alerts) > 0 || now.After(st.Started.Add(rep.Recovered.After+o.AlertWait))) {
			return rep, nil
		}
		if now.After(deadline) {
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Read builds the report from what the daemon has recorded so far.
func (c *Client) Read(ctx context.Context, st web.DrillStarted) (Report, error) {
	rep := Report{Scenario: st.Scenario, Detail: st.Detail, Started: st.Started}
	since := st.Started.Truncate(time.Millisecond).UnixMilli() // the store keeps milliseconds
	after := func(ms int64) time.Duration { return time.Duration(ms-since) * time.Millisecond }

	var decisions []store.DecisionRow
	if err := c.call(ctx, http.MethodGet, "/api/v1/decisions?limit=1000", nil, &decisions); err != nil {
		return rep, err
	}
	slices.Reverse(decisions) // oldest first
	for _, d := range decisions {
		if d.TS < since {
			continue
		}
		switch {
		case slices.Contains(st.Policies, d.Policy):
			if d.Kind == string(engine.KindAction) {
				rep.decided++
			}
			if rep.Detected == nil {
				rep.Detected = &Mark{What: d.Policy + " " + d.Kind + " " + d.State, After: after(d.TS)}
			}
		case !slices.Contains(rep.Other, d.Policy):
			rep.Other = append(rep.Other, d.Policy)
		}
	}
	var audit []store.AuditRow
	if err := c.call(ctx, http.MethodGet, "/api/v1/actions?limit=1000", nil, &audit); err != nil {
		return rep, err
	}
	slices.Reverse(audit)
	for _, a := range audit {
		if a.TS >= since && slices.Contains(st.Policies, a.Policy) {
			rep.Actions = append(rep.Actions, Mark{What: fmt.Sprintf("%s %s (attempt %d)", a.Action, a.Outcome, a.Attempt), After: after(a.TS)})
		}
	}
	var alerts []store.AlertRow
	if err := c.call(ctx, http.MethodGet, "/api/v1/alerts?limit=1000", nil, &alerts); err != nil {
		return rep, err
	}
	slices.Reverse(alerts)
	for _, a := range alerts {
		if a.TS >= since && slices.Contains(st.Policies, a.Policy) {
			rep.Alerts = append(rep.Alerts, Mark{What: fmt.Sprintf("%s %s %s", strings.ToUpper(a.Severity), a.Policy, a.State), After: after(a.TS)})
		}
	}
	var events []engine.Event
	if err := c.call(ctx, http.MethodGet, "/api/v1/events?limit=1000", nil, &events); err != nil {
		return rep, err
	}
	slices.Reverse(events)
	for _, e := range events {
		if e.Time.UnixMilli() < since || e.Code != st.Recovered || !matches(e.Labels, st.RecoveredLabels) {
			continue
		}
		rep.Recovered = &Mark{What: e.Code, After: after(e.Time.UnixMilli())}
		break
	}
	return rep, nil
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Write prints the report for a terminal.
func (r Report) Write(w io.Writer) {
	fmt.Fprintf(w, "drill %s: %s\n", r.Scenario, r.Detail)
	line := func(label string, m *Mark, missing string) {
		if m == nil {
			fmt.Fprintf(w, "  %-10s %s\n", label, missing)
			return
		}
		fmt.Fprintf(w, "  %-10s +%-9s %s\n", label, fmtDur(m.After), m.What)
	}
	line("detected", r.Detected, "NO — no expected policy decided anything")
	if len(r.Actions) == 0 {
		fmt.Fprintf(w, "  %-10s none recorded\n", "actions")
	}
	for i := range r.Actions {
		line("action", &r.Actions[i], "")
	}
	if len(r.Alerts) == 0 {
		fmt.Fprintf(w, "  %-10s none (the policy may notify only on escalation or on a stable resolution)\n", "alerted")
	}
	for i := range r.Alerts {
		line("alerted", &r.Alerts[i], "")
	}
	line("recovered", r.Recovered, "NO — the recovery event was not seen")
	if len(r.Other) > 0 {
		fmt.Fprintf(w, "  %-10s %s\n", "also", strings.Join(r.Other, ", "))
	}
	verdict := "PASSED"
	if !r.Passed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "  %s\n", verdict)
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
