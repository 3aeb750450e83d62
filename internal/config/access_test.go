package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Token rules (issue 15, item 5): a short or blank token on an address other machines
// reach is refused at start with the reason, whether it comes from the file or the
// environment; loopback keeps any token without spaces.
func TestTokenRules(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string // "" = accepted
	}{
		{"one character off loopback", "listen: 0.0.0.0:8080\n", map[string]string{"REMEDY_TOKEN": "x"}, "token: 1 characters is too short"},
		{"whitespace", "listen: 0.0.0.0:8080\n", map[string]string{"REMEDY_TOKEN": "                   "}, "token: contains spaces"},
		{"trailing newline from a file", "listen: 127.0.0.1:8080\n", map[string]string{"REMEDY_TOKEN": "0123456789abcdef0123\n"}, "token: contains spaces"},
		{"from the file, with its position", "listen: 0.0.0.0:8080\ntoken: short\n", nil, "r.yaml:2:8: token: 5 characters is too short"},
		{"from token_env", "listen: 0.0.0.0:8080\ntoken_env: BOT_TOKEN\n", map[string]string{"BOT_TOKEN": "0123456789abcdef"}, ""},
		{"short on loopback", "listen: 127.0.0.1:8080\ntoken: s3cret\n", nil, ""},
		{"read token alone", "read_token: viewer-viewer-viewer\n", nil, "read_token: set token too"},
		{"read token short off loopback", "listen: '[::]:8080'\n", map[string]string{"REMEDY_TOKEN": "0123456789abcdef", "REMEDY_READ_TOKEN": "view"}, "read_token: 4 characters is too short"},
		{"read token equal to the token", "token: same-same-same-same\nread_token: same-same-same-same\n", nil, "read_token: must differ"},
		{"read token", "listen: 0.0.0.0:8080\nread_token_env: VIEW\n", map[string]string{"REMEDY_TOKEN": "0123456789abcdef", "VIEW": "fedcba9876543210"}, ""},
		{"allowed host with a scheme", "allowed_hosts: [remedy.example.com, 'https://x.example.com']\n", nil, "r.yaml:1:37: allowed_hosts: \"https://x.example.com\" is not a host name"},
		{"allow a code nobody owns", "ingest: {allow_codes: [BOT_WEDGED]}\n", nil, "BOT_WEDGED is not one of remedy's own codes"},
		{"allow a recovery's result", "ingest: {allow_codes: [ACTION_SUCCEEDED]}\n", nil, "cannot come from another program"},
		{"allow a WhatsApp code", "ingest: {allow_codes: [WA_LOGGED_OUT]}\n", nil, ""},
		{"allow a metric nobody owns", "ingest: {allow_metrics: [bot_rss_mb]}\n", nil, "bot_rss_mb is not one of remedy's own metrics"},
		{"allow one of remedy's metrics", "ingest: {allow_metrics: [cpu_percent, queue_inbound_depth]}\n", nil, ""},
		{"pass_env names", "exec_pass_env: [OK_NAME, 'not a name']\nservices:\n  - {name: bot, command: [x], pass_env: [NODE_ENV, '1X']}\n", nil, "services[0].pass_env: \"1X\" is not a variable name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.yaml")
			os.WriteFile(path, []byte(tc.file), 0o644)
			_, err := Load(path, func(k string) string { return tc.env[k] })
			got := ""
			if err != nil {
				got = strings.ReplaceAll(err.Error(), filepath.Dir(path)+"/", "")
			}
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
