package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load("", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.DataDir != "data" || c.Policies != "" || c.SampleInterval != 10*time.Second {
		t.Fatalf("%+v", c)
	}
}

// Each bad file with every message it must produce, exactly and in order: what
// `remedy config check` prints, and what stops `remedy run` (the same Load).
var badFiles = map[string][]string{
	"zero_interval":   {`2:18: health_interval must be at least 1s, got 0s`},
	"retention_short": {`3:10: retention.audit must be at least 1h0m0s (or absent for the default, 4320h0m0s), got 30m0s`},
	"not_a_mapping":   {`1:1: the configuration must be a mapping of keys (listen: …, data_dir: …), not a list or a single value`},
	"cron_words":      {`2:18: report_schedule: "every day" is not a cron schedule (minute hour day month weekday, e.g. "0 9 * * *"): expected exactly 5 fields, found 2: [every day]`},
	"cron_range":      {`1:18: report_schedule: "61 25 * * *" is not a cron schedule (minute hour day month weekday, e.g. "0 9 * * *"): end of range (61) above maximum (59): 61`},
	"command_prefix":  {`2:19: whatsapp.command_prefix "remedy ": a word without spaces, at most 16 bytes ("!", "/", "!remedy-")`},
	"whatsapp_values": {
		`2:20: whatsapp.send_per_minute must be at least 1, got -3`,
		`3:38: whatsapp.allowed_actions: unknown action "FORMAT_DISK" (known: CLEAN_DATA, CLEAR_QUEUE, EXEC, NOTIFY, RECONNECT_WA, RESET_DB, RESET_STATE, RESTART_SERVICE, WEBHOOK)`,
	},
	"whatsapp_send": {
		`3:5: whatsapp.send: limits are positive numbers (0 keeps the default)`,
		`4:19: whatsapp.send.max_media_mb: 1 to 100 (WhatsApp's largest document), got 500`,
	},
	"unknown_channel": {
		`2:26: alerts.per_minute.whatsapp must be at least 1, got 0`,
		`2:37: alerts.per_minute: unknown channel "pigeon" (known: whatsapp, webhook, alertmanager, log, dashboard)`,
	},
	"unset_secret":  {`4:17: alerts.webhook.secret_env: REMEDY_TEST_UNSET_SECRET is not set in the environment (requests would go out unsigned)`},
	"duplicate_env": {`6:7: services[0].env: key "NODE_ENV" repeated`},
	"repeated_key":  {`2:17: check_interval must be at least 100ms`, `3:1: key "sample_interval" repeated`},
	"invalid_yaml":  {`3:20: invalid YAML: "[" is not closed (expected ',' or ']')`},
	"tab_indent":    {`2:1: invalid YAML: found character that cannot start any token`},
	"listen_port":   {`1:9: listen: "127.0.0.1:99999": port "99999" is not a number from 0 to 65535`},
	"listen_host":   {`2:9: listen: "remedy.internal:8080": host "remedy.internal" is not an IP address or localhost (remedy binds one address; a name could resolve to another)`},
	"no_policies":   {`2:19: default_policies: false and no policies: remedy would run no policy at all; name a policy file or directory, or keep the defaults`},
	// Type errors and value errors in one round.
	"one_round": {
		`2:9: listen: 0.0.0.0:8080 is reachable from other machines; set a token (token_env or REMEDY_TOKEN) or listen on 127.0.0.1`,
		`3:18: sample_interval: "fast" is not a duration (30s, 5m, 2h, 1d)`,
		`4:11: timezone: unknown time zone Mars/Olympus`,
		`6:30: whatsapp.admins: "call me" is not a phone number (digits, optional +)`,
		`8:18: alerts.webhook.url: "ftp://x" is not an http(s) URL`,
		`12:5: services[0]: unknown key "restart" (known: autostart, command, dir, env, grace, health_url, max_memory_mb, name, pass_env)`,
		`13:11: services[1]: service "bot" defined twice`,
	},
}

func TestBadFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) != len(badFiles) {
		t.Errorf("%d bad files on disk, %d in the table", len(files), len(badFiles))
	}
	for name, want := range badFiles {
		t.Run(name, func(t *testing.T) {
			path := "testdata/" + name + ".bad.yaml"
			_, err := Load(path, func(string) string { return "" })
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v (%T), want Errors", err, err)
			}
			var full []string
			for _, w := range want {
				full = append(full, path+":"+w)
			}
			if strings.Join(errs, "\n") != strings.Join(full, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(full, "\n"))
			}
		})
	}
}

func TestEnvironmentOverridesAndToken(t *testing.T) {
	env := map[string]string{"REMEDY_LISTEN": "0.0.0.0:9000", "REMEDY_TOKEN": "s3cret-s3cret-s3cret", "REMEDY_ADMINS": "+6281100000001,+6281100000002", "REMEDY_DATA_DIR": "/tmp/r"}
	c, err := Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9000" || c.Token != "s3cret-s3cret-s3cret" || len(c.WhatsApp.Admins) != 2 || c.DataDir != "/tmp/r" {
		t.Fatalf("%+v", c)
	}
	delete(env, "REMEDY_TOKEN")
	if _, err := Load("", func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "set a token") {
		t.Fatalf("non-loopback without a token: %v", err)
	}
}

func TestTokenFromNamedVariable(t *testing.T) {
	c, err := Parse("r.yaml", []byte("listen: '[::1]:8080'\ntoken_env: BOT_TOKEN\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.applyEnv(func(k string) string {
		if k == "BOT_TOKEN" {
			return "abc"
		}
		return ""
	})
	if c.Token != "abc" {
		t.Fatal("token_env not read")
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	c, err := Load("../../packaging/remedy.yaml", func(k string) string {
		return map[string]string{"REMEDY_TOKEN": "t", "REMEDY_WEBHOOK_SECRET": "s"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 1 || c.Alerts.Alertmanager == nil || c.Timezone != "Asia/Jakarta" {
		t.Fatalf("%+v", c)
	}
	if l := c.WhatsApp.Send.Limits(); l.PerMinute != 30 || l.ChatPerMinute != 20 || l.StopFor != time.Hour || c.WhatsApp.Send.MaxMediaBytes() != 16<<20 {
		t.Fatalf("whatsapp.send: %+v", c.WhatsApp.Send)
	}
}

// WhatsApp is on by default (idle until paired); a file naming only some whatsapp keys
// keeps it on, and enabled: false turns it off.
func TestWhatsAppOnByDefault(t *testing.T) {
	c, err := Parse("a.yaml", []byte("whatsapp:\n  admins: [\"+6281100000009\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.WhatsApp.Enabled || c.WhatsApp.SendPerMinute != 10 || len(c.WhatsApp.Admins) != 1 {
		t.Fatalf("%+v", c.WhatsApp)
	}
	c, err = Parse("b.yaml", []byte("whatsapp: {enabled: false}\n"))
	if err != nil || c.WhatsApp.Enabled {
		t.Fatalf("%v %+v", err, c.WhatsApp)
	}
}

// An error in a value a REMEDY_* variable set names the variable, not a place in the file
// that does not hold it (before: "r.yaml:1:1: listen: 0.0.0.0:9000 is reachable …").
func TestEnvironmentErrorsNameTheVariable(t *testing.T) {
	env := map[string]string{"REMEDY_LISTEN": "0.0.0.0:9000", "REMEDY_TIMEZONE": "Mars/Olympus"}
	dir := t.TempDir()
	path := dir + "/r.yaml"
	if err := os.WriteFile(path, []byte("data_dir: /tmp/x\ntimezone: UTC\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, func(k string) string { return env[k] })
	want := "REMEDY_TIMEZONE (environment): timezone: unknown time zone Mars/Olympus\n" +
		"REMEDY_LISTEN (environment): listen: 0.0.0.0:9000 is reachable from other machines; set a token (token_env or REMEDY_TOKEN) or listen on 127.0.0.1"
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

// The bot's webhook asks for its replies' send outcomes with reply_outcomes (off by
// default); the key is the handler's alone.
func TestHandlerAsksForReplyOutcomes(t *testing.T) {
	c, err := Parse("r.yaml", []byte("whatsapp:\n  handler: {url: 'http://127.0.0.1:3000/wa'}\n"))
	if err != nil || c.WhatsApp.Handler == nil || c.WhatsApp.Handler.ReplyOutcomes {
		t.Fatalf("default: %+v %v", c.WhatsApp.Handler, err)
	}
	c, err = Parse("r.yaml", []byte("whatsapp:\n  handler: {url: 'http://127.0.0.1:3000/wa', reply_outcomes: true}\n"))
	if err != nil || !c.WhatsApp.Handler.ReplyOutcomes {
		t.Fatalf("asked: %+v %v", c.WhatsApp.Handler, err)
	}
	_, err = Parse("r.yaml", []byte("alerts:\n  webhook: {url: 'http://127.0.0.1:3000/a', reply_outcomes: true}\n"))
	if err == nil || !strings.Contains(err.Error(), `2:45: alerts.webhook: unknown key "reply_outcomes" (known: secret_env, url)`) {
		t.Fatalf("on an alert webhook: %v", err)
	}
}
