package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/policies"
)

// `remedy config check` with no file says the built-in defaults would run (before: "open
// remedy.yaml: no such file or directory", exit 1).
func TestConfigCheckWithoutAFile(t *testing.T) {
	t.Chdir(t.TempDir())
	n := defaultCount(t)
	code, out, _ := run(t, "", "config", "check")
	if code != exitOK || !strings.Contains(out, "no remedy.yaml: the built-in defaults would run (listen 127.0.0.1:8080, data data)") ||
		!strings.Contains(out, fmt.Sprintf("%d policies: %d defaults kept", n, n)) {
		t.Fatalf("%d %s", code, out)
	}
	if code, out, _ := run(t, "", "config", "check", "missing.yaml"); code != exitFailed || !strings.Contains(out, "no such file") {
		t.Fatalf("a named file that is missing: %d %s", code, out)
	}
}

// POLICIES.md's first policy, as a new user writes it: a bot's own code, declared, in a
// directory of one's own. `remedy check --strict` passes, says the defaults are kept,
// and `remedy codes` lists the code.
func TestAFirstPolicy(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "payments.yaml", `codes:
  - code: PAYMENT_ERROR
    description: the payment provider refused a charge
    labels: [provider]
policies:
  - name: payment-errors
    on: [PAYMENT_ERROR]
    when: 'count("PAYMENT_ERROR", "10m") >= 5'
    group_by: [provider]
    severity: error
`)
	n := defaultCount(t)
	code, out, _ := run(t, "", "check", "--strict", dir)
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("%d policies: %d defaults kept, 1 yours (payment-errors); 1 declared event code(s)", n+1, n)) {
		t.Fatalf("check: %d %s", code, out)
	}
	code, out, _ = run(t, "", "codes", dir)
	if code != exitOK || !strings.Contains(out, "PAYMENT_ERROR") || !strings.Contains(out, "declared in "+filepath.Join(dir, "payments.yaml")) {
		t.Fatalf("codes: %d %s", code, out)
	}
	// --no-defaults checks the files alone, as default_policies: false runs them.
	if code, out, _ := run(t, "", "check", "--no-defaults", dir); code != exitOK || !strings.Contains(out, "1 policies in 1 file(s): ok") {
		t.Fatalf("--no-defaults: %d %s", code, out)
	}
}

// `remedy version` prints the build's version and revision (before: no such command).
func TestVersion(t *testing.T) {
	code, out, _ := run(t, "", "version")
	if code != exitOK || !strings.HasPrefix(out, "remedy ") || !strings.Contains(out, " go1.") {
		t.Fatalf("%d %q", code, out)
	}
}

// The first log line says the listen address and data directory remedy really uses,
// with the environment's overrides (before: fixed text "data in ./data, dashboard on
// 127.0.0.1:8080" whatever REMEDY_LISTEN and REMEDY_DATA_DIR said).
func TestFirstLogLineIsTrue(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "elsewhere")
	t.Setenv("REMEDY_DATA_DIR", data)
	cfg := write(t, dir, "remedy.yaml", "listen: 127.0.0.1:0\nwhatsapp: {enabled: false}\n")
	_, cancel, done, stderr := startRun(t, cfg)
	cancel()
	<-done
	first := strings.SplitN(stderr.String(), "\n", 2)[0]
	for _, want := range []string{"remedy starting", "config=" + cfg, "listen=127.0.0.1:0", "data=" + data, `policies="embedded defaults"`} {
		if !strings.Contains(first, want) {
			t.Fatalf("first line %q lacks %q", first, want)
		}
	}
}

func defaultCount(t *testing.T) int {
	t.Helper()
	set, err := policies.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	return len(set.Policies)
}
