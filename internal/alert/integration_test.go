package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/alert"
	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/policies"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// need finds a binary from Debian's packages, or skips saying what is missing.
func need(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("SKIPPED, NOT PASSED: %s is not installed (apt-get install -y %s; .ci/run does this)", bin, pkg)
	}
	return p
}

func start(t *testing.T, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	log, _ := os.Create(filepath.Join(t.TempDir(), filepath.Base(bin)+".log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// getJSON polls url until ok(decoded body) or the deadline.
func getJSON(t *testing.T, what, u string, ok func(any) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(u); err == nil {
			var v any
			json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if resp.StatusCode == 200 && ok(v) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%s)", what, u)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPrometheusScrapesMetrics(t *testing.T) {
	t.Parallel()
	bin := need(t, "prometheus", "prometheus")
	reg := prometheus.NewRegistry()
	m := monitor.NewMetrics(reg, func() engine.Sample {
		return engine.Sample{Values: map[string]float64{"cpu_percent": 12.5, "queue_inbound_depth": 3}}
	})
	m.ObserveEngine(engine.Stats{Inputs: 5})
	target := httptest.NewServer(m.Handler())
	defer target.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: remedy\n    static_configs: [{targets: ['%s']}]\n",
		target.Listener.Addr())), 0o644)
	addr := freeAddr(t)
	start(t, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	q := "http://" + addr + "/api/v1/query?query=" + url.QueryEscape(`remedy_queue_depth{queue="inbound"}`)
	getJSON(t, "the scraped queue depth", q, func(v any) bool {
		res := v.(map[string]any)["data"].(map[string]any)["result"].([]any)
		return len(res) == 1 && res[0].(map[string]any)["value"].([]any)[1] == "3"
	})
}

// startAlertmanager starts a real Alertmanager on loopback (skipping when it is not
// installed) and returns its base URL and a directory for the test's files.
func startAlertmanager(t *testing.T) (base, dir string) {
	t.Helper()
	bin := need(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir = t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(cfg, []byte("route: {receiver: default, group_wait: 0s}\nreceivers:\n  - name: default\n"), 0o644)
	addr := freeAddr(t)
	start(t, bin, "--config.file="+cfg, "--storage.path="+dir, "--web.listen-address="+addr, "--cluster.listen-address=")
	base = "http://" + addr
	getJSON(t, "Alertmanager ready", base+"/api/v2/status", func(any) bool { return true })
	return base, dir
}

func openStore(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Path: filepath.Join(dir, "remedy.db"), Schema: store.RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// withAlertmanager is a pipeline posting to a real Alertmanager as source, and an
// engine with the default policies.
func withAlertmanager(t *testing.T, source string) (base string, p *alert.Pipeline, e *engine.Engine) {
	t.Helper()
	base, dir := startAlertmanager(t)
	p, err := alert.New(context.Background(), alert.Options{DB: openStore(t, dir),
		Channels: []alert.Channel{alert.AlertmanagerChannel{URL: base, Source: source}}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := policies.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	return base, p, engine.New(set, engine.Options{Seed: 1})
}

func TestAlertReachesAlertmanager(t *testing.T) {
	t.Parallel()
	base, p, e := withAlertmanager(t, "test-bot")
	ctx := context.Background()
	// The fault: WhatsApp logs out. Time from the event to the alert in Alertmanager.
	began := time.Now()
	for _, d := range e.Process(engine.Event{Time: began, Code: "WA_LOGGED_OUT", Source: "whatsapp", Labels: map[string]string{"reason": "401"}}) {
		if err := p.Handle(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	p.Deliver(ctx)
	getJSON(t, "the alert in Alertmanager", base+"/api/v2/alerts", func(v any) bool {
		for _, a := range v.([]any) {
			l := a.(map[string]any)["labels"].(map[string]any)
			if l["alertname"] == "wa-logged-out" && l["severity"] == "critical" && l["remedy_instance"] == "test-bot" {
				return true
			}
		}
		return false
	})
	t.Logf("alert response time, fault event to the alert in Alertmanager's API: %v", time.Since(began).Round(time.Millisecond))
}

// Issue 14, item 5 (field case 07), against a real Alertmanager: queue-stuck fires
// (error), its CLEAR_QUEUE fails and it escalates (critical), then QUEUE_OK resolves it.
// While it fires only the critical label set is active; after the resolution no remedy
// alert is active at all.
func TestEscalatedIncidentEndsInAlertmanager(t *testing.T) {
	t.Parallel()
	base, p, e := withAlertmanager(t, "bot-1")
	ctx := context.Background()
	now := time.Now()
	var feed func(in engine.Input)
	feed = func(in engine.Input) {
		for _, d := range e.Process(in) {
			if err := p.Handle(ctx, d); err != nil {
				t.Fatal(err)
			}
			if d.Kind == engine.KindAction {
				// CLEAR_QUEUE fails (the watchdog's queue could not be cleared).
				defer feed(engine.Event{Time: d.Time.Add(time.Second), Code: engine.CodeActionFailed, Source: "executor",
					Labels: map[string]string{engine.LabelPolicy: d.Policy, engine.LabelInstance: d.Instance,
						engine.LabelDecision: strconv.FormatUint(d.ID, 10), engine.LabelAction: d.Action.Do}})
			}
		}
		p.Deliver(ctx)
	}
	feed(engine.Event{Time: now, Code: "QUEUE_STUCK", Source: "queue", Labels: map[string]string{"queue": "orders"}})
	for i := 0; i < 10 && e.Firing() > 0; i++ {
		if d := e.NextDeadline(); !d.IsZero() && d.Before(now.Add(10*time.Minute)) {
			feed(engine.Tick{Time: d})
		}
	}
	active := func() []string {
		resp, err := http.Get(base + "/api/v2/alerts?active=true")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v []struct {
			Labels map[string]string `json:"labels"`
		}
		json.NewDecoder(resp.Body).Decode(&v)
		var out []string
		for _, a := range v {
			if a.Labels["remedy_instance"] == "bot-1" {
				out = append(out, a.Labels["alertname"]+"/"+a.Labels["severity"])
			}
		}
		sort.Strings(out)
		return out
	}
	getJSON(t, "the escalated alert", base+"/api/v2/alerts?active=true", func(any) bool {
		return strings.Join(active(), ",") == "queue-stuck/critical"
	})
	feed(engine.Event{Time: e.Now().Add(time.Second), Code: "QUEUE_OK", Source: "queue", Labels: map[string]string{"queue": "orders"}})
	getJSON(t, "no remedy alert active", base+"/api/v2/alerts?active=true", func(any) bool { return len(active()) == 0 })
}
