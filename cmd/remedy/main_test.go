package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const svcPolicy = `policies:
  - name: svc
    on: [SERVICE_DOWN]
    group_by: [service]
    resolve_on: [SERVICE_UP]
    actions:
      - do: RESTART_SERVICE
        with: {service: '{{ .labels.service }}'}
        timeout: 30s
        attempts: 2
        backoff: {initial: 10s, max: 1m, jitter: none}
`

func TestCheckDefaultsAndBadFiles(t *testing.T) {
	code, out, _ := run(t, "", "check")
	if code != exitOK || !strings.Contains(out, "policies in 8 file(s): ok") {
		t.Fatalf("check defaults: %d %q", code, out)
	}
	code, out, _ = run(t, "", "check", "--strict", "../../policies/defaults")
	if code != exitOK {
		t.Fatalf("defaults fail --strict: %s", out)
	}
	code, out, _ = run(t, "", "check", "../../policies/testdata/many_errors.bad.yaml")
	if code != exitFailed || !strings.Contains(out, "many_errors.bad.yaml:11:18: policy \"two\": actions[0].timeout must be positive") ||
		!strings.Contains(out, "6 error(s)") {
		t.Fatalf("check bad file: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", "check", "../../policies/testdata/expr_syntax.bad.yaml")
	if code != exitFailed || !strings.Contains(out, "^") {
		t.Fatalf("expression errors carry expr's snippet: %s", out)
	}
	dir := t.TempDir()
	p := write(t, dir, "w.yaml", "policies:\n  - name: w\n    on: [NOT_KNOWN]\n")
	if code, _, _ := run(t, "", "check", p); code != exitOK {
		t.Fatal("warnings fail without --strict")
	}
	if code, out, _ := run(t, "", "check", "--strict", p); code != exitFailed || !strings.Contains(out, "unknown event code") {
		t.Fatalf("--strict: %d %s", code, out)
	}
	if code, _, _ := run(t, "", "check", "--bogus"); code != exitBadInput {
		t.Fatal("bad flag is not exit 2")
	}
}

func TestTestCommand(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "svc.yaml", svcPolicy)
	pass := write(t, dir, "pass_test.yaml", `policy_files: [svc.yaml]
tests:
  - name: restarts the service
    input:
      - at: 0s
        event: {code: SERVICE_DOWN, labels: {service: bot}}
    outcomes: {RESTART_SERVICE: [fail, ok]}
    expect:
      - at: 0s
        action: RESTART_SERVICE
        params: {service: bot}
        attempt: 1
      - at: 10s
        action: RESTART_SERVICE
        attempt: 2
  - name: other
    input:
      - at: 0s
        event: {code: SERVICE_UP}
    expect_none:
      - action: RESTART_SERVICE
`)
	code, out, _ := run(t, "", "test", pass)
	if code != exitOK || !strings.Contains(out, "2 passed, 0 failed") {
		t.Fatalf("pass: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", "test", "--run", "restarts", "-v", pass)
	if code != exitOK || !strings.Contains(out, "1 passed, 0 failed") || !strings.Contains(out, "timeline:") {
		t.Fatalf("--run -v: %d\n%s", code, out)
	}

	fail := write(t, dir, "fail_test.yaml", `policy_files: [svc.yaml]
tests:
  - name: expects the wrong service
    input:
      - at: 0s
        event: {code: SERVICE_DOWN, labels: {service: bot}}
    expect:
      - at: 0s..5s
        action: RESTART_SERVICE
        policy: svc
        params: {service: web}
`)
	junit := filepath.Join(dir, "junit.xml")
	code, out, _ = run(t, "", "test", "--junit", junit, fail)
	if code != exitFailed {
		t.Fatalf("failing test exit %d", code)
	}
	for _, want := range []string{
		"fail_test.yaml:8:9: expected action RESTART_SERVICE by svc with map[service:web] at 0s..5s",
		"nearest decisions:", `svc{bot} action RESTART_SERVICE step 1 attempt 1 {service="bot"}`,
		"svc has no when: it fires on every event in on: [SERVICE_DOWN]", "0 passed, 1 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var suites struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
		} `xml:"testsuite"`
	}
	b, err := os.ReadFile(junit)
	if err != nil || xml.Unmarshal(b, &suites) != nil || len(suites.Suites) != 1 || suites.Suites[0].Failures != 1 {
		t.Fatalf("junit: %v %s", err, b)
	}

	bad := write(t, dir, "bad_test.yaml", "policy_files: [svc.yaml]\ntests:\n  - name: x\n    input:\n      - at: soon\n        event: {code: X}\n")
	if code, out, _ := run(t, "", "test", bad); code != exitBadInput || !strings.Contains(out, "bad_test.yaml:5:13: at:") {
		t.Fatalf("bad test file: %d\n%s", code, out)
	}
	if code, _, _ := run(t, "", "test", filepath.Join(dir, "missing_test.yaml")); code != exitBadInput {
		t.Fatal("missing file is not exit 2")
	}
}

func TestTestCommandExplainsCondition(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "cpu.yaml", "policies:\n  - name: cpu\n    on: [sample]\n    when: 'metrics.cpu_percent > 90'\n")
	f := write(t, dir, "cpu_test.yaml", `policy_files: [cpu.yaml]
tests:
  - name: fires on high cpu
    input:
      - at: 0s
        sample: {cpu_percent: 85}
    expect:
      - state: firing
        policy: cpu
`)
	code, out, _ := run(t, "", "test", f)
	if code != exitFailed || !strings.Contains(out, "+0s sample: when=false where metrics.cpu_percent=85") {
		t.Fatalf("%d\n%s", code, out)
	}
}

func TestReplay(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "svc.yaml", svcPolicy)
	rec := write(t, dir, "rec.jsonl", `# yesterday
{"time":"2026-01-04T10:00:00Z","code":"SERVICE_DOWN","labels":{"service":"bot"}}
{"time":"2026-01-04T10:00:05Z","code":"SERVICE_UP","labels":{"service":"bot"}}
{"time":"2026-01-05T09:00:00Z","code":"SERVICE_DOWN","labels":{"service":"web"}}
{"time":"2026-01-05T09:00:10Z","values":{"cpu_percent":12}}
`)
	code, out, errs := run(t, "", "replay", "--settle", "0s", "--from", rec, filepath.Join(dir, "svc.yaml"))
	if code != exitOK || !strings.Contains(out, "svc: would fire 2, would run RESTART_SERVICE×2, alert 3") {
		t.Fatalf("replay: %d\n%s%s", code, out, errs)
	}
	// With the default settle time, the web restart's wait for SERVICE_UP runs out and the
	// ladder's second attempt follows (10s backoff), then the ladder is used up.
	code, out, _ = run(t, "", "replay", "--quiet", "--since", "1h", "--from", rec, filepath.Join(dir, "svc.yaml"))
	if code != exitOK || !strings.Contains(out, "replayed 2 inputs") || !strings.Contains(out, "svc: would fire 1, would run RESTART_SERVICE×2, escalate 1, alert 2") || strings.Contains(out, "action RESTART") {
		t.Fatalf("--since --quiet: %d\n%s", code, out)
	}
	// From standard input, through the embedded defaults.
	code, out, _ = run(t, `{"time":"2026-01-05T09:00:00Z","code":"WA_DISCONNECTED","labels":{"reason":"network"}}`, "replay", "--from", "-")
	// The recording has no WA_CONNECTED: each attempt's wait for it runs out, so the
	// ladder goes on and escalates after 3 failures within the 10 minutes of settle time.
	if code != exitOK || !strings.Contains(out, "wa-reconnect: would fire 1, would run RECONNECT_WA×") || !strings.Contains(out, "escalate 1, alert 1") {
		t.Fatalf("stdin: %d\n%s", code, out)
	}
	// Two numbers (sessions): each one's incidents are summed apart, and the timeline
	// names the session's instance. b's logout stops b's reconnects only.
	code, out, _ = run(t, `{"time":"2026-01-05T09:00:00Z","code":"WA_LOGGED_OUT","labels":{"session":"b","reason":"401"}}
{"time":"2026-01-05T09:00:01Z","code":"WA_DISCONNECTED","labels":{"session":"a","reason":"network"}}
{"time":"2026-01-05T09:00:01Z","code":"WA_DISCONNECTED","labels":{"session":"b","reason":"after_logged_out"}}
{"time":"2026-01-05T09:00:04Z","code":"WA_CONNECTED","labels":{"session":"a"}}`, "replay", "--from", "-")
	if code != exitOK || !strings.Contains(out, "wa-reconnect{session=a}: would fire 1, would run RECONNECT_WA×1, alert 0") ||
		!strings.Contains(out, "wa-logged-out{session=b}: would fire 1,") || strings.Contains(out, "wa-reconnect{session=b}") ||
		!strings.Contains(out, "+3s      wa-reconnect{a} action RECONNECT_WA step 1 attempt 1") {
		t.Fatalf("two sessions: %d\n%s", code, out)
	}
	badRec := write(t, dir, "bad.jsonl", "{\"time\":\"2026-01-05T09:00:00Z\",\"code\":\"X\"}\n{\"time\":\"yesterday\",\"code\":\"X\"}\n{\"time\":\"2026-01-05T09:00:00Z\",\"cod\":\"X\"}\n")
	code, _, errs = run(t, "", "replay", "--from", badRec)
	if code != exitBadInput || !strings.Contains(errs, "bad.jsonl:2:") || !strings.Contains(errs, `bad.jsonl:3: json: unknown field "cod"`) {
		t.Fatalf("bad records: %d\n%s", code, errs)
	}
}

func TestCodesAndUsage(t *testing.T) {
	code, out, _ := run(t, "", "codes")
	if code != exitOK || !strings.Contains(out, "WA_TEMP_BAN") || !strings.Contains(out, "queue_<name>_depth") || !strings.Contains(out, "RECONNECT_WA") {
		t.Fatalf("codes: %d", code)
	}
	if code, _, errs := run(t, "", "frobnicate"); code != exitBadInput || !strings.Contains(errs, "unknown command") {
		t.Fatal("unknown command")
	}
	if code, out, _ := run(t, "", "help"); code != exitOK || !strings.Contains(out, "replay") {
		t.Fatal("help")
	}
}

func TestReplayFromDataDirectory(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d, err := store.OpenData(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC)
	d.Main.InsertEvents(ctx, []engine.Event{
		{Time: t0, Code: "QUEUE_STUCK", Source: "queue", Labels: map[string]string{"queue": "inbound"}},
		{Time: t0.Add(time.Minute), Code: "QUEUE_OK", Source: "queue", Labels: map[string]string{"queue": "inbound"}},
	})
	for i := 0; i < 30; i++ { // disk below 3% for five minutes
		d.Metrics.InsertSample(ctx, engine.Sample{Time: t0.Add(time.Duration(i) * 10 * time.Second), Values: map[string]float64{"disk_free_percent": 2}})
	}
	d.Close()
	code, out, errs := run(t, "", "replay", "--quiet", "--from", dir)
	if code != exitOK || !strings.Contains(out, "replayed 32 inputs") ||
		!strings.Contains(out, "queue-stuck: would fire 1, would run CLEAR_QUEUE×1") || !strings.Contains(out, "disk-critical: would fire 1") {
		t.Fatalf("%d\n%s%s", code, out, errs)
	}
	if code, _, _ := run(t, "", "replay", "--from", filepath.Join(t.TempDir(), "none.db")); code != exitBadInput {
		t.Fatal("a missing database is not bad input")
	}
}

func TestDeadletterCommand(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d, err := store.OpenData(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Main.Exec(ctx, `INSERT INTO dead_letters(queue, item_id, payload, reason, attempts, enqueued, dead_at) VALUES
		('inbound', 1, '{"text":"hi"}', 'failed 5 times: timeout', 5, 1, 2), ('outbound', 2, '"reply"', 'cleared', 1, 1, 2)`)
	d.Close()
	code, out, _ := run(t, "", "deadletter", "list", "--data", dir, "--queue", "inbound")
	if code != exitOK || !strings.Contains(out, "failed 5 times: timeout") || strings.Contains(out, "outbound") || !strings.Contains(out, "1 dead letter(s)") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", "deadletter", "replay", "--data", dir, "1")
	if code != exitOK || !strings.Contains(out, "replayed 1 item(s)") {
		t.Fatalf("replay: %d\n%s", code, out)
	}
	if code, out, _ := run(t, "", "deadletter", "list", "--data", dir); code != exitOK || !strings.Contains(out, "1 dead letter(s)") {
		t.Fatalf("pending after replay: %s", out)
	}
	if code, _, _ := run(t, "", "deadletter", "replay", "--data", dir, "1"); code != exitFailed {
		t.Fatal("replaying an already replayed letter succeeded")
	}
	if code, _, _ := run(t, "", "deadletter", "frob"); code != exitBadInput {
		t.Fatal("bad verb")
	}
}
