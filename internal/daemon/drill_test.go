package daemon

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/drill"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/web"
)

// drillDaemon runs the default policies with WhatsApp connected to the fake server, a
// supervised process, fast checks and a token (drills need one).
func drillDaemon(t *testing.T) *running {
	r, _ := startWithWhatsApp(t, true, func(c *config.Config) {
		c.Policies, c.DefaultPolicies, c.Token = "", true, "drill-token"
		c.CheckInterval = 200 * time.Millisecond
		c.Services = []config.Service{{Name: "bot", Command: []string{"sleep", "3600"}, Grace: time.Second}}
		c.Queues = map[string]config.Queue{"inbound": {StuckAfter: time.Second}}
	})
	r.eventually("the service up", func() bool {
		_, b := r.do("GET", "/api/v1/status", "")
		return strings.Contains(b, `"up": true`)
	})
	return r
}

// Each drill through the API, as `remedy drill` runs it: the fault is real, and the
// default policies detect it and recover.
func TestDrills(t *testing.T) {
	t.Parallel()
	r := drillDaemon(t)
	c := &drill.Client{Base: r.base, Token: r.token, Poll: 50 * time.Millisecond}
	for _, tc := range []struct {
		req    web.DrillRequest
		action string // a recovery attempt the report must show ("" when none is expected)
	}{
		{web.DrillRequest{Scenario: "whatsapp"}, "RECONNECT_WA succeeded"},
		{web.DrillRequest{Scenario: "service"}, "RESTART_SERVICE succeeded"},
		{web.DrillRequest{Scenario: "database", Seconds: 6}, ""}, // the retry is the recovery
		{web.DrillRequest{Scenario: "queue", Seconds: 3}, "CLEAR_QUEUE succeeded"},
	} {
		t.Run(tc.req.Scenario, func(t *testing.T) {
			ctx := context.Background()
			st, err := c.Start(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := c.Watch(ctx, st, drill.WatchOptions{Timeout: 30 * time.Second, AlertWait: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			rep.Write(&out)
			// Watch may end at WA_CONNECTED before the reconnect's decision and audit row
			// are written (decisions are logged in batches; on a busy machine the gap
			// outlasts a poll): the attempt must show up, not necessarily by then.
			for deadline := time.Now().Add(30 * time.Second); tc.action != "" && !strings.Contains(out.String(), tc.action) && time.Now().Before(deadline); {
				time.Sleep(c.Poll)
				if rep, err = c.Read(ctx, st); err != nil {
					t.Fatal(err)
				}
				out.Reset()
				rep.Write(&out)
			}
			t.Log("\n" + out.String())
			if !rep.Passed() {
				_, evs := r.do("GET", "/api/v1/events?limit=50", "")
				t.Fatalf("the drill did not pass; events:\n%s", evs)
			}
			if tc.action != "" && !strings.Contains(out.String(), tc.action) {
				t.Fatalf("no %q in the report", tc.action)
			}
			if rep.Detected.After > rep.Recovered.After+time.Second {
				t.Fatalf("detected after recovery: %v", rep)
			}
		})
	}
}

// Drills are refused without a token, for an unknown scenario, and when they cannot run.
func TestDrillRefusals(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil) // no token, WhatsApp off
	if code, b := r.do("POST", "/api/v1/drills", `{"scenario":"database"}`); code != 403 || !strings.Contains(b, "token") {
		t.Fatalf("without a token: %d %s", code, b)
	}
	r2 := startDaemon(t, func(c *config.Config) { c.Token = "t"; c.WhatsApp.Enabled = false })
	for body, want := range map[string]string{
		`{"scenario":"meteor"}`:                "400",
		`{"scenario":"whatsapp"}`:              "409 WhatsApp is off",
		`{"scenario":"service"}`:               "409 name the service (0 are supervised)",
		`{"scenario":"queue"}`:                 "409 WhatsApp is off",
		`{"scenario":"database","seconds":-1}`: "400",
		`{"scenario":"database","extra":1}`:    "400",
	} {
		code, b := r2.do("POST", "/api/v1/drills", body)
		parts := strings.SplitN(want, " ", 2)
		if got := strings.TrimSpace(strings.Split(b, "\n")[0]); want[:3] != strconv.Itoa(code) || (len(parts) == 2 && !strings.Contains(b, parts[1])) {
			t.Errorf("%s: %d %s (%s)", body, code, b, got)
		}
	}
}

// Stopping remedy in the middle of a database drill ends the drill: the lock is
// released, the waiting writes finish, and shutdown is clean (before, the drill's
// goroutine outlived the databases).
func TestShutdownEndsADrill(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) { c.Token = "t"; c.WhatsApp.Enabled = false })
	c := &drill.Client{Base: r.base, Token: r.token}
	if _, err := c.Start(context.Background(), web.DrillRequest{Scenario: "database", Seconds: 600}); err != nil {
		t.Fatal(err)
	}
	r.stop() // fails the test if shutdown returns an error
	// The drill's lock is gone with remedy: the file takes a write at once.
	db, err := sqlx.Open("sqlite", "file:"+filepath.Join(r.cfg.DataDir, store.RemedyFile)+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO state(key, data, updated) VALUES ('after', '{}', 1)`); err != nil {
		t.Fatalf("write after shutdown: %v (the drill still holds the lock)", err)
	}
}
