package daemon

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// restartChild is what TestRestartChild (this test binary run again) is given.
type restartChild struct {
	Trust    wafake.Trust `json:"trust"`
	Dir      string       `json:"dir"`
	Store    string       `json:"store"`
	Policies string       `json:"policies"`
	Hook     string       `json:"hook"`
}

// TestRestartChild is the remedy process of TestRestartMidLadder: it writes its address
// to Dir/addr and runs until SIGTERM, or until the parent kills it.
func TestRestartChild(t *testing.T) {
	env := os.Getenv("REMEDY_RESTART_CHILD")
	if env == "" {
		t.Skip("helper process")
	}
	var c restartChild
	if err := json.Unmarshal([]byte(env), &c); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Listen, cfg.Policies = filepath.Join(c.Dir, "data"), "127.0.0.1:0", c.Policies
	cfg.DefaultPolicies = false // its own wa-reconnect alone
	cfg.SampleInterval = time.Hour
	cfg.WhatsApp = config.WhatsApp{Enabled: true, Store: c.Store, SendPerMinute: 10}
	cfg.Alerts.Webhook = &config.Endpoint{URL: c.Hook}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	d, err := New(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)), WithWhatsAppHTTP(c.Trust.Client()), WithHost(monitor.HealthyHost()))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(c.Dir, "addr.tmp"), []byte(d.Addr()), 0o644)
	os.Rename(filepath.Join(c.Dir, "addr.tmp"), filepath.Join(c.Dir, "addr"))
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// Issue 14, item 7: remedy is killed (SIGKILL) in the middle of a WhatsApp reconnect
// ladder and started again. The restarted remedy knows the incident: its next attempt
// is the one scheduled before the kill, no login is tried at start or before that time,
// and when WhatsApp is back the incident's resolution reaches the channel that was told
// it fired.
func TestRestartMidLadder(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a restart with real processes takes about 30 s")
	}
	s, err := wafake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	dir := t.TempDir()
	store := filepath.Join(dir, "whatsapp.db")
	if err := wafake.PairedStore(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var told []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Alerts []struct{ Policy, State string }
		}
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		for _, a := range body.Alerts {
			told = append(told, a.Policy+":"+a.State)
		}
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	hookTold := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(told, ",") }
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "wa.yaml"), []byte(`policies:
  - name: wa-reconnect
    on: [WA_DISCONNECTED]
    resolve_on: [WA_CONNECTED]
    actions:
      - do: RECONNECT_WA
        timeout: 2s
        attempts: 20
        backoff: {initial: 10s, max: 10s, multiplier: 1, jitter: none}
    alert: {channels: [webhook]}
`), 0o644)
	spec, _ := json.Marshal(restartChild{Trust: s.Trust(), Dir: dir, Store: store, Policies: pol, Hook: hook.URL})
	start := func() (*exec.Cmd, string) {
		os.Remove(filepath.Join(dir, "addr"))
		cmd := exec.Command(os.Args[0], "-test.run=^TestRestartChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "REMEDY_RESTART_CHILD="+string(spec))
		log, _ := os.Create(filepath.Join(dir, "child.log"))
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		var addr string
		waitUntil(t, "the child's address", 60*time.Second, func() bool {
			b, err := os.ReadFile(filepath.Join(dir, "addr"))
			addr = string(b)
			return err == nil && addr != ""
		})
		return cmd, "http://" + addr
	}
	get := func(base, path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	ladder := func(base string) (st engine.InstanceStatus, ok bool) {
		var ps []engine.PolicyStatus
		json.Unmarshal([]byte(get(base, "/api/v1/policies")), &ps)
		for _, p := range ps {
			if p.Name == "wa-reconnect" && len(p.Instances) == 1 {
				return p.Instances[0], true
			}
		}
		return st, false
	}

	cmd, base := start()
	waitUntil(t, "connected", 60*time.Second, func() bool { return strings.Contains(get(base, "/api/v1/status"), `"whatsapp": "connected"`) })
	s.Down()
	var before engine.InstanceStatus
	waitUntil(t, "the ladder waiting for its second attempt", 60*time.Second, func() bool {
		st, ok := ladder(base)
		before = st
		return ok && st.State == engine.Firing && st.NextAttempt != nil && !st.InFlight && strings.Contains(hookTold(), "wa-reconnect:firing")
	})
	next := *before.NextAttempt
	// The state writer has saved the schedule when the stored snapshot says so.
	waitUntil(t, "the saved state", 30*time.Second, func() bool {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "data", "remedy.db")+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			return false
		}
		defer db.Close()
		var body string
		if db.QueryRow(`SELECT body FROM engine_state WHERE id = 1`).Scan(&body) != nil {
			return false
		}
		var snap engine.Snapshot
		json.Unmarshal([]byte(body), &snap)
		return len(snap.Policies) == 1 && len(snap.Policies[0].Instances) == 1 && snap.Policies[0].Instances[0].NextAttempt.Equal(next)
	})
	attempts := s.Attempts()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	_, base = start()
	waitUntil(t, "the restarted API", 60*time.Second, func() bool { _, ok := ladder(base); return ok })
	after, _ := ladder(base)
	if after.State != engine.Firing || after.NextAttempt == nil || !after.NextAttempt.Equal(next) {
		t.Fatalf("after the restart: %+v, want firing with the next attempt at %v (as before the kill)", after, next)
	}
	if st := get(base, "/api/v1/status"); !strings.Contains(st, `"firing": 1`) {
		t.Fatalf("status after the restart: %s", st)
	}
	if time.Now().Before(next) && s.Attempts() != attempts {
		t.Fatalf("%d login attempts at start, before the ladder's next attempt at %v", s.Attempts()-attempts, next)
	}
	waitUntil(t, "the ladder's next attempt", 60*time.Second, func() bool { return s.Attempts() > attempts })
	if now := time.Now(); now.Before(next) {
		t.Fatalf("a login attempt at %v, before the scheduled %v", now, next)
	}
	s.Up()
	waitUntil(t, "the resolution delivered after the restart", 60*time.Second, func() bool {
		return strings.Contains(hookTold(), "wa-reconnect:resolved")
	})
	if got := hookTold(); !strings.HasSuffix(got, "wa-reconnect:resolved") {
		t.Fatalf("the webhook was told %s", got)
	}
}

func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
