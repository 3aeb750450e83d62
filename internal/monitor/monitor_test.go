package monitor

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedy-run/remedy/engine"
)

func TestCountersSlideOverAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCounters()
		c.Received(10)
		c.Failed(3)
		c.Sent(4)
		time.Sleep(30 * time.Second)
		c.Received(10)
		c.Processed(17)
		v := c.Values()
		if v["msgs_received_per_min"] != 20 || v["error_rate"] != 0.15 || v["msgs_sent_per_min"] != 4 || v["msgs_processed_per_min"] != 17 {
			t.Fatalf("%v", v)
		}
		time.Sleep(31 * time.Second) // the first burst left the window
		v = c.Values()
		if v["msgs_received_per_min"] != 10 || v["error_rate"] != 0 {
			t.Fatalf("after a minute: %v", v)
		}
	})
}

// Undecryptable messages never reach the pipeline, yet they are lost: they count in
// the error rate as failures of messages received (field case 12: 1 good, 20 bad).
func TestUndecryptableMessagesCountAsErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCounters()
		c.Received(1)
		c.Processed(1)
		c.Undecryptable(20)
		v := c.Values()
		if v["msgs_undecryptable_per_min"] != 20 || v["error_rate"] != 20.0/21 {
			t.Fatalf("%v", v)
		}
		time.Sleep(61 * time.Second)
		if v := c.Values(); v["msgs_undecryptable_per_min"] != 0 || v["error_rate"] != 0 {
			t.Fatalf("after a minute: %v", v)
		}
	})
}

func TestSampleReadsHostAndProcess(t *testing.T) {
	s := NewSampler(SamplerOptions{DataDir: t.TempDir(), Counters: NewCounters(),
		Sources: []Source{func(context.Context) map[string]float64 { return map[string]float64{"queue_inbound_depth": 3} }}})
	v := s.Sample(context.Background()).Values
	for _, k := range []string{"cpu_percent", "mem_percent", "disk_free_percent", "disk_free_mb", "process_rss_mb", "goroutines",
		"open_files", "msgs_received_per_min", "error_rate", "queue_inbound_depth"} {
		if _, ok := v[k]; !ok {
			t.Errorf("sample lacks %s", k)
		}
	}
	if v["process_rss_mb"] <= 1 || v["disk_free_percent"] <= 0 || v["disk_free_percent"] > 100 || v["mem_percent"] <= 0 {
		t.Fatalf("implausible: %v", v)
	}
	if s.Last().Values["queue_inbound_depth"] != 3 {
		t.Fatal("Last")
	}
}

// A Host replaces the machine: its readings, and only those, are the host's part of the
// sample; the process's Go figures, the counters and the sources are added as before.
func TestSamplerReadsItsHost(t *testing.T) {
	var dirs []string
	host := func(_ context.Context, dir string) map[string]float64 {
		dirs = append(dirs, dir)
		return map[string]float64{"cpu_percent": 97, "mem_percent": 12}
	}
	dir := t.TempDir()
	s := NewSampler(SamplerOptions{DataDir: dir, Host: host, Counters: NewCounters()})
	v := s.Sample(context.Background()).Values
	if v["cpu_percent"] != 97 || v["mem_percent"] != 12 || len(dirs) != 1 || dirs[0] != dir {
		t.Fatalf("sample %v, host read for %v", v, dirs)
	}
	for _, k := range []string{"disk_free_percent", "load1", "process_rss_mb"} {
		if _, ok := v[k]; ok {
			t.Errorf("%s came from the real machine: %v", k, v)
		}
	}
	if _, ok := v["goroutines"]; !ok {
		t.Errorf("no goroutines: %v", v)
	}
	if _, ok := v["error_rate"]; !ok {
		t.Errorf("no counters: %v", v)
	}
	// FixedHost hands out copies: a policy's sample cannot change the next one.
	h := HealthyHost()
	h(context.Background(), dir)["cpu_percent"] = 100
	if got := h(context.Background(), dir)["cpu_percent"]; got != 5 {
		t.Fatalf("HealthyHost's cpu_percent became %v", got)
	}
}

func TestSamplerRunsOnItsInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewSampler(SamplerOptions{Interval: 10 * time.Second, DataDir: t.TempDir()})
		ctx, cancel := context.WithCancel(context.Background())
		var got []time.Time
		start := time.Now()
		go s.Run(ctx, func(smp engine.Sample) { got = append(got, smp.Time) })
		time.Sleep(35 * time.Second)
		synctest.Wait()
		cancel()
		if len(got) != 4 || got[0] != start || got[1].Sub(start) != 10*time.Second {
			t.Fatalf("samples at %v", got)
		}
	})
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPrometheusExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	last := engine.Sample{Values: map[string]float64{"cpu_percent": 12.5, "queue_inbound_depth": 5, "queue_dead_letter_fill": 0.5,
		"service_node_bot_up": 1, "wa_connected": 1}}
	m := NewMetrics(reg, func() engine.Sample { return last })
	m.ObserveEngine(engine.Stats{Inputs: 42, Decisions: 7})
	m.PolicyFiring.WithLabelValues("wa-reconnect").Set(1)
	m.ActionOutcomes.WithLabelValues("RECONNECT_WA", "succeeded").Inc()
	m.AlertsSent.WithLabelValues("webhook").Add(2)
	m.Events.WithLabelValues("DB_BUSY").Inc()
	out := scrape(t, m.Handler())
	for _, want := range []string{
		"remedy_cpu_percent 12.5", `remedy_queue_depth{queue="inbound"} 5`, `remedy_queue_fill{queue="dead_letter"} 0.5`,
		`remedy_service_up{service="node_bot"} 1`, "remedy_wa_connected 1", "remedy_engine_inputs_total 42",
		"remedy_engine_decisions_total 7", `remedy_policy_firing_instances{policy="wa-reconnect"} 1`,
		`remedy_action_attempts_total{action="RECONNECT_WA",outcome="succeeded"} 1`, `remedy_alerts_sent_total{channel="webhook"} 2`, `remedy_events_total{code="DB_BUSY"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestReadinessAndScheduledChecks(t *testing.T) {
	h := NewHealth()
	dbOK := true
	h.Add("database_writable", func(context.Context) error {
		if !dbOK {
			return errors.New("disk full")
		}
		return nil
	})
	h.Add("engine", func(context.Context) error { return nil })
	srv := httptest.NewServer(http.HandlerFunc(h.Ready))
	defer srv.Close()
	if resp, _ := http.Get(srv.URL); resp.StatusCode != 200 {
		t.Fatalf("ready: %d", resp.StatusCode)
	}
	dbOK = false
	resp, _ := http.Get(srv.URL)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || !strings.Contains(string(b), `"database_writable":"disk full"`) {
		t.Fatalf("not ready: %d %s", resp.StatusCode, b)
	}
	var evs []string
	rec := func(ev engine.Event) { evs = append(evs, ev.Code+":"+ev.Labels["check"]) }
	h.CheckOnce(context.Background(), rec)
	h.CheckOnce(context.Background(), rec) // still failing: no second event
	dbOK = true
	h.CheckOnce(context.Background(), rec)
	if strings.Join(evs, " ") != "HEALTH_CHECK_FAILED:database_writable HEALTH_CHECK_OK:database_writable" {
		t.Fatalf("%v", evs)
	}
}

// BenchmarkSample measures what one sample of the host and process costs.
func BenchmarkSample(b *testing.B) {
	s := NewSampler(SamplerOptions{DataDir: b.TempDir(), Counters: NewCounters()})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.Sample(ctx)
	}
}
