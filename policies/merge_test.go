package policies

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The operator's directory extends the defaults (before, one file of one's own replaced
// all 30 and left WhatsApp with no reconnect policy): a policy of a default's name
// replaces it, name + enabled: false switches one off, the rest are added, and the
// summary says so.
func TestOperatorPoliciesExtendTheDefaults(t *testing.T) {
	defaults, err := Defaults()
	if err != nil {
		t.Fatal(err)
	}
	dir := writeDir(t, map[string]string{
		"bot.yaml": `policies:
  - name: payment-errors
    on: [WA_SEND_FAILED]
    when: 'firing("wa-reconnect")'
  - name: disk-low
    enabled: false
`,
		"override.yaml": `policies:
  - name: cpu-high
    on: [sample]
    when: 'metrics.cpu_percent > 99'
    for: 10m
`,
	})
	set, err := LoadMerged(false, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Policies) != len(defaults.Policies)+1 {
		t.Fatalf("%d policies, want the %d defaults and one of yours", len(set.Policies), len(defaults.Policies))
	}
	want := map[string]Origin{"wa-reconnect": OriginDefault, "cpu-high": OriginOverridden, "disk-low": OriginOff, "payment-errors": OriginYours}
	for name, origin := range want {
		p := set.ByName(name)
		if p == nil || p.Origin != origin {
			t.Fatalf("%s: %+v, want origin %s", name, p, origin)
		}
	}
	if p := set.ByName("disk-low"); p.Enabled || len(p.On) == 0 || !strings.HasSuffix(p.Pos.File, "bot.yaml") {
		t.Fatalf("disk-low switched off: %+v", p)
	}
	if p := set.ByName("cpu-high"); p.When != "metrics.cpu_percent > 99" || p.Hash == defaults.ByName("cpu-high").Hash {
		t.Fatalf("cpu-high not replaced: %+v", p)
	}
	n := len(defaults.Policies)
	if got, want := set.Summary(), fmt.Sprintf("%d policies: %d defaults kept, 1 overridden (cpu-high), 1 off (disk-low), 1 yours (payment-errors)", n+1, n-2); got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
	for _, w := range set.Warnings {
		if strings.Contains(w.Message, "disabled") {
			t.Fatalf("a default switched off on purpose is not a warning: %s", w)
		}
	}
	// default_policies: false loads the files alone.
	alone, err := LoadMerged(true, filepath.Join(dir, "override.yaml"))
	if err != nil || len(alone.Policies) != 1 {
		t.Fatalf("without defaults: %v %v", alone, err)
	}
}

// Mistakes in merging are errors with positions.
func TestMergeErrors(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"a.yaml": "policies:\n  - name: no-such-default\n    enabled: false\n  - name: wa-reconnect\n    on: [WA_DISCONNECTED]\n",
		"b.yaml": "policies:\n  - name: wa-reconnect\n    on: [WA_DISCONNECTED]\n",
	})
	_, err := LoadMerged(false, dir)
	want := []string{
		dir + `/a.yaml:2:5: policy "no-such-default": enabled: false alone switches off a default policy, but no default has this name (see remedy check with no path)`,
		dir + `/b.yaml:2:5: policy "wa-reconnect": duplicate name (first defined at ` + dir + `/a.yaml:4:5)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	_, err = LoadMerged(true, filepath.Join(dir, "a.yaml"))
	if err == nil || !strings.Contains(err.Error(), `a.yaml:2:5: policy "no-such-default": enabled: false alone switches off a default policy, but the defaults are not loaded here`) {
		t.Fatalf("without defaults: %v", err)
	}
}

// A bot's own event codes, declared under codes:, satisfy --strict and are listed;
// undeclared ones are still warned about.
func TestDeclaredCodes(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"codes.yaml": "codes:\n  - code: PAYMENT_ERROR\n    description: the payment provider refused a charge\n    labels: [provider]\n",
		"bot.yaml":   "policies:\n  - name: payments\n    on: [PAYMENT_*]\n  - name: typo\n    on: [PAYMENT_EROR]\n",
	})
	set, err := LoadMerged(true, dir)
	if err != nil {
		t.Fatal(err)
	}
	var warns []string
	for _, w := range set.Warnings {
		warns = append(warns, w.String())
	}
	if want := dir + `/bot.yaml:4:5: warning: policy "typo": unknown event code "PAYMENT_EROR" (see remedy codes; declare your own under codes:)`; strings.Join(warns, "\n") != want {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), want)
	}
	if len(set.Codes) != 1 || set.Codes[0].Code != "PAYMENT_ERROR" || set.Codes[0].Labels != "provider" {
		t.Fatalf("codes %+v", set.Codes)
	}
	bad := writeDir(t, map[string]string{
		"a.yaml": "codes:\n  - code: PAYMENT_ERROR\n    description: x\n  - code: WA_CONNECTED\n    description: mine\n  - code: lower\n  - {code: PAYMENT_ERROR, description: again}\n  - {code: WA_MY_BOT_DOWN, description: mine}\n  - {code: QUEUE_PAY_STUCK, description: my queue}\n",
	})
	_, err = LoadMerged(true, bad)
	want := []string{
		bad + `/a.yaml:4:11: codes[1].code: WA_CONNECTED is a built-in code (see remedy codes); declare only your own`,
		bad + `/a.yaml:6:5: codes[2]: lower needs a description (remedy codes shows it to the operator)`,
		bad + `/a.yaml:6:11: codes[2].code: "lower" is not an event code (upper case, digits and _)`,
		bad + `/a.yaml:7:5: codes: PAYMENT_ERROR declared twice (first at ` + bad + `/a.yaml:2:5)`,
		bad + `/a.yaml:8:12: codes[4].code: WA_MY_BOT_DOWN starts with a prefix of remedy's whatsapp adapter, which the API refuses from other programs; give your code another prefix`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// A default replaced in full but with enabled: false is reported as off, like the short
// form (before: "overridden (cpu-high)", which reads as a new cpu-high that runs).
func TestSummaryCountsADisabledOverrideAsOff(t *testing.T) {
	dir := writeDir(t, map[string]string{"a.yaml": `policies:
  - name: cpu-high
    enabled: false
    on: [sample]
    when: 'metrics.cpu_percent > 50'
  - name: disk-low
    enabled: false
`})
	set, err := LoadMerged(false, dir)
	if err != nil {
		t.Fatal(err)
	}
	n := len(set.Policies)
	if got, want := set.Summary(), fmt.Sprintf("%d policies: %d defaults kept, 2 off (cpu-high, disk-low)", n, n-2); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
