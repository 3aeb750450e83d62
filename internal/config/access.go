package config

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/remedy-run/remedy/policies"
)

// MinTokenLength is the shortest token accepted on an address other machines reach:
// 16 random characters are far beyond guessing over HTTP (OWASP's session-ID guidance
// asks for 64 bits of entropy; 16 base64 characters carry 96).
const MinTokenLength = 16

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateAccess checks the tokens, allowed_hosts, ingest.allow_codes, allow_metrics and
// exec_pass_env. exposed is a listen address other machines reach.
func (c *Config) validateAccess(at func(string) string, exposed bool) Errors {
	var errs Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, at(path)+": "+fmt.Sprintf(format, args...))
	}
	for _, t := range []struct{ key, value string }{{"token", c.Token}, {"read_token", c.ReadToken}} {
		switch {
		case t.value == "":
		case strings.IndexFunc(t.value, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			bad(t.key, "%s: contains spaces or control characters (a stray newline from a file?); use letters, digits and punctuation", t.key)
		case exposed && len(t.value) < MinTokenLength:
			bad(t.key, "%s: %d characters is too short for an address other machines reach (listen %s); use at least %d, e.g. `openssl rand -base64 24`",
				t.key, len(t.value), c.Listen, MinTokenLength)
		}
	}
	if c.ReadToken != "" && c.Token == "" {
		bad("read_token", "read_token: set token too (the read token only reads; someone must be able to change things)")
	}
	if c.ReadToken != "" && c.ReadToken == c.Token {
		bad("read_token", "read_token: must differ from token")
	}
	for i, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/: \t") && !strings.HasPrefix(h, "[") {
			bad(fmt.Sprintf("allowed_hosts[%d]", i), "allowed_hosts: %q is not a host name (no scheme, port or path: remedy.example.com, or .example.com)", h)
		}
	}
	for i, code := range c.Ingest.AllowCodes {
		owner := policies.CodeOwner(code, nil)
		switch owner {
		case "":
			bad(fmt.Sprintf("ingest.allow_codes[%d]", i), "ingest.allow_codes: %s is not one of remedy's own codes; any program may post it already", code)
		case "executor", "daemon", "drill":
			bad(fmt.Sprintf("ingest.allow_codes[%d]", i), "ingest.allow_codes: %s reports remedy's own work (%s) and cannot come from another program", code, owner)
		}
	}
	for i, m := range c.Ingest.AllowMetrics {
		if !policies.OwnMetric(m) {
			bad(fmt.Sprintf("ingest.allow_metrics[%d]", i), "ingest.allow_metrics: %s is not one of remedy's own metrics; any program may post it already", m)
		}
	}
	errs = append(errs, checkEnvNames(at, "exec_pass_env", c.ExecPassEnv)...)
	return errs
}

// checkEnvNames checks a pass_env list: variable names only.
func checkEnvNames(at func(string) string, path string, names []string) Errors {
	var errs Errors
	for i, n := range names {
		if !envNameRE.MatchString(n) {
			errs = append(errs, fmt.Sprintf("%s: %s: %q is not a variable name", at(fmt.Sprintf("%s[%d]", path, i)), path, n))
		}
	}
	return errs
}
