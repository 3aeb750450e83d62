package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/daemon"
)

// BenchmarkIngestDurableSingle posts one event per request from 16 clients: each 202 is
// answered only after the event is committed, and concurrent requests share a
// transaction (group commit).
func BenchmarkIngestDurableSingle(b *testing.B) {
	r := start(b, nil)
	body := []byte(`{"code": "BENCH_NOISE", "labels": {"i": "1"}}`)
	b.SetParallelism(8) // 8 × GOMAXPROCS (2 here) = 16 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.post(b, "/api/v1/events", body)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestFloodDaemon is BenchmarkFlood's daemon (the test binary run again), so that its
// memory is measured alone. It prints its address and runs until SIGTERM.
func TestFloodDaemon(t *testing.T) {
	dir := os.Getenv("REMEDY_BENCH_FLOOD")
	if dir == "" {
		t.Skip("helper process")
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Listen, cfg.Token = filepath.Join(dir, "data"), "127.0.0.1:0", token
	cfg.WhatsApp.Enabled = false
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", d.Addr())
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkFlood runs once: 300 POSTs of 1,000 events each, 30 at a time, at remedy in
// its own process. The figures: its resident memory before, at the peak (sampled every
// 50 ms) and after, and how the requests were answered (202, or 429/503 with
// Retry-After: refused, nothing kept in memory for them).
func BenchmarkFlood(b *testing.B) {
	dir := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodDaemon$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REMEDY_BENCH_FLOOD="+dir)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	line := make([]byte, 64)
	n, _ := out.Read(line)
	base := "http://" + strings.TrimSpace(strings.TrimPrefix(string(line[:n]), "ADDR "))
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the daemon does not serve")
		}
	}
	time.Sleep(3 * time.Second) // settled: this is what "before" measures
	pid := cmd.Process.Pid
	before := rssMB(pid)
	var events []map[string]any
	for i := range 1000 {
		events = append(events, map[string]any{"code": "BENCH_NOISE", "labels": map[string]string{"i": fmt.Sprint(i)}})
	}
	body, _ := json.Marshal(events)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			if v := uint64(rssMB(pid)); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	var accepted, refused, failed atomic.Int64
	work := make(chan struct{}, 300)
	for range 300 {
		work <- struct{}{}
	}
	close(work)
	started := time.Now()
	var wg sync.WaitGroup
	for range 300 {
		wg.Go(func() {
			for range work {
				req, _ := http.NewRequest("POST", base+"/api/v1/events", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusAccepted:
					accepted.Add(1)
				case (resp.StatusCode == 429 || resp.StatusCode == 503) && resp.Header.Get("Retry-After") != "":
					refused.Add(1)
				default:
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(started)
	time.Sleep(5 * time.Second) // the engine works through what it took
	close(stop)
	sampler.Wait()
	after := rssMB(pid)
	b.ReportMetric(before, "before_MB")
	b.ReportMetric(float64(peak.Load()), "peak_MB")
	b.ReportMetric(after, "after_MB")
	b.ReportMetric(float64(accepted.Load()), "accepted_posts")
	b.ReportMetric(float64(refused.Load()), "refused_posts")
	b.ReportMetric(float64(failed.Load()), "failed_posts")
	b.ReportMetric(float64(accepted.Load()*1000)/took.Seconds(), "events/s")
}
