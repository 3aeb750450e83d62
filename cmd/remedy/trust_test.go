package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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
	if code != exitOK || !strings.Contains(out, "no remedy.yaml: the built-in defaults would run (listen 127.0.0.1:8080, data in ./data/)") ||
		!strings.Contains(out, fmt.Sprintf("%d policies: %d defaults kept", n, n)) {
		t.Fatalf("%d %s", code, out)
	}
	if code, out, _ := run(t, "", "config", "check", "missing.yaml"); code != exitFailed || !strings.Contains(out, "no such file") {
		t.Fatalf("a named file that is missing: %d %s", code, out)
	}
}

// POLICIES.md's "A first policy", exactly as the document shows it: the policy file and
// its test, in a directory of one's own. `remedy check --strict` passes and says the
// defaults are kept (before, such a directory silently replaced all of them, and the
// bot's own code failed --strict), `remedy test` passes — its third case is issue 25's:
// four errors at one provider and one at another are no incident — and `remedy codes`
// lists the declared code.
func TestAFirstPolicy(t *testing.T) {
	doc, err := os.ReadFile("../../POLICIES.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)[strings.Index(string(doc), "## A first policy"):]
	section = section[:strings.Index(section, "\n## ")]
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 2 {
		t.Fatalf("%d yaml blocks in the section, want the policy file and its test", len(blocks))
	}
	dir := t.TempDir()
	write(t, dir, "payments.yaml", blocks[0][1])
	write(t, dir, "payments_test.yaml", blocks[1][1])
	n := defaultCount(t)
	code, out, _ := run(t, "", "check", "--strict", dir)
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("%d policies: %d defaults kept, 1 yours (payment-errors); 1 declared event code(s)", n+1, n)) {
		t.Fatalf("check: %d %s", code, out)
	}
	if !strings.Contains(section, `"… defaults kept, 1 yours (payment-errors); 1 declared event code(s)"`) {
		t.Errorf("the section's comment does not show what check prints:\n%s", out)
	}
	if code, out, _ := run(t, "", "test", dir); code != exitOK || !strings.Contains(out, "3 passed, 0 failed") {
		t.Fatalf("test: %d %s", code, out)
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
	// The start log says what was loaded.
	if n := defaultCount(t); !strings.Contains(stderr.String(), fmt.Sprintf(`msg="policies loaded" policies="%d policies: %d defaults kept"`, n, n)) {
		t.Fatalf("no policy summary in the log:\n%s", stderr)
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

// POLICIES.md's example test file ("Testing a policy before deploying it") passes
// against the default policies it names (before: it expected a success to resolve
// wa-reconnect with no WA_CONNECTED, as it did before a success became provisional, so
// RESTART_SERVICE ran and the alert escalated twice).
func TestPoliciesDocTestExamplePasses(t *testing.T) {
	doc, err := os.ReadFile("../../POLICIES.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)[strings.Index(string(doc), "## Testing a policy before deploying it"):]
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(section)
	if block == nil || !strings.HasPrefix(block[1], "policy_files: [../policies/*.yaml]") {
		t.Fatalf("the section's first yaml block is not the example test file: %q", block)
	}
	body := strings.Replace(block[1], "[../policies/*.yaml]", "[embedded:defaults]", 1)
	dir := t.TempDir()
	write(t, dir, "example_test.yaml", body)
	if code, out, _ := run(t, "", "test", dir); code != exitOK || !strings.Contains(out, "1 passed, 0 failed") {
		t.Fatalf("test: %d %s", code, out)
	}
}

// `remedy replay -h` says the rule the engine follows (before: that a report of the fault
// after a success fails the attempt for every policy — not so with resolve_on, where only
// the resolving event's absence within the step's timeout does). The engine's side, on a
// policy with resolve_on: the fault reported again after the success, then the resolving
// event within the timeout: resolved, never not_held.
func TestReplayHelpSaysTheResolveRule(t *testing.T) {
	_, _, stderr := run(t, "", "replay", "-h")
	help := strings.Join(strings.Fields(stderr), " ")
	for _, want := range []string{
		"With resolve_on, that is a resolve_on event, which must come within the step's timeout after the success (else the attempt counts as failed)",
		"otherwise, the condition false again, or no report of the fault for the step's timeout, and a report of the fault before then counts the attempt as failed",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("replay -h lacks %q:\n%s", want, stderr)
		}
	}
	dir := t.TempDir()
	write(t, dir, "gw.yaml", `codes:
  - {code: GW_DOWN, description: the gateway is down}
  - {code: GW_UP, description: the gateway is up}
policies:
  - name: gw-down
    on: [GW_DOWN]
    resolve_on: [GW_UP]
    actions:
      - {do: EXEC, with: {command: "true"}, timeout: 30s}
`)
	write(t, dir, "gw_test.yaml", `policy_files: [gw.yaml]
tests:
  - name: a report after the success does not fail a resolve_on step
    input:
      - {at: 0s, event: {code: GW_DOWN}}
      - {at: 5s, event: {code: GW_DOWN}}
      - {at: 10s, event: {code: GW_UP}}
    expect:
      - {at: 10s, state: resolved, policy: gw-down}
    expect_none:
      - {state: not_held, policy: gw-down}
`)
	if code, out, _ := run(t, "", "test", dir); code != exitOK || !strings.Contains(out, "1 passed, 0 failed") {
		t.Fatalf("test: %d %s", code, out)
	}
}
