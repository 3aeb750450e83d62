package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 25: every fresh start logged a warning about data/media (the upload pruner read
// a directory no upload had made yet). The rule: a first start on an empty data
// directory, with the defaults (WhatsApp on, unpaired), logs nothing at warning level or
// above from start to a clean stop but the one that asks for the operator's action (pair
// WhatsApp) — a warning on a healthy start teaches operators to ignore warnings.
func TestFreshStartLogsNoWarning(t *testing.T) {
	dir := t.TempDir()
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+filepath.Join(dir, "data")+"\nlisten: 127.0.0.1:0\nlog: {format: json}\n")
	base, cancel, done, stderr := startRun(t, cfg)
	waitFor(t, "readyz", func() bool { return strings.Contains(get(t, base+"/readyz"), `"ready":true`) })
	cancel() // Run returns after every actor did (the pruner's first pass included)
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no shutdown")
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue // the "dashboard on" line
		}
		if (rec.Level == "WARN" || rec.Level == "ERROR") && !strings.HasPrefix(rec.Msg, "WhatsApp is not paired: use the Pair button") {
			t.Errorf("a fresh start logged: %s\n%s", line, stderr.String())
		}
	}
}
