package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// `remedy drill service` against `remedy run` with the embedded policies: the service is
// killed for real, service-down restarts it, and the report says so (exit 0). Without
// the token the daemon refuses (exit 2).
func TestDrillCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+filepath.Join(dir, "data")+`
listen: 127.0.0.1:0
token: drill-secret
check_interval: 200ms
whatsapp: {enabled: false}
services:
  - name: bot
    command: [sleep, "3600"]
    grace: 1s
`)
	base, cancel, done, _ := startRun(t, cfg)

	if code, _, errOut := run(t, "", "drill", "--url", base, "--token", "wrong", "service"); code != exitBadInput || !strings.Contains(errOut, "401") {
		t.Fatalf("wrong token: %d %s", code, errOut)
	}
	code, out, errOut := run(t, "", "drill", "--config", cfg, "--url", base, "--alert-wait", "1ms", "service")
	if code != exitOK {
		t.Fatalf("drill: %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"drill service: sent SIGKILL to service bot", "service-down", "RESTART_SERVICE succeeded", "SERVICE_UP", "PASSED"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if code, _, errOut := run(t, "", "drill", "--config", cfg, "--url", base, "whatsapp"); code != exitBadInput || !strings.Contains(errOut, "WhatsApp is off") {
		t.Fatalf("whatsapp off: %d %s", code, errOut)
	}
	cancel()
	if c := <-done; c != exitOK {
		t.Fatalf("run exited %d", c)
	}
}
