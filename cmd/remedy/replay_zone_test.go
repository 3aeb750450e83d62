package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `remedy replay --from DATA_DIR` evaluates hour() in the time zone the daemon ran with
// (field case b2-11: the daemon, on timezone: Asia/Kolkata, fired an office-hours policy;
// the replay of its own recording, in UTC, said it would not). --config and --timezone
// choose the zone explicitly, --timezone first.
func TestReplayTakesTheDaemonsTimeZone(t *testing.T) {
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Skip("no time zone database")
	}
	dir := t.TempDir()
	// The hour in Kolkata now and in the next few minutes (the test may straddle an hour).
	h0, h1 := time.Now().In(kolkata).Hour(), time.Now().Add(5*time.Minute).In(kolkata).Hour()
	write(t, dir, "p.yaml", fmt.Sprintf("codes:\n  - {code: PAYMENT_ERROR, description: a payment failed}\npolicies:\n  - name: office-hours\n    on: [PAYMENT_ERROR]\n    when: 'hour() == %d || hour() == %d'\n", h0, h1))
	data := filepath.Join(dir, "data")
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+data+"\nlisten: 127.0.0.1:0\npolicies: "+filepath.Join(dir, "p.yaml")+
		"\ndefault_policies: false\nwhatsapp: {enabled: false}\ntimezone: Asia/Kolkata\n")
	base, cancel, done, stderr := startRun(t, cfg)
	resp, err := http.Post(base+"/api/v1/events", "application/json", strings.NewReader(`{"code":"PAYMENT_ERROR","source":"bot"}`))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("post: %v %v", err, resp)
	}
	resp.Body.Close()
	waitFor(t, "the daemon fired", func() bool {
		return strings.Contains(get(t, base+"/api/v1/decisions?policy=office-hours"), `"state": "firing"`)
	})
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("run: %d %s", code, stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", data}, "recorded by the daemon in " + filepath.Join(data, "remedy.run.json")},
		{[]string{"--from", filepath.Join(data, "remedy.db")}, "recorded by the daemon"},
		{[]string{"--from", data, "--config", cfg}, "from " + cfg},
		{[]string{"--from", data, "--timezone", "Asia/Kolkata", "--config", cfg}, "(--timezone)"},
	} {
		code, out, errs := run(t, "", append([]string{"replay", "--quiet"}, tc.args...)...)
		if code != exitOK || !strings.Contains(out, "office-hours: would fire 1") || !strings.Contains(out, "in Asia/Kolkata "+"("+strings.TrimPrefix(strings.TrimSuffix(tc.want, ")"), "(")) {
			t.Errorf("replay %v: %d\n%s%s", tc.args, code, out, errs)
		}
	}
	// Another zone (Kolkata is never on the same hour as UTC-10) and the policy stays quiet.
	code, out, _ := run(t, "", "replay", "--quiet", "--from", data, "--timezone", "Pacific/Honolulu")
	if code != exitOK || strings.Contains(out, "office-hours: would fire") {
		t.Fatalf("Honolulu: %d\n%s", code, out)
	}
}
