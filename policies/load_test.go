package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each bad file with every message it must produce, exactly and in order.
var badFiles = map[string][]string{
	"unknown_key":  {`4:5: policy "cpu": unknown key "severty" (known: actions, alert, annotations, breaker, description, enabled, escalate, for, group_by, inhibits, keep_firing_for, labels, max_instances, mode, name, on, rearm, resolve_on, retry_on, severity, stable_for, when)`},
	"missing_name": {`2:5: policy without a name`},
	"inhibits": {
		`5:20: policy "logged-out": inhibits[0].policies: "Wa-Reconnect" is not a policy name or a prefix ending in *`,
		`6:17: policy "logged-out": inhibits[0].equal: "bad-label" is not a label name`,
		`7:9: policy "logged-out": inhibits[1]: policies: must name at least one policy`,
	},
	"by_not_grouped":    {`5:35: policy "by-zone": when: count: by (zone): zone is not in the policy's group_by [db], so the instance has no value for it; match it with {zone="…"} instead`},
	"bad_name":          {`2:11: policy "High CPU": name "High CPU": use lower case letters, digits, '.', '_' and '-', starting with a letter or digit`},
	"duplicate_name":    {`4:5: policy "cpu": duplicate name (first defined at testdata/duplicate_name.bad.yaml:2:5)`},
	"unknown_action":    {`5:9: policy "svc": actions[0]: unknown action "REBOOT_HOST" (known: CLEAN_DATA, CLEAR_QUEUE, EXEC, NOTIFY, RECONNECT_WA, RESET_DB, RESET_STATE, RESTART_SERVICE, WEBHOOK)`},
	"bad_duration":      {`4:10: policy "cpu": for: invalid duration "5 minutes" (use e.g. 30s, 5m, 2h, 1d)`},
	"bad_glob":          {`3:10: policy "db": on: "DB_*_BUSY" is not an event code or glob (upper case, digits and _, with an optional trailing *)`},
	"expr_syntax":       {`4:32: policy "cpu": when: unexpected token EOF`},
	"expr_type_block":   {`6:29: policy "cpu": when: invalid operation: > (mismatched types float64 and string)`},
	"expr_unknown_name": {`4:12: policy "cpu": when: unknown name cpu_percent`},
	"mistyped":          {`7:19: policy "svc": actions[0].attempts must be a whole number, got a string`},
	"bad_severity":      {`4:15: policy "cpu": severity must be info, warning, error or critical, got "urgent"`},
	"missing_on":        {`2:5: policy "cpu": missing on: (event codes, or [sample])`},
	"sample_mixed":      {`3:5: policy "cpu": on: sample cannot be mixed with event codes; write two policies`},
	"missing_param":     {`5:9: policy "q": actions[0]: CLEAR_QUEUE needs with.queue (queue name)`},
	"unknown_param":     {`6:30: policy "svc": actions[0]: RESTART_SERVICE has no parameter "signal" (known: service, grace)`},
	"bad_param_value":   {`6:16: policy "hook": actions[0].with.url: not an http(s) URL: "ftp://example.invalid/hook"`},
	"bad_template":      {`5:16: policy "svc": annotations.summary: bad template: function "down" not defined`},
	"firing_unknown":    {`4:11: policy "wa": when: firing("wa-logged-oot") names no policy`},
	// firing("policy", "label", …): the one-argument rules, and the labels' own.
	"firing_labels": {
		`5:11: policy "wa": when: firing("wa-gone") names no policy`,
		`8:12: policy "wa2": when: not enough arguments to call firing`,
		`11:39: policy "wa3": when: firing: arguments must be string constants`,
		`14:26: policy "wa4": when: firing: "session-name" is not a label name`,
	},
	"not_a_list":          {`3:9: policy "wa": on must be a list, e.g. [WA_DISCONNECTED], got a string`},
	"invalid_yaml":        {`3:9: invalid YAML: "[" is not closed (expected ',' or ']')`},
	"resolve_on_same":     {`4:5: policy "wa": resolve_on: WA_DISCONNECTED is also in on:, so the policy would resolve as it fires`},
	"window_not_constant": {`4:36: policy "cpu": when: avg_over: invalid duration "5 min" (use e.g. 30s, 5m, 2h, 1d)`},
	"breaker_incomplete":  {`5:14: policy "svc": breaker: missing within`, `5:14: policy "svc": breaker: missing open_for`},
	"rearm_without_retry_on": {`5:5: policy "wa": rearm restarts an exhausted ladder on a retry_on event, but the policy has no retry_on`,
		`10:20: policy "wa2": rearm.count must be at least 1, got 0`, `10:28: policy "wa2": rearm.per must be positive`,
		// A negative per is one error, at the value.
		`15:28: policy "wa3": rearm.per: must not be negative`},
	"backoff_order": {
		`7:28: policy "svc": actions[0].backoff: max (1m0s) is less than initial (10m0s)`,
		`7:50: policy "svc": actions[0].backoff.jitter must be full, equal or none, got "sometimes"`,
	},
	// All errors at once, across policies.
	"many_errors": {
		`4:10: policy "one": for: invalid duration "soon" (use e.g. 30s, 5m, 2h, 1d)`,
		`5:15: policy "one": severity must be info, warning, error or critical, got "loud"`,
		`10:9: policy "two": actions[0]: CLEAR_QUEUE needs with.queue (queue name)`,
		`11:18: policy "two": actions[0].timeout must be positive`,
		`13:27: policy "two": alert.notify_on: "paged" is not firing, escalated or resolved`,
		`14:18: policy "two": alert.channels: unknown channel "pager" (known: whatsapp, webhook, alertmanager, log, dashboard)`,
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
			set, err := Load(path)
			if err == nil {
				t.Fatalf("loaded %d policies, want errors", len(set.Policies))
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T, want Errors", err)
			}
			var got []string
			for _, d := range errs {
				got = append(got, d.String())
			}
			for i := range want {
				want[i] = path + ":" + want[i]
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadDirectoryOrderAndTestFilesSkipped(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", "policies:\n  - name: b\n    on: [DB_BUSY]\n")
	write("a.yml", "policies:\n  - name: a\n    on: [DB_BUSY]\n")
	write("a_test.yaml", "not: a policy file\n")
	write("notes.txt", "ignored\n")
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range set.Policies {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "a,b" {
		t.Fatalf("policies %v, want a,b in file order", names)
	}
}

func TestStrictWarnings(t *testing.T) {
	set, err := ParseFiles([]string{"w.yaml"}, map[string][]byte{"w.yaml": []byte(`
policies:
  - name: w
    on: [NOT_A_KNOWN_CODE]
    mode: dry_run
    actions:
      - do: RESTART_SERVICE
        with: {service: bot}
      - do: EXEC
        with: {command: /bin/true}
        timeout: 5s
  - name: s
    on: [sample]
    when: 'event.code == "X" || metrics.cpu_precent > 1'
  - name: f
    on: [sample]
    when: 'false'
  - name: g
    on: [WA_DISCONNECTED]
    when: '!firing("w", "session") && !firing("g", "session")'
    group_by: [session]
`)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range set.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`w.yaml:3:5: warning: policy "w": unknown event code "NOT_A_KNOWN_CODE" (see remedy codes; declare your own under codes:)`,
		`w.yaml:7:9: warning: policy "w": actions[0] (RESTART_SERVICE) has no timeout; 30s is used`,
		`w.yaml:9:9: warning: policy "w": actions[1] (EXEC): in dry_run only the first attempt is recorded (no result comes back), so this is never reached`,
		`w.yaml:14:11: warning: policy "s": can never fire: a sample policy has no event, but when reads event.code`,
		`w.yaml:14:11: warning: policy "s": unknown metric "cpu_precent" (see remedy codes)`,
		`w.yaml:17:11: warning: policy "f": can never fire: when is false`,
		`w.yaml:20:11: warning: policy "g": when: firing("w", "session"): the instances of w have no label "session" (not in its group_by or labels), so only an event without session matches`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHashIgnoresPositionAndWords(t *testing.T) {
	a := "policies:\n  - name: p\n    on: [DB_BUSY]\n    description: one\n"
	b := "\n\npolicies:\n  - name: p\n    description: two\n    on: [DB_BUSY]\n    annotations: {summary: hi}\n"
	c := "policies:\n  - name: p\n    on: [DB_BUSY]\n    for: 1m\n"
	hash := func(src string) string {
		set, err := ParseFiles([]string{"x.yaml"}, map[string][]byte{"x.yaml": []byte(src)})
		if err != nil {
			t.Fatal(err)
		}
		return set.Policies[0].Hash
	}
	if hash(a) != hash(b) {
		t.Error("moving a policy or changing its description changed its hash")
	}
	if hash(a) == hash(c) {
		t.Error("changing for: did not change the hash")
	}
}

func TestBadTestFiles(t *testing.T) {
	tests := map[string]string{
		"tests:\n  - name: x\n": `t.yaml:1:1: missing policy_files: (the policies under test)`,
		"policy_files: [a.yaml]\ntests:\n  - name: x\n    input:\n      - at: 5 seconds\n        event: {code: X}\n": `t.yaml:5:13: at: invalid duration "5 seconds" (use e.g. 30s, 5m, 2h, 1d)`,
		"policy_files: [a.yaml]\ntests:\n  - name: x\n    input:\n      - at: 1m..2m\n        event: {code: X}\n":    `t.yaml:5:13: at: a range for an input needs 'every', e.g. 2m..20m every 30s`,
		"policy_files: [a.yaml]\ntests:\n  - name: x\n    outcomes: {RECONNECT_WA: [maybe]}\n":                       `t.yaml:4:31: outcomes.RECONNECT_WA: "maybe": want ok, fail, timeout or none, optionally followed by 'after DURATION'`,
		"policy_files: [a.yaml]\ntests:\n  - name: x\n    expect:\n      - policy: p\n":                              `t.yaml:5:9: expect: give exactly one of action:, alert: or state:`,
	}
	for src, want := range tests {
		_, err := ParseTestFile("t.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v\nwant %s", err, want)
		}
	}
}

// FuzzParse checks that no input makes the parser panic, and that whatever it accepts
// has a name and at least one on: code.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	defaults, _ := filepath.Glob("defaults/*.yaml")
	for _, p := range append(files, defaults...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, _ := Parse("fuzz.yaml", data)
		for _, p := range ps {
			if p.Name == "" || len(p.On) == 0 {
				t.Fatalf("accepted a policy without name or on: %+v", p)
			}
		}
	})
}

func TestActionSpecChecks(t *testing.T) {
	s, _ := LookupAction("WEBHOOK")
	url, _ := s.Param("url")
	if url.Check("https://hooks.example.invalid/x") != nil || url.Check("ftp://x") == nil {
		t.Fatal("url check")
	}
	r, _ := LookupAction("RESTART_SERVICE")
	grace, _ := r.Param("grace")
	if grace.Check("10s") != nil || grace.Check("-1s") == nil || grace.Check("soon") == nil {
		t.Fatal("duration check")
	}
	if len(ActionSpecs()) != 9 {
		t.Fatalf("%d built-in actions", len(ActionSpecs()))
	}
	_, err := ParseFiles([]string{"e.yaml"}, map[string][]byte{"e.yaml": []byte(
		"policies:\n  - name: e\n    on: [SERVICE_DOWN]\n    actions:\n      - do: EXEC\n        with: {command: 'restart {{ .labels.service }}'}\n")})
	if err == nil || !strings.Contains(err.Error(), "e.yaml:6:16: policy \"e\": actions[0].with.command: must be written out in the policy file") {
		t.Fatalf("EXEC template: %v", err)
	}
}
