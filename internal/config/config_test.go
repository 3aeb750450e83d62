package config

import (
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

func TestBadConfigReportsEverythingWithPositions(t *testing.T) {
	src := `data_dir: /var/lib/remedy
listen: 0.0.0.0:8080
sample_interval: fast
timezone: Mars/Olympus
whatsapp:
  admins: ["+6281234567890", "call me"]
alerts:
  webhook: {url: "ftp://x"}
services:
  - name: bot
    command: [node, bot.js]
    restart: always
  - name: bot
    command: [node, other.js]
`
	_, err := Parse("remedy.yaml", []byte(src))
	if err == nil {
		t.Fatal("accepted")
	}
	got := err.Error()
	for _, want := range []string{
		`remedy.yaml:3:18: sample_interval: "fast" is not a duration (30s, 5m, 2h, 1d)`,
		`remedy.yaml:12:5: services[0]: unknown key "restart" (known: autostart, command, dir, env, grace, health_url, max_memory_mb, name, pass_env)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	// Decoding errors come first; with them fixed, validation reports the rest.
	src = strings.Replace(strings.Replace(src, "sample_interval: fast\n", "", 1), "    restart: always\n", "", 1)
	_, err = Parse("remedy.yaml", []byte(src))
	got = err.Error()
	for _, want := range []string{
		`remedy.yaml:3:11: timezone: unknown time zone Mars/Olympus`,
		`remedy.yaml:2:9: listen: 0.0.0.0:8080 is reachable from other machines; set a token`,
		`remedy.yaml:5:30: whatsapp.admins: "call me" is not a phone number`,
		`remedy.yaml:7:18: alerts.webhook.url: "ftp://x" is not an http(s) URL`,
		`remedy.yaml:11:11: services[1]: service "bot" defined twice`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
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
		if k == "REMEDY_TOKEN" {
			return "t"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 1 || c.Alerts.Alertmanager == nil || c.Timezone != "Asia/Jakarta" {
		t.Fatalf("%+v", c)
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
