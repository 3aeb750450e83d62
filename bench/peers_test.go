package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/config"
)

// The peers side by side: Debian's Prometheus and Alertmanager on loopback, and remedy,
// watching the same fault and delivering to one webhook receiver. The fault is a gauge
// of an exporter that flips between 0 and 1. Prometheus scrapes it and evaluates an
// alerting rule that Alertmanager routes to the receiver. remedy learns it two ways: as
// an event pushed when it happens (how remedy's own adapters report a disconnect or a
// full disk), and as a sample read from the exporter at Prometheus's scrape interval (a
// like-for-like poll). Each cycle raises the fault, waits for every firing notification,
// clears it, waits for every resolution, and after a second raises it again: the first
// cycle gives the first-fire latency, the later ones the re-fire latency (a fault that
// comes back soon after it cleared, while Alertmanager still holds its group).

// peerConfig is one way of running the peers.
type peerConfig struct {
	name                  string
	scrape, eval          time.Duration // Prometheus global scrape_interval, evaluation_interval
	groupWait, groupEvery time.Duration // Alertmanager route group_wait, group_interval
	remedyAlert           string        // remedy's alert: block ("" = its defaults)
	cycles                int
	wait                  time.Duration // the longest any one notification may take
}

var (
	// peersTuned: everything that delays a notification turned down.
	peersTuned = peerConfig{name: "tuned", scrape: time.Second, eval: time.Second, groupWait: 0, groupEvery: time.Second,
		remedyAlert: "alert: {rate_limit: {count: 100, per: 1m}}", cycles: 4, wait: time.Minute}
	// peersDefault: the values of Prometheus's example configuration (15 s scrape and
	// evaluation, as Debian ships it) and Alertmanager's defaults (group_wait 30 s,
	// group_interval 5 m); remedy with its own defaults (rate_limit 1 per 5 m).
	peersDefault = peerConfig{name: "default", scrape: 15 * time.Second, eval: 15 * time.Second, groupWait: 30 * time.Second,
		groupEvery: 5 * time.Minute, cycles: 2, wait: 7 * time.Minute}
)

// BenchmarkPeersTuned runs the peers with short intervals: about 30 s. It is part of
// bench/run. Like BenchmarkMemory it measures once, whatever b.N (run it with
// -benchtime 1x).
func BenchmarkPeersTuned(b *testing.B) { benchPeers(b, peersTuned) }

// BenchmarkPeersDefault runs the peers with default intervals: about 16 minutes, so it
// runs only with `bench/run --peers-default`.
func BenchmarkPeersDefault(b *testing.B) { benchPeers(b, peersDefault) }

// arrival is one alert seen by the receiver.
type arrival struct {
	who, state string // who: am, remedy-event, remedy-sample; state: firing, resolved
	at         time.Time
}

type receiver struct {
	mu  sync.Mutex
	log []arrival
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	var body struct {
		Alerts []struct {
			Status, State, Policy string
		} `json:"alerts"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, a := range body.Alerts {
		switch {
		case r.URL.Path == "/am":
			rc.log = append(rc.log, arrival{"am", a.Status, at})
		case a.Policy == "peer-event":
			rc.log = append(rc.log, arrival{"remedy-event", a.State, at})
		case a.Policy == "peer-sample":
			rc.log = append(rc.log, arrival{"remedy-sample", a.State, at})
		}
	}
}

// first is the first arrival of who in state at or after since.
func (rc *receiver) first(who, state string, since time.Time) (time.Time, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, a := range rc.log {
		if a.who == who && a.state == state && !a.at.Before(since) {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// waitAll waits for each of whos to arrive in state after since, up to wait; the
// latency of each, or -1 for one that did not arrive.
func (rc *receiver) waitAll(whos []string, state string, since time.Time, wait time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for deadline := since.Add(wait); ; {
		done := true
		for _, w := range whos {
			if at, ok := rc.first(w, state, since); ok {
				out[w] = at.Sub(since)
			} else {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond) // polling the receiver's log; 2 ms resolution
	}
	for _, w := range whos {
		if _, ok := out[w]; !ok {
			out[w] = -1
		}
	}
	return out
}

func loopbackAddr(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// runBinary starts a peer, logging to a file in dir, and stops it at cleanup.
func runBinary(tb testing.TB, dir, bin string, args ...string) {
	cmd := exec.Command(bin, args...)
	log, _ := os.Create(filepath.Join(dir, filepath.Base(bin)+".log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); log.Close() })
}

// pollUntil polls u until ok(body) or a minute passes.
func pollUntil(tb testing.TB, what, u string, ok func([]byte) bool) {
	for deadline := time.Now().Add(time.Minute); ; {
		if resp, err := http.Get(u); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && ok(body) {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not ready after a minute (%s)", what, u)
		}
		time.Sleep(100 * time.Millisecond) // a peer starting
	}
}

func benchPeers(b *testing.B, pc peerConfig) {
	// Looked up on PATH (Debian installs them in /usr/bin), so that a copy elsewhere can
	// be measured and the skip can be seen with a PATH that lacks them.
	var missing []string
	lookup := func(bin string) string {
		p, err := exec.LookPath(bin)
		if err != nil {
			missing = append(missing, bin)
		}
		return p
	}
	prom, am := lookup("prometheus"), lookup("prometheus-alertmanager")
	if len(missing) > 0 {
		b.Skipf("SKIPPED: %s not found on PATH (apt-get install -y prometheus prometheus-alertmanager; "+
			".ci/run does this); no peer figures", strings.Join(missing, " and "))
	}
	dir := b.TempDir()
	var fault atomic.Int64
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE bench_fault gauge\nbench_fault %d\n", fault.Load())
	}))
	b.Cleanup(exporter.Close)
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	b.Cleanup(hook.Close)

	amAddr := loopbackAddr(b)
	amCfg := fmt.Sprintf(`route: {receiver: hook, group_by: [alertname], group_wait: %s, group_interval: %s, repeat_interval: 4h}
receivers:
  - name: hook
    webhook_configs: [{url: '%s/am', send_resolved: true}]
`, pc.groupWait, pc.groupEvery, hook.URL)
	os.WriteFile(filepath.Join(dir, "am.yml"), []byte(amCfg), 0o644)
	runBinary(b, dir, am, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")
	promAddr := loopbackAddr(b)
	os.WriteFile(filepath.Join(dir, "rules.yml"), []byte("groups:\n  - name: bench\n    rules:\n      - alert: BenchFault\n        expr: bench_fault > 0\n"), 0o644)
	promCfg := fmt.Sprintf(`global: {scrape_interval: %s, evaluation_interval: %s}
rule_files: ['%s']
alerting:
  alertmanagers: [{static_configs: [{targets: ['%s']}]}]
scrape_configs:
  - job_name: exporter
    static_configs: [{targets: ['%s']}]
`, pc.scrape, pc.eval, filepath.Join(dir, "rules.yml"), amAddr, exporter.Listener.Addr())
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promCfg), 0o644)
	runBinary(b, dir, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "prom"),
		"--web.listen-address="+promAddr)

	policies := fmt.Sprintf(`policies:
  - name: peer-event
    on: [BENCH_FAULT]
    resolve_on: [BENCH_FAULT_CLEARED]
    severity: critical
    %[1]s
  - name: peer-sample
    on: [sample]
    when: 'metrics.bench_fault > 0'
    severity: critical
    %[1]s
`, pc.remedyAlert)
	r := startWith(b, policies, func(c *config.Config) {
		c.Alerts.Webhook = &config.Endpoint{URL: hook.URL + "/remedy"}
		c.Alerts.PerMinute = map[string]int{"webhook": 1_000_000}
	})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go feedSamples(ctx, r, exporter.URL, pc.scrape)

	pollUntil(b, "Alertmanager", "http://"+amAddr+"/api/v2/status", func([]byte) bool { return true })
	pollUntil(b, "Prometheus scraping the exporter", "http://"+promAddr+"/api/v1/query?query="+url.QueryEscape(`up{job="exporter"}`),
		func(body []byte) bool { return bytes.Contains(body, []byte(`"1"]`)) })
	pollUntil(b, "Prometheus's alerting rule loaded", "http://"+promAddr+"/api/v1/rules",
		func(body []byte) bool { return bytes.Contains(body, []byte("BenchFault")) })

	whos := []string{"am", "remedy-event", "remedy-sample"}
	first := map[string]time.Duration{}
	refire := map[string]latencies{}
	missed := map[string]int{}
	cycles := pc.cycles
	if testing.Short() {
		cycles = min(cycles, 2) // bench/run --short: the first fire and one re-fire
	}
	for cycle := 0; cycle < cycles; cycle++ {
		t0 := time.Now()
		fault.Store(1)
		r.post(b, "/api/v1/events", []byte(`[{"code":"BENCH_FAULT"}]`))
		got := rc.waitAll(whos, "firing", t0, pc.wait)
		for _, w := range whos {
			switch {
			case got[w] < 0:
				missed[w]++
			case cycle == 0:
				first[w] = got[w]
			default:
				refire[w] = append(refire[w], got[w])
			}
		}
		t1 := time.Now()
		fault.Store(0)
		r.post(b, "/api/v1/events", []byte(`[{"code":"BENCH_FAULT_CLEARED"}]`))
		rc.waitAll(whos, "resolved", t1, pc.wait)
		time.Sleep(time.Second) // the fault stays away a moment before it comes back
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, w := range whos {
		name := strings.ReplaceAll(w, "-", "_")
		if d, ok := first[w]; ok {
			b.ReportMetric(ms(d), name+"_first_ms")
		}
		if l := refire[w]; len(l) > 0 {
			l.report(b, name+"_refire")
		}
		b.ReportMetric(float64(missed[w]), name+"_missed")
	}
	if first["am"] > 0 && first["remedy-event"] > 0 {
		b.ReportMetric(float64(first["am"])/float64(first["remedy-event"]), "first_ratio")
	}
	if a, e := refire["am"], refire["remedy-event"]; len(a) > 0 && len(e) > 0 {
		b.ReportMetric(float64(median(a))/float64(median(e)), "refire_ratio")
	}
}

// feedSamples reads the exporter every interval and posts its value to remedy as a
// sample, as a poller of the exporter would.
func feedSamples(ctx context.Context, r *remedy, exporter string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		resp, err := http.Get(exporter)
		if err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "bench_fault "); ok {
					if f, err := strconv.ParseFloat(v, 64); err == nil {
						req, _ := http.NewRequestWithContext(ctx, "POST", r.base+"/api/v1/samples",
							strings.NewReader(fmt.Sprintf(`{"values":{"bench_fault":%g}}`, f)))
						req.Header.Set("Authorization", "Bearer "+token)
						req.Header.Set("Content-Type", "application/json")
						if resp, err := http.DefaultClient.Do(req); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
					}
				}
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
