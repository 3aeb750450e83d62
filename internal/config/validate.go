package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/robfig/cron/v3"

	"github.com/remedy-run/remedy/policies"
)

// validateValues checks what `remedy run` would otherwise find out too late: every value
// the daemon hands to a ticker, a rate limiter, the report's cron or a channel. bad
// reports a problem at a dotted path. getenv (nil: not checked) resolves secret_env.
func (c *Config) validateValues(bad func(path, format string, args ...any), getenv func(string) string) {
	c.validateRetention(bad)
	if c.DataDir == "" {
		bad("data_dir", "data_dir must not be empty")
	}
	if !c.DefaultPolicies && c.Policies == "" {
		// Nothing would watch anything: no reconnect, no database or disk recovery.
		bad("default_policies", "default_policies: false and no policies: remedy would run no policy at all; name a policy file or directory, or keep the defaults")
	}
	if c.HealthInterval < time.Second {
		bad("health_interval", "health_interval must be at least 1s, got %v", c.HealthInterval)
	}
	if c.ReportSchedule != "" {
		// The parser the daemon's scheduler uses (robfig/cron's standard five fields, or
		// a descriptor such as @daily).
		if _, err := cron.ParseStandard(c.ReportSchedule); err != nil {
			bad("report_schedule", "report_schedule: %q is not a cron schedule (minute hour day month weekday, e.g. \"0 9 * * *\"): %v", c.ReportSchedule, err)
		}
	}
	if c.WhatsApp.SendPerMinute < 1 {
		bad("whatsapp.send_per_minute", "whatsapp.send_per_minute must be at least 1, got %d", c.WhatsApp.SendPerMinute)
	}
	if p := c.WhatsApp.CommandPrefix; p != "" && (strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 ||
		!utf8.ValidString(p) || len(p) > 16) {
		bad("whatsapp.command_prefix", "whatsapp.command_prefix %q: a word without spaces, at most 16 bytes (\"!\", \"/\", \"!remedy-\")", p)
	}
	c.WhatsApp.Send.check(bad)
	for i, a := range c.WhatsApp.AllowedActions {
		if _, ok := policies.LookupAction(a); !ok {
			bad(fmt.Sprintf("whatsapp.allowed_actions[%d]", i), "whatsapp.allowed_actions: unknown action %q (known: %s)", a, actionNames())
		}
	}
	channels := policies.Channels()
	for _, name := range sortedKeys(c.Alerts.PerMinute) {
		p := "alerts.per_minute." + name
		if !slices.Contains(channels, name) {
			bad(p, "alerts.per_minute: unknown channel %q (known: %s)", name, strings.Join(channels, ", "))
		} else if n := c.Alerts.PerMinute[name]; n < 1 {
			bad(p, "%s must be at least 1, got %d", p, n)
		}
	}
	if getenv != nil {
		for _, ep := range []struct {
			path string
			e    *Endpoint
		}{{"alerts.webhook", c.Alerts.Webhook}, {"alerts.alertmanager", c.Alerts.Alertmanager}, {"whatsapp.handler", c.WhatsApp.Handler.Endpoint()}} {
			if ep.e != nil && ep.e.SecretEnv != "" && getenv(ep.e.SecretEnv) == "" {
				bad(ep.path+".secret_env", "%s.secret_env: %s is not set in the environment (requests would go out unsigned)", ep.path, ep.e.SecretEnv)
			}
		}
	}
	for i, s := range c.Services {
		p := fmt.Sprintf("services[%d]", i)
		if len(s.Command) > 0 && s.Command[0] == "" {
			bad(p+".command", "%s.command: the program name is empty", p)
		}
		for _, k := range sortedKeys(s.Env) {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				bad(p+".env", "%s.env: %q is not a variable name", p, k)
			}
		}
	}
}

// decodeFailed says whether path, or a value that contains it, failed to decode.
func decodeFailed(failed map[string]bool, path string) bool {
	for p := path; p != ""; {
		if failed[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}

func actionNames() string {
	var names []string
	for _, s := range policies.ActionSpecs() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// sortErrors orders "file:line:col: message" errors by position, so the same file gives
// the same report.
func sortErrors(errs Errors) {
	pos := func(e string) (int, int) {
		var line, col int
		if parts := strings.SplitN(e, ":", 4); len(parts) == 4 {
			fmt.Sscan(parts[1], &line)
			fmt.Sscan(parts[2], &col)
		}
		return line, col
	}
	slices.SortStableFunc(errs, func(a, b string) int {
		la, ca := pos(a)
		lb, cb := pos(b)
		if la != lb {
			return la - lb
		}
		return ca - cb
	})
}

// LoadPolicies loads the policy set this configuration names, as `remedy run`, a reload,
// `remedy config check` and `remedy replay --config` do: the embedded defaults extended
// by Policies, or Policies alone with default_policies: false (see policies.LoadMerged).
func (c *Config) LoadPolicies() (*policies.Set, error) {
	return policies.LoadMerged(!c.DefaultPolicies, c.Policies)
}
