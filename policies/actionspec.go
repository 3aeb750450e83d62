package policies

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ActionSpec describes a built-in action and the parameters a policy may give it.
// Policies are validated against specs at load time, so a typo fails `remedy check`, not
// a 3 a.m. recovery. The implementations live in package actions.
type ActionSpec struct {
	Name        string
	Description string
	// Target names the parameter that identifies what the action works on; the executor
	// never runs two recoveries on the same target at once.
	Target string
	// TargetFromLabel: when the policy does not give the target parameter, the
	// decision's label of the same name does (RECONNECT_WA's session).
	TargetFromLabel bool
	Params          []ParamSpec
}

// ParamSpec describes one parameter.
type ParamSpec struct {
	Name        string
	Required    bool
	Description string
	// Check validates a literal value (values that contain templates are checked only
	// for template syntax, since they are known only when the action runs).
	Check func(string) error
	// Literal forbids templates: the value must be written in the policy file, so event
	// data can never become part of it (EXEC's command).
	Literal bool
}

// Param returns the parameter spec with the given name.
func (s ActionSpec) Param(name string) (ParamSpec, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p, true
		}
	}
	return ParamSpec{}, false
}

// ParamNames lists the parameter names, for error messages.
func (s ActionSpec) ParamNames() string {
	names := make([]string, len(s.Params))
	for i, p := range s.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		for _, ok := range vals {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
	}
}

func isDuration(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("not a duration: %q", v)
	}
	if d <= 0 {
		return fmt.Errorf("must be positive")
	}
	return nil
}

func isBool(v string) error {
	if _, err := strconv.ParseBool(v); err != nil {
		return fmt.Errorf("not a boolean: %q", v)
	}
	return nil
}

func isHTTPURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("not an http(s) URL: %q", v)
	}
	return nil
}

func isPositiveInt(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return fmt.Errorf("not a positive integer: %q", v)
	}
	return nil
}

var builtinActions = []ActionSpec{
	{Name: "RECONNECT_WA", Description: "Close and reopen a session's WhatsApp connection (one attempt).", Target: "session", TargetFromLabel: true,
		Params: []ParamSpec{
			{Name: "session", Description: "the session (number) to reconnect; default: the decision's session label, else default"},
			{Name: "wait", Description: "how long to wait for Connected before the attempt fails", Check: isDuration},
		}},
	{Name: "RESET_DB", Description: "Close and reopen a database's connection pool.", Target: "db",
		Params: []ParamSpec{{Name: "db", Description: "database name: remedy, metrics or a configured one"}}},
	{Name: "CLEAR_QUEUE", Description: "Move a queue's stuck items to the dead-letter table and restart its workers.", Target: "queue",
		Params: []ParamSpec{
			{Name: "queue", Required: true, Description: "queue name"},
			{Name: "older_than", Description: "only items queued for longer than this (from enqueueing)", Check: isDuration},
		}},
	{Name: "RESTART_SERVICE", Description: "Stop a supervised service gracefully (SIGTERM, then SIGKILL) and start it again.", Target: "service",
		Params: []ParamSpec{
			{Name: "service", Required: true, Description: "service name from the configuration"},
			{Name: "grace", Description: "time between SIGTERM and SIGKILL", Check: isDuration},
		}},
	{Name: "RESET_STATE", Description: "Reset conversation/session state that has not progressed within its TTL; the before-image goes to the audit.", Target: "scope",
		Params: []ParamSpec{
			{Name: "scope", Description: "which state: sessions, conversations or all", Check: oneOf("sessions", "conversations", "all")},
			{Name: "ttl", Description: "state untouched for this long is reset", Check: isDuration},
		}},
	{Name: "CLEAN_DATA", Description: "Quarantine corrupted data and rebuild, free space (prune old metric samples, then history sooner than its retention), or delete the uploads no message needs.", Target: "target",
		Params: []ParamSpec{{Name: "target", Description: "what to clean: db (corruption), metrics (space: samples, then remedy.db's history down to a floor) or media (uploads no queued message needs)", Check: oneOf("db", "metrics", "media")}}},
	{Name: "NOTIFY", Description: "Raise an alert with a custom text.", Target: "",
		Params: []ParamSpec{
			{Name: "text", Required: true, Description: "the message; templates allowed"},
			{Name: "severity", Description: "info, warning, error or critical", Check: oneOf("info", "warning", "error", "critical")},
		}},
	{Name: "WEBHOOK", Description: "POST a JSON description of the incident to a URL, signed with HMAC-SHA256.", Target: "url",
		Params: []ParamSpec{
			{Name: "url", Required: true, Description: "http or https URL", Check: isHTTPURL},
			{Name: "secret_env", Description: "environment variable holding the signing secret (never the secret itself)"},
		}},
	{Name: "EXEC", Description: "Run a command written in the policy file, in its own process group, with a timeout.", Target: "command",
		Params: []ParamSpec{
			{Name: "command", Required: true, Literal: true, Description: "program and arguments (quotes group words), or a shell line if shell is true; no templates"},
			{Name: "shell", Description: "run through /bin/sh -c", Check: isBool},
			{Name: "max_output", Description: "bytes of output kept in the audit", Check: isPositiveInt},
		}},
}

// ActionSpecs returns the catalogue of built-in actions, sorted by name.
func ActionSpecs() []ActionSpec {
	out := append([]ActionSpec(nil), builtinActions...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupAction finds a built-in action's spec.
func LookupAction(name string) (ActionSpec, bool) {
	for _, s := range builtinActions {
		if s.Name == name {
			return s, true
		}
	}
	return ActionSpec{}, false
}
