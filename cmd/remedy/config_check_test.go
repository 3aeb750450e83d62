package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 25: `config check` reported one stage at a time (the configuration's errors; the
// policies' only once those were fixed) although the README says every error at once.
// Now one report holds every stage's errors, each with its file:line:col.
func TestConfigCheckReportsEveryStageAtOnce(t *testing.T) {
	dir := t.TempDir()
	pol := write(t, dir, "policies.yaml", "policies:\n  - name: one\n    on: [some_fault]\n")
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+filepath.Join(dir, "data")+"\npolicies: "+pol+"\nlisten: 127.0.0.1:99999\nhealth_interval: 0s\n")
	code, out, _ := run(t, "", "config", "check", cfg)
	for _, want := range []string{
		`remedy.yaml:3:9: listen: "127.0.0.1:99999": port "99999" is not a number from 0 to 65535`,
		`remedy.yaml:4:18: health_interval must be at least 1s, got 0s`,
		`policies.yaml:3:10: policy "one": on: "some_fault" is not an event code`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if code != exitFailed || !strings.Contains(out, "not valid") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// `config check --bind` binds the listen address and says why it cannot: here a port
// another program holds, as a remedy already running would.
func TestConfigCheckBind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+filepath.Join(dir, "data")+"\nlisten: "+ln.Addr().String()+"\n")
	if code, out, _ := run(t, "", "config", "check", cfg); code != exitOK {
		t.Fatalf("without --bind: %d %s", code, out)
	}
	code, out, _ := run(t, "", "config", "check", "--bind", cfg)
	if code != exitFailed || !strings.Contains(out, "remedy.yaml:2:9: listen: cannot listen on "+ln.Addr().String()) || !strings.Contains(out, "address already in use") {
		t.Fatalf("--bind on a port in use: %d %s", code, out)
	}
	free := write(t, dir, "free.yaml", "data_dir: "+filepath.Join(dir, "data")+"\nlisten: 127.0.0.1:0\n")
	if code, out, _ := run(t, "", "config", "check", "--bind", free); code != exitOK {
		t.Fatalf("--bind on a free port: %d %s", code, out)
	}
}

// `config check --config FILE` takes the file as `remedy run --config FILE` does (before:
// "flag provided but not defined: -config", exit 2, for the command a new user types
// after `remedy run --config`); FILE and --config together are refused.
func TestConfigCheckTakesConfigAsRunDoes(t *testing.T) {
	dir := t.TempDir()
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+filepath.Join(dir, "data")+"\nlisten: 127.0.0.1:99999\n")
	code, out, _ := run(t, "", "config", "check", "--config", cfg)
	if code != exitFailed || !strings.Contains(out, `remedy.yaml:2:9: listen: "127.0.0.1:99999"`) {
		t.Fatalf("--config: %d %s", code, out)
	}
	if code, _, _ := run(t, "", "config", "check", "--config", cfg, cfg); code != exitBadInput {
		t.Fatalf("--config and FILE: exit %d, want %d", code, exitBadInput)
	}
}

// `config check` lists the sessions a configuration with `sessions:` runs, each with its
// store, handler and admins as inherited; a duplicate name is an error at its position.
func TestConfigCheckShowsTheSessions(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+data+"\nwhatsapp:\n  handler: {url: \"http://127.0.0.1:9000/bot\"}\n  admins: [\"+6281100000001\"]\n"+
		"sessions:\n  - name: sales\n  - name: support\n    admins: []\n")
	code, out, _ := run(t, "", "config", "check", cfg)
	for _, want := range []string{
		"session sales: store " + filepath.Join(data, "sessions", "sales", "whatsapp.db") + ", handler http://127.0.0.1:9000/bot, 1 admin(s)",
		"session support: store " + filepath.Join(data, "sessions", "support", "whatsapp.db") + ", handler http://127.0.0.1:9000/bot, 0 admin(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// A handler URL's password or query is a secret: not printed.
	secret := write(t, dir, "secret.yaml", "data_dir: "+data+"\nwhatsapp:\n  handler: {url: \"http://bot:hunter2@127.0.0.1:9000/bot?token=qtok\"}\nsessions:\n  - name: sales\n")
	if code, out, _ := run(t, "", "config", "check", secret); code != exitOK || strings.Contains(out, "hunter2") || strings.Contains(out, "qtok") ||
		!strings.Contains(out, "handler http://127.0.0.1:9000/bot,") {
		t.Errorf("exit %d, a handler URL with a password and a token:\n%s", code, out)
	}
	bad := write(t, dir, "bad.yaml", "data_dir: "+data+"\nsessions:\n  - name: sales\n  - name: sales\n")
	if code, out, _ := run(t, "", "config", "check", bad); code != exitFailed || !strings.Contains(out, `bad.yaml:4:11: sessions[1].name: session "sales" is listed twice`) {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
