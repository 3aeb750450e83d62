package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/child"
	"github.com/remedy-run/remedy/internal/config"
)

// Issue 15's seven findings, each against a running daemon with its default
// configuration (loopback, no token) unless the finding is about tokens. Each failed on
// the code the issue was filed against.

// 1. A cross-site page cannot silence every alert (the curl: text/plain, an
// Origin of another site), post a fake logout or reload.
func TestSecurityCrossSiteStateChangesAreRefused(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	for _, req := range [][]string{
		{"POST", "/api/v1/silences", `{"matchers":{"policy":"*"},"duration":"720h","author":"x"}`, "Content-Type", "text/plain", "Origin", "http://evil.example"},
		{"POST", "/api/v1/silences", `{"matchers":{"policy":"*"},"duration":"720h","author":"x"}`, "Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example"},
		{"POST", "/api/v1/events", `{"code":"CUSTOM_FAULT","labels":{"part":"x"}}`, "Origin", "http://evil.example"},
		{"POST", "/api/v1/reload", "", "Content-Type", "text/plain", "Origin", "http://evil.example"},
	} {
		if code, body := r.do(req[0], req[1], req[2], req[3:]...); code < 400 || code >= 500 {
			t.Errorf("%s %s from another site: %d %s", req[0], req[1], code, body)
		}
	}
	if _, body := r.do("GET", "/api/v1/silences", ""); strings.TrimSpace(body) != "[]" {
		t.Fatalf("silences after the cross-site posts: %s", body)
	}
}

// 2. A DNS-rebinding page (Host: its own name) reads nothing.
func TestSecurityRebindingHostReadsNothing(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	port := r.base[strings.LastIndexByte(r.base, ':')+1:]
	code, body := r.do("GET", "/api/v1/status", "", "Host", "evil.example:"+port)
	if code < 400 || strings.Contains(body, `"version"`) {
		t.Fatalf("Host evil.example: %d %s", code, body)
	}
	if code, _ := r.do("GET", "/api/v1/status", "", "Host", "localhost:"+port); code != 200 {
		t.Fatalf("Host localhost: %d", code)
	}
}

// 3. remedy's own signals cannot be forged through the API.
func TestSecurityForgedInternalCodesAreRefused(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	for _, ev := range []string{
		`{"code":"WA_LOGGED_OUT","source":"whatsapp"}`,
		`{"code":"SERVICE_UP","labels":{"service":"bot"}}`,
		`{"code":"DB_OK","labels":{"db":"remedy"}}`,
		`{"code":"QUEUE_OK","labels":{"queue":"inbound"}}`,
		`{"code":"DRILL_PROBE_OK"}`,
	} {
		if code, body := r.do("POST", "/api/v1/events", ev); code < 400 || code >= 500 {
			t.Errorf("%s: %d %s", ev, code, body)
		}
	}
}

// An allowed code from another program is taken with the poster's source, and the
// default policies, which act on remedy's own connection, leave it alone.
func TestSecurityAllowedCodeKeepsThePostersSource(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) {
		c.Ingest.AllowCodes = []string{"WA_LOGGED_OUT"}
		c.Policies, c.DefaultPolicies = "", true // the embedded defaults, wa-logged-out among them
	})
	if code, body := r.do("POST", "/api/v1/events", `{"code":"WA_LOGGED_OUT","source":"bot2","labels":{"reason":"401"}}`); code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	r.eventually("the event recorded", func() bool {
		_, body := r.do("GET", "/api/v1/events", "")
		return strings.Contains(body, `"source": "bot2"`)
	})
	if p := r.policy("wa-logged-out"); p == nil || p["firing"] != float64(0) || p["last_fired"] != nil {
		t.Fatalf("wa-logged-out: %v", p)
	}
	if code, _ := r.do("POST", "/api/v1/events", `{"code":"WA_CONNECTED","source":"bot2"}`); code != 403 {
		t.Fatalf("a code not listed: %d", code)
	}
}

// The read token reads and changes nothing.
func TestSecurityReadToken(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) { c.Token, c.ReadToken = "operator-token-0123456789", "viewer-token-0123456789" })
	r.token = "viewer-token-0123456789"
	if code, _ := r.do("GET", "/api/v1/alerts", ""); code != 200 {
		t.Fatalf("read: %d", code)
	}
	if code, body := r.do("POST", "/api/v1/silences", `{"matchers":{"policy":"*"},"duration":"1h","author":"x"}`); code != 403 || !strings.Contains(body, "read_only") {
		t.Fatalf("write with the read token: %d %s", code, body)
	}
}

// 4. A supervised service's processes do not see remedy's secrets in their environment.
func TestSecurityChildEnvironmentHasNoSecrets(t *testing.T) {
	// Not parallel: t.Setenv puts secrets in the process environment, which children of parallel tests would inherit.
	t.Setenv("REMEDY_TOKEN", "operator-token-0123456789")
	t.Setenv("HOOK_SECRET", "hmac-secret")
	dir := t.TempDir()
	bot := filepath.Join(dir, "bot.sh")
	os.WriteFile(bot, []byte("#!/bin/sh\necho $$ >\"$BOT_DIR/bot.pid\"\nexec sleep 3600\n"), 0o755)
	r := startDaemon(t, func(c *config.Config) {
		c.Alerts.Webhook = &config.Endpoint{URL: "http://127.0.0.1:1/hook", SecretEnv: "HOOK_SECRET"}
		c.Services = []config.Service{{Name: "bot", Command: []string{bot}, Env: map[string]string{"BOT_DIR": dir}, Grace: time.Second}}
	})
	r.token = os.Getenv("REMEDY_TOKEN")
	var pid string
	r.eventually("the bot's pid", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "bot.pid"))
		pid = strings.TrimSpace(string(b))
		return pid != ""
	})
	environ, err := os.ReadFile("/proc/" + pid + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"REMEDY_TOKEN=", "HOOK_SECRET=", "operator-token", "hmac-secret"} {
		if strings.Contains(string(environ), secret) {
			t.Errorf("%s in the bot's /proc/%s/environ", secret, pid)
		}
	}
	if !strings.Contains(string(environ), "BOT_DIR="+dir) {
		t.Error("the service's own env is missing")
	}
}

// 5. A weak token is refused at start off loopback, and ?token= only opens the stream.
func TestSecurityTokenRules(t *testing.T) {
	t.Parallel()
	for _, tok := range []string{"x", "                "} {
		env := map[string]string{"REMEDY_LISTEN": "0.0.0.0:8080", "REMEDY_TOKEN": tok}
		if _, err := config.Load("", func(k string) string { return env[k] }); err == nil {
			t.Errorf("token %q accepted on 0.0.0.0", tok)
		}
	}
	r := startDaemon(t, func(c *config.Config) { c.Token = "operator-token-0123456789" })
	if code, _ := r.do("GET", "/api/v1/status?token=operator-token-0123456789", "", "Authorization", ""); code != 401 {
		t.Fatalf("?token= on a plain route: %d", code)
	}
}

// 6. Unknown paths and wrong methods answer the JSON error.
func TestSecurityErrorsAreJSON(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	for _, req := range [][2]string{{"GET", "/api/v1/nope"}, {"POST", "/api/v1/status"}, {"DELETE", "/api/v1/events"}} {
		code, body := r.do(req[0], req[1], "")
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || code < 400 || e.Error.Message == "" {
			t.Errorf("%s %s: %d %q", req[0], req[1], code, body)
		}
	}
}

// 7. Field case b2-06: RESTART_SERVICE of a wrapper whose bot ignores SIGTERM succeeds
// only once the old bot is gone, and no bot outlives remedy.
func TestSecurityRestartLeavesNoSecondBot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bot.sh"), []byte("#!/bin/sh\necho $$ >>\"$BOT_DIR/bot.pids\"\ntrap '' TERM\nwhile :; do sleep 1; done\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "wrapper.sh"), []byte("#!/bin/bash\n\"$BOT_DIR/bot.sh\" >>\"$BOT_DIR/bot.log\" 2>&1\n"), 0o755)
	r := startDaemon(t, func(c *config.Config) {
		c.Services = []config.Service{{Name: "bot", Command: []string{filepath.Join(dir, "wrapper.sh")},
			Env: map[string]string{"BOT_DIR": dir}, Grace: time.Second}}
	})
	os.WriteFile(filepath.Join(r.dir, "policies", "bot.yaml"), []byte(`policies:
  - name: bot-wedged
    on: [BOT_WEDGED]
    actions:
      - do: RESTART_SERVICE
        with: {service: bot, grace: 1s}
        timeout: 30s
`), 0o644)
	if code, body := r.do("POST", "/api/v1/reload", ""); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	pids := func() []int {
		b, _ := os.ReadFile(filepath.Join(dir, "bot.pids"))
		var out []int
		for _, f := range strings.Fields(string(b)) {
			p, _ := strconv.Atoi(f)
			out = append(out, p)
		}
		return out
	}
	r.eventually("the first bot", func() bool { return len(pids()) == 1 })
	first := pids()[0]
	if code, body := r.do("POST", "/api/v1/events", `{"code":"BOT_WEDGED","source":"node-bot"}`); code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	var outcome string
	r.eventually("RESTART_SERVICE's outcome", func() bool {
		_, body := r.do("GET", "/api/v1/actions", "")
		var rows []struct{ Action, Outcome string }
		json.Unmarshal([]byte(body), &rows)
		for _, row := range rows {
			if row.Action == "RESTART_SERVICE" && row.Outcome != "" {
				outcome = row.Outcome
				return true
			}
		}
		return false
	})
	if outcome == "succeeded" && child.Running(first) {
		t.Fatalf("RESTART_SERVICE succeeded while the old bot %d still runs", first)
	}
	r.stop()
	for _, pid := range pids() {
		if child.Running(pid) {
			t.Errorf("bot %d outlived remedy", pid)
		}
	}
}
