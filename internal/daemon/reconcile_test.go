package daemon

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/internal/config"
)

// A restart whose saved engine state cannot be read (a damaged engine_state row) starts
// the engine fresh; the incidents it was paging about are not left open in the alert
// pipeline — re-sent to Alertmanager every minute and never ended — but resolved with
// the reason on the channels that were told, so the badge, the API and every channel
// agree. The alerts recorded before stay.
func TestUnreadableEngineStateResolvesWhatWasOpen(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) {
		os.WriteFile(filepath.Join(c.Policies, "held.yaml"), []byte("policies:\n  - name: held\n    on: [HOLD]\n    resolve_on: [HOLD_OK]\n    group_by: [app]\n    alert: {channels: [log]}\n"), 0o644)
	})
	r.do("POST", "/api/v1/events", `[{"code":"HOLD","labels":{"app":"a"}},{"code":"HOLD","labels":{"app":"b"}}]`)
	type row struct {
		ID                      int64
		Policy, Instance, State string
		Reason                  string
	}
	list := func(r *running) []row {
		_, b := r.do("GET", "/api/v1/alerts", "")
		var alerts []row
		json.Unmarshal([]byte(b), &alerts)
		return alerts
	}
	r.eventually("two firing alerts", func() bool { return len(list(r)) == 2 })
	r.stop()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.cfg.DataDir, "remedy.db"))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := db.Exec(`UPDATE engine_state SET body = substr(body, 1, 40)`); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d engine_state rows", n)
	}
	db.Close()
	r2 := run(t, r.cfg, r.dir, r.opts)
	r2.eventually("the open incidents resolved", func() bool {
		n := 0
		for _, a := range list(r2) {
			if a.Policy == "held" && a.State == "resolved" && strings.Contains(a.Reason, "engine state lost") {
				n++
			}
		}
		return n == 2
	})
	if got := len(list(r2)); got != 4 {
		t.Fatalf("%d alerts, want the 2 firings and their 2 resolutions", got)
	}
	_, st := r2.do("GET", "/api/v1/status", "")
	if !strings.Contains(st, `"firing": 0`) {
		t.Fatalf("status: %s", st)
	}
	// It says so in the events, not only in the log.
	r2.eventually("POLICY_STATE_LOST", func() bool {
		_, b := r2.do("GET", "/api/v1/events", "")
		return strings.Contains(b, "POLICY_STATE_LOST")
	})
	// The same fault again is a new incident, notified.
	r2.do("POST", "/api/v1/events", `{"code":"HOLD","labels":{"app":"a"}}`)
	r2.eventually("a new firing", func() bool { a := list(r2); return len(a) == 5 && a[0].State == "firing" })
}
