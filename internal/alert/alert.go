// Package alert turns the engine's alert decisions into notifications: silences, acks
// and inhibition decide what is held back; a durable outbox in remedy.db delivers the
// rest to each channel with retries, so an alert is either delivered or visibly waiting;
// and a daily report sums up the last 24 hours. Rate limits and repeats are the engine's.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

// Alert is one notification.
type Alert struct {
	ID          int64             `json:"id"`
	Fingerprint string            `json:"fingerprint"`
	Time        time.Time         `json:"time"`
	Policy      string            `json:"policy"`
	Instance    string            `json:"instance,omitempty"`
	Severity    policies.Severity `json:"severity"`
	State       string            `json:"state"` // firing, escalated, resolved
	Summary     string            `json:"summary"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Suppressed  int               `json:"suppressed,omitempty"`
	Repeat      bool              `json:"repeat,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	// Instant marks an instant policy's alert: an occurrence that is never resolved.
	Instant bool `json:"instant,omitempty"`
	// Ends are the severities (label sets) this delivery ends on its channel: on a
	// resolution every one posted for the incident, on an escalation the ones posted
	// before it. Alertmanager keys alerts by labels, so each needs its own end.
	Ends []policies.Severity `json:"ends,omitempty"`
	// Held is why the engine held the alert back (an inhibition); such an alert is
	// stored and never sent, and the engine notifies again when the hold ends.
	Held     string   `json:"held,omitempty"`
	Channels []string `json:"-"`
}

// Fingerprint identifies an incident: the policy and its instance labels.
func Fingerprint(policy string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	h.Write([]byte(policy))
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%s=%s", k, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// FromDecision makes the alert of an engine alert decision.
func FromDecision(d engine.Decision) Alert {
	a := Alert{Time: d.Time, Policy: d.Policy, Instance: d.Instance, Severity: d.Severity, State: string(d.State),
		Labels: d.Labels, Reason: d.Reason.Text, Fingerprint: Fingerprint(d.Policy, d.Labels)}
	if d.Alert != nil {
		a.Summary, a.Annotations, a.Suppressed, a.Repeat = d.Alert.Summary, d.Alert.Annotations, d.Alert.Suppressed, d.Alert.Repeat
		a.Channels, a.Instant, a.Held = d.Alert.Channels, d.Alert.Instant, d.Alert.Held
	}
	return a
}

// Text is the alert as a short message for a person.
func (a Alert) Text() string {
	var b strings.Builder
	tag := strings.ToUpper(string(a.Severity))
	switch a.State {
	case "resolved":
		tag = "RESOLVED"
	case "escalated":
		tag += ", ESCALATED"
	}
	fmt.Fprintf(&b, "[%s] %s", tag, a.Policy)
	if a.Instance != "" {
		fmt.Fprintf(&b, " (%s)", a.Instance)
	}
	fmt.Fprintf(&b, ": %s", a.Summary)
	if a.Repeat {
		b.WriteString(" — still firing")
	}
	if a.Suppressed > 0 {
		fmt.Fprintf(&b, " (+%d suppressed)", a.Suppressed)
	}
	if a.Reason != "" && a.Reason != a.Summary {
		fmt.Fprintf(&b, "\n%s", a.Reason)
	}
	if rb := a.Annotations["runbook"]; rb != "" && a.State != "resolved" {
		fmt.Fprintf(&b, "\nrunbook: %s", rb)
	}
	fmt.Fprintf(&b, "\n%s", a.Time.UTC().Format("2006-01-02 15:04:05 UTC"))
	return b.String()
}

// Silence holds back alerts whose labels match all its matchers while it is active.
// Matcher keys are policy, severity, instance or a label name; a value ending in * is a
// prefix.
type Silence struct {
	ID       int64             `json:"id"`
	Matchers map[string]string `json:"matchers"`
	Starts   time.Time         `json:"starts"`
	Ends     time.Time         `json:"ends"`
	Author   string            `json:"author"`
	Reason   string            `json:"reason"`
}

// Matches reports whether the silence covers the alert at time t.
func (s Silence) Matches(a Alert, t time.Time) bool {
	if t.Before(s.Starts) || !t.Before(s.Ends) {
		return false
	}
	for k, want := range s.Matchers {
		var got string
		switch k {
		case "policy":
			got = a.Policy
		case "severity":
			got = string(a.Severity)
		case "instance":
			got = a.Instance
		default:
			got = a.Labels[k]
		}
		if !globMatch(want, got) {
			return false
		}
	}
	return true
}

func globMatch(pattern, s string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(s, p)
	}
	return pattern == s
}
