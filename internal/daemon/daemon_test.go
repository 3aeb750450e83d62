package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/policies"
)

const testPolicies = `policies:
  - name: custom-fault
    on: [CUSTOM_FAULT]
    group_by: [part]
    severity: error
    actions:
      - do: EXEC
        with: {command: "true"}
        timeout: 10s
    annotations: {summary: 'custom fault in {{ .labels.part }}'}
  - name: slow-burn
    on: [sample]
    when: 'metrics.burn > 5'
    for: 1h
`

// remedyPolicies is the default remedy.yaml, so reload failures alert.
func remedyPolicies(t *testing.T) string {
	files, contents, err := policies.DefaultFiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if filepath.Base(f) == "remedy.yaml" {
			return string(contents[f])
		}
	}
	t.Fatal("no remedy.yaml among the defaults")
	return ""
}

type running struct {
	t      *testing.T
	cfg    *config.Config
	opts   []Option
	d      *Daemon
	base   string
	token  string
	dir    string
	cancel context.CancelFunc
	done   chan error
}

func startDaemon(t *testing.T, mutate func(*config.Config), opts ...Option) *running {
	t.Helper()
	dir := t.TempDir()
	pdir := filepath.Join(dir, "policies")
	os.MkdirAll(pdir, 0o755)
	os.WriteFile(filepath.Join(pdir, "custom.yaml"), []byte(testPolicies), 0o644)
	os.WriteFile(filepath.Join(pdir, "remedy.yaml"), []byte(remedyPolicies(t)), 0o644)
	cfg := config.Default()
	cfg.DataDir, cfg.Policies, cfg.Listen = filepath.Join(dir, "data"), pdir, "127.0.0.1:0"
	cfg.SampleInterval = time.Hour // the tests post their own samples
	cfg.DefaultPolicies = false    // the tests' own policies only
	if mutate != nil {
		mutate(cfg)
	}
	if cfg.Policies == "" {
		cfg.DefaultPolicies = true // no policy path: the embedded defaults, as remedy run does
	}
	return run(t, cfg, dir, opts)
}

// run starts a daemon on cfg. Its sampler reads a fixed, healthy host (the machine's own
// load must not raise alerts in tests) unless opts give it another WithHost.
func run(t *testing.T, cfg *config.Config, dir string, opts []Option) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, cfg, slog.New(slog.DiscardHandler), append([]Option{WithHost(monitor.HealthyHost())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	r := &running{t: t, cfg: cfg, opts: opts, d: d, base: "http://" + d.Addr(), token: cfg.Token, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// stop shuts the daemon down (once; cleanups call it again).
func (r *running) stop() {
	r.cancel()
	if err, ok := <-r.done; ok {
		close(r.done)
		if err != nil {
			r.t.Errorf("shutdown: %v", err)
		}
	}
}

// restart starts a new daemon on the same configuration (after stop).
func (r *running) restart() *running {
	r.t.Helper()
	r.stop()
	return run(r.t, r.cfg, r.dir, r.opts)
}

func (r *running) do(method, path, body string, hdr ...string) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls the running daemon until cond holds. Its 30 s bound only catches
// "never": a recovery that waits out a retry backoff grown during a fault took more than
// 10 s under -race on a loaded machine.
func (r *running) eventually(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *running) policy(name string) map[string]any {
	_, body := r.do("GET", "/api/v1/policies", "")
	var ps []map[string]any
	json.Unmarshal([]byte(body), &ps)
	for _, p := range ps {
		if p["name"] == name {
			return p
		}
	}
	return nil
}

// The daemon's sampler reads the host it is given (the tests' fixed, healthy one by
// default; the real machine through gopsutil in remedy run).
func TestDaemonSamplesItsHost(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil, WithHost(monitor.FixedHost(map[string]float64{"cpu_percent": 97.5, "disk_free_percent": 42})))
	var st struct{ Sample map[string]float64 }
	r.eventually("the first sample", func() bool {
		_, b := r.do("GET", "/api/v1/status", "")
		json.Unmarshal([]byte(b), &st)
		return st.Sample != nil
	})
	if st.Sample["cpu_percent"] != 97.5 || st.Sample["disk_free_percent"] != 42 {
		t.Fatalf("the sample is not the given host's: %v", st.Sample)
	}
	if _, ok := st.Sample["mem_percent"]; ok {
		t.Fatalf("mem_percent came from the real machine: %v", st.Sample)
	}
}

func TestIngestToDecisionAuditAndAlert(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	code, body := r.do("POST", "/api/v1/events", `[{"code":"CUSTOM_FAULT","labels":{"part":"db"}},{"code":"NOTED","message":"hi"}]`)
	if code != http.StatusAccepted || !strings.Contains(body, `"accepted": 2`) {
		t.Fatalf("%d %s", code, body)
	}
	// EXEC true succeeds, which resolves the instance.
	r.eventually("the action in the audit", func() bool {
		_, b := r.do("GET", "/api/v1/actions", "")
		return strings.Contains(b, `"action": "EXEC"`) && strings.Contains(b, `"outcome": "succeeded"`)
	})
	r.eventually("the alert", func() bool {
		_, b := r.do("GET", "/api/v1/alerts", "")
		return strings.Contains(b, `"summary": "custom fault in db"`)
	})
	r.eventually("the resolution", func() bool {
		p := r.policy("custom-fault")
		inst, _ := p["instances"].([]any)
		return len(inst) == 1 && inst[0].(map[string]any)["state"] == "resolved"
	})
	r.eventually("the recorded events", func() bool {
		_, b := r.do("GET", "/api/v1/events", "")
		return strings.Contains(b, `"code": "NOTED"`) && strings.Contains(b, `"code": "ACTION_SUCCEEDED"`)
	})
	r.eventually("the decisions of the policy", func() bool {
		_, b := r.do("GET", "/api/v1/decisions?policy=custom-fault", "")
		return strings.Contains(b, `"state": "resolved"`) && strings.Contains(b, `"kind": "action"`) && !strings.Contains(b, `"policy": "slow-burn"`)
	})
	code, body = r.do("GET", "/api/v1/status", "")
	if code != 200 || !strings.Contains(body, `"database": "ok"`) || !strings.Contains(body, `"whatsapp": "unpaired"`) {
		t.Fatalf("%d %s", code, body)
	}
	code, body = r.do("GET", "/metrics", "")
	if code != 200 || !strings.Contains(body, `remedy_action_attempts_total{action="EXEC",outcome="succeeded"} 1`) {
		t.Fatalf("metrics: %s", body)
	}
}

func TestReloadKeepsOldSetOnErrorAndStateOnSuccess(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	r.do("POST", "/api/v1/samples", `{"values":{"burn":9}}`)
	var pendingUntil any
	r.eventually("slow-burn pending", func() bool {
		p := r.policy("slow-burn")
		inst, _ := p["instances"].([]any)
		if len(inst) == 1 && inst[0].(map[string]any)["state"] == "pending" {
			pendingUntil = inst[0].(map[string]any)["pending_until"]
			return true
		}
		return false
	})
	custom := filepath.Join(r.dir, "policies", "custom.yaml")
	os.WriteFile(custom, []byte(testPolicies+"  - name: broken\n    on: [sample]\n    when: 'metrics.burn >'\n"), 0o644)
	code, body := r.do("POST", "/api/v1/reload", "")
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `custom.yaml:17:25: policy \"broken\": when: unexpected token EOF`) {
		t.Fatalf("broken reload: %d %s", code, body)
	}
	r.eventually("POLICY_RELOAD_FAILED raised and alerted", func() bool {
		_, b := r.do("GET", "/api/v1/alerts", "")
		return strings.Contains(b, `"policy": "policy-reload-failed"`)
	})
	p := r.policy("slow-burn")
	if p == nil || p["instances"].([]any)[0].(map[string]any)["pending_until"] != pendingUntil {
		t.Fatalf("the old set stopped running: %v", p)
	}
	os.WriteFile(custom, []byte(testPolicies+"  - name: added\n    on: [ADDED_FAULT]\n"), 0o644)
	code, body = r.do("POST", "/api/v1/reload", "")
	if code != 200 || !strings.Contains(body, `"added": [`) || !strings.Contains(body, `"added"`) {
		t.Fatalf("good reload: %d %s", code, body)
	}
	p = r.policy("slow-burn")
	if p["instances"].([]any)[0].(map[string]any)["pending_until"] != pendingUntil {
		t.Fatal("an unchanged policy lost its pending timer across the reload")
	}
	if r.policy("added") == nil {
		t.Fatal("new policy missing")
	}
	r.eventually("the reload resolves the alert", func() bool {
		_, b := r.do("GET", "/api/v1/alerts", "")
		return strings.Contains(b, `"state": "resolved"`)
	})
	_, audit := r.do("GET", "/api/v1/actions", "")
	if !strings.Contains(audit, `"action": "RELOAD"`) {
		t.Fatal("reload diff not in the audit")
	}
}

func TestAPIRefusesBadInput(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) { c.Token = "t0ken" })
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		want                     string
	}{
		{"malformed JSON", "POST", "/api/v1/events", `{"code":`, nil, 400, "malformed"},
		{"wrong type", "POST", "/api/v1/events", `{"code": 5}`, nil, 400, "malformed event"},
		{"unknown field", "POST", "/api/v1/events", `{"code":"X","colour":"red"}`, nil, 400, "unknown field"},
		{"bad code", "POST", "/api/v1/events", `{"code":"lower case"}`, nil, 422, "upper case letters"},
		{"reserved code", "POST", "/api/v1/events", `{"code":"ACTION_SUCCEEDED","labels":{"policy":"x"}}`, nil, 403, "never comes from the API"},
		{"far future", "POST", "/api/v1/events", `{"code":"X","time":"2099-01-01T00:00:00Z"}`, nil, 422, "ahead"},
		{"oversized", "POST", "/api/v1/events", `{"code":"X","message":"` + strings.Repeat("a", 2<<20) + `"}`, nil, 413, "larger than the limit"},
		{"bad sample", "POST", "/api/v1/samples", `{"values":{"CPU":1}}`, nil, 422, "lower case"},
		{"bad silence", "POST", "/api/v1/silences", `{"matchers":{},"duration":"forever"}`, nil, 422, "duration"},
		{"silence on no label", "POST", "/api/v1/silences", `{"matchers":{"Bad Key":"x"},"duration":"1h","author":"a"}`, nil, 422, "unknown key"},
		{"silence on no severity", "POST", "/api/v1/silences", `{"matchers":{"severity":"critcal"},"duration":"1h","author":"a"}`, nil, 422, "severity"},
		{"silence on nothing", "POST", "/api/v1/silences", `{"matchers":{"policy":""},"duration":"1h","author":"a"}`, nil, 422, "empty"},
		{"unknown policy", "POST", "/api/v1/policies/nope/try", `{"event":{"code":"X"}}`, nil, 404, "no policy"},
		{"missing token", "GET", "/api/v1/status", "", []string{"Authorization", ""}, 401, "token"},
		{"wrong token", "GET", "/api/v1/status", "", []string{"Authorization", "Bearer nope"}, 401, "token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := r.do(c.method, c.path, c.body, c.hdr...)
			if code != c.status || !strings.Contains(body, c.want) || !strings.Contains(body, `"error"`) {
				t.Fatalf("%d %s", code, body[:min(len(body), 300)])
			}
		})
	}
	// The health endpoints need no token (for load balancers and systemd).
	if code, _ := r.do("GET", "/healthz", "", "Authorization", ""); code != 200 {
		t.Fatal("healthz")
	}
	// The WebSocket refuses a foreign origin and a missing token.
	ws := "ws" + strings.TrimPrefix(r.base, "http") + "/api/v1/stream?token=t0ken"
	if _, resp, err := websocket.DefaultDialer.Dial(ws, http.Header{"Origin": {"http://evil.example"}}); err == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: %v", err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(strings.TrimSuffix(ws, "?token=t0ken"), nil); err == nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v", err)
	}
	conn, _, err := websocket.DefaultDialer.Dial(ws, http.Header{"Origin": {r.base}})
	if err != nil {
		t.Fatalf("same origin with token: %v", err)
	}
	defer conn.Close()
	if code, body := r.do("POST", "/api/v1/events", `{"code":"LIVE_CHECK"}`); code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("no live event: %v", err)
		}
		if bytes.Contains(msg, []byte("LIVE_CHECK")) {
			break
		}
	}
}

func TestPolicyFileWatch(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) { c.WatchPolicies = true })
	custom := filepath.Join(r.dir, "policies", "custom.yaml")
	os.WriteFile(custom, []byte(testPolicies+"  - name: watched\n    on: [WATCHED_FAULT]\n"), 0o644)
	r.eventually("the watched change to load", func() bool { return r.policy("watched") != nil })
}

func TestTryPolicyFromTheAPI(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	code, body := r.do("POST", "/api/v1/policies/custom-fault/try", `{"event":{"code":"CUSTOM_FAULT","labels":{"part":"x"}}}`)
	if code != 200 || !strings.Contains(body, `"matched": true`) || !strings.Contains(body, "not run: dry_run") {
		t.Fatalf("%d %s", code, body)
	}
	// The running engine was not touched.
	if p := r.policy("custom-fault"); len(p["instances"].([]any)) != 0 {
		t.Fatalf("try changed the live state: %v", p)
	}
}

var _ = fmt.Sprint
