// Package bench holds the end-to-end benchmarks of a running remedy: the ingest API over
// loopback, the dashboard's WebSocket fan-out, the time from a fault event to its alert
// at a channel, the daemon's memory (in its own process) at idle and under 1,000
// WhatsApp messages a second, and 1 to 100 WhatsApp sessions in one daemon
// (sessions_test.go). bench/run runs them with the engine's and the store's benchmarks
// and prints one table.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/shirou/gopsutil/v4/process"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/store/sqlstore"
	waLog "go.mau.fi/whatsmeow/util/log"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/daemon"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

const token = "bench"

// benchPolicies: a critical fault that alerts at once, one instance per label value.
// max_instances is raised past the default 1,000: every iteration is a new label value,
// and past the limit the alerts would go to the overflow instance under another summary.
const benchPolicies = `policies:
  - name: bench-fault
    on: [BENCH_FAULT]
    group_by: [n]
    max_instances: 10000000
    severity: critical
    annotations: {summary: 'bench fault {{ .labels.n }}'}
`

type remedy struct {
	d    *daemon.Daemon
	base string
}

// start runs a daemon in this process on a fresh data directory, with benchPolicies.
func start(tb testing.TB, mutate func(*config.Config), opts ...daemon.Option) *remedy {
	tb.Helper()
	return startWith(tb, benchPolicies, mutate, opts...)
}

// startWith runs a daemon with the given policies alone.
func startWith(tb testing.TB, policies string, mutate func(*config.Config), opts ...daemon.Option) *remedy {
	tb.Helper()
	dir := tb.TempDir()
	pol := filepath.Join(dir, "bench.yaml")
	os.WriteFile(pol, []byte(policies), 0o644)
	cfg := config.Default()
	cfg.DataDir, cfg.Policies, cfg.Listen, cfg.Token = filepath.Join(dir, "data"), pol, "127.0.0.1:0", token
	cfg.DefaultPolicies = false // the benchmark's policies alone
	cfg.WhatsApp.Enabled = false
	if mutate != nil {
		mutate(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return &remedy{d: d, base: "http://" + d.Addr()}
}

func (r *remedy) post(tb testing.TB, path string, body []byte) {
	req, _ := http.NewRequest("POST", r.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		tb.Fatalf("POST %s: %s", path, resp.Status)
	}
}

// BenchmarkIngestAPI posts events in batches of 100 over loopback HTTP, from 4 clients.
func BenchmarkIngestAPI(b *testing.B) {
	r := start(b, nil)
	var batch []map[string]any
	for i := range 100 {
		batch = append(batch, map[string]any{"code": "BENCH_NOISE", "labels": map[string]string{"i": fmt.Sprint(i)}})
	}
	body, _ := json.Marshal(batch)
	b.SetParallelism(1) // GOMAXPROCS clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.post(b, "/api/v1/events", body)
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFanout200 connects 200 dashboard clients to the live stream; each op is one
// event ingested and seen by all 200.
func BenchmarkFanout200(b *testing.B) {
	r := start(b, nil)
	const clients = 200
	var seen sync.Map // marker → *atomic.Int64 of clients that saw it
	ready := make(chan struct{}, clients)
	for range clients {
		c, _, err := websocket.DefaultDialer.Dial(strings.Replace(r.base, "http", "ws", 1)+"/api/v1/stream?token="+token, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		go func() {
			ready <- struct{}{}
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if i := bytes.Index(msg, []byte(`"fan-`)); i >= 0 {
					end := bytes.IndexByte(msg[i+1:], '"')
					if n, ok := seen.Load(string(msg[i+1 : i+1+end])); ok {
						n.(*atomic.Int64).Add(1)
					}
				}
			}
		}()
	}
	for range clients {
		<-ready
	}
	deliveries := 0
	var lat latencies
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		marker := fmt.Sprintf("fan-%d", i)
		n := &atomic.Int64{}
		seen.Store(marker, n)
		r.post(b, "/api/v1/events", []byte(`[{"code":"BENCH_NOISE","labels":{"m":"`+marker+`"}}]`))
		deadline := time.Now().Add(10 * time.Second)
		for n.Load() < clients {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d clients saw the event", n.Load(), clients)
			}
			time.Sleep(100 * time.Microsecond) // measuring arrival
		}
		lat = append(lat, time.Since(start))
		deliveries += clients
	}
	b.ReportMetric(float64(deliveries)/b.Elapsed().Seconds(), "deliveries/s")
	lat.report(b, "all200")
}

// BenchmarkFaultToAlert: one op is a fault event posted to the API until its critical
// alert reaches a webhook channel on loopback.
func BenchmarkFaultToAlert(b *testing.B) {
	got := make(chan string, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- string(body)
	}))
	defer hook.Close()
	r := start(b, func(c *config.Config) {
		c.Alerts.Webhook = &config.Endpoint{URL: hook.URL}
		c.Alerts.PerMinute = map[string]int{"webhook": 1_000_000}
	})
	var lat, ack latencies
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		n := fmt.Sprintf("f%d", i)
		r.post(b, "/api/v1/events", []byte(`[{"code":"BENCH_FAULT","labels":{"n":"`+n+`"}}]`))
		ack = append(ack, time.Since(start))
	wait:
		for {
			select {
			case body := <-got:
				if strings.Contains(body, "bench fault "+n) {
					break wait
				}
			case <-time.After(time.Minute): // a safety net, not a speed limit
				b.Fatalf("no alert for %s at the webhook within a minute", n)
			}
		}
		lat = append(lat, time.Since(start))
	}
	lat.report(b, "alert")
	ack.report(b, "ack")
}

// rssMB is the resident memory of a process, in MB.
func rssMB(pid int) float64 {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return 0
	}
	mi, err := p.MemoryInfo()
	if err != nil {
		return 0
	}
	return float64(mi.RSS) / (1 << 20)
}

// memoryDaemon is what BenchmarkMemory hands the daemon process.
type memoryDaemon struct {
	Trust   wafake.Trust `json:"trust"`
	Data    string       `json:"data"`
	Store   string       `json:"store"`
	Handler string       `json:"handler"`
}

// TestMemoryDaemon is the daemon of BenchmarkMemory (the test binary run again), so that
// its memory is measured alone: remedy with the default policies, WhatsApp paired to the
// fake server in the parent, the bot's webhook in the parent. It runs until SIGTERM.
func TestMemoryDaemon(t *testing.T) {
	env := os.Getenv("REMEDY_BENCH_DAEMON")
	if env == "" {
		t.Skip("helper process")
	}
	var m memoryDaemon
	if err := json.Unmarshal([]byte(env), &m); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = m.Data, "127.0.0.1:0"
	cfg.WhatsApp = config.WhatsApp{Enabled: true, Store: m.Store, SendPerMinute: 10, Handler: &config.Handler{URL: m.Handler}}
	cfg.Queues = map[string]config.Queue{"inbound": {Workers: 16}}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(ctx, cfg, slog.New(slog.DiscardHandler), daemon.WithWhatsAppHTTP(m.Trust.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkMemory runs once (it takes about 30 s, so the framework does not repeat it):
// remedy in its own process, WhatsApp paired to the fake server here, idle for 5 s, then
// 1,000 inbound messages a second for 10 s through the real client (encrypted here ahead
// of time by forty phones, decrypted by whatsmeow in the daemon, queued, handed to the
// bot's webhook here). The figures are the daemon process's resident memory.
func BenchmarkMemory(b *testing.B) {
	ctx := context.Background()
	s, err := wafake.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	var handled atomic.Int64
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		handled.Add(1)
		w.Write([]byte(`{}`))
	}))
	b.Cleanup(bot.Close)
	dir := b.TempDir()
	storePath := filepath.Join(dir, "whatsapp.db")
	if err := wafake.PairedStore(ctx, storePath); err != nil {
		b.Fatal(err)
	}
	container, err := sqlstore.New(ctx, "sqlite", "file:"+storePath+"?_pragma=foreign_keys(1)", waLog.Noop)
	if err != nil {
		b.Fatal(err)
	}
	dev, err := container.GetFirstDevice(ctx)
	container.Close()
	if err != nil {
		b.Fatal(err)
	}
	spec, _ := json.Marshal(memoryDaemon{Trust: s.Trust(), Data: filepath.Join(dir, "data"), Store: storePath, Handler: bot.URL})
	args := []string{"-test.run=^TestMemoryDaemon$", "-test.count=1"}
	if prof := os.Getenv("REMEDY_BENCH_DAEMON_CPUPROFILE"); prof != "" {
		// The daemon's own profile, to tell remedy's cost from the fake server's here.
		args = append(args, "-test.cpuprofile="+prof)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "REMEDY_BENCH_DAEMON="+string(spec))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	pid := cmd.Process.Pid
	var conn *wafake.Conn
	for deadline := time.Now().Add(60 * time.Second); conn == nil || s.Logins() == 0; {
		if time.Now().After(deadline) {
			b.Fatal("the daemon never logged in")
		}
		time.Sleep(20 * time.Millisecond) // the daemon starting
		s.Each(func(c *wafake.Conn) { conn = c })
	}
	time.Sleep(5 * time.Second) // idle: this is what is measured
	idle := rssMB(pid)

	// Forty customers' phones, over four senders: the inbound queue hands one chat's
	// messages to the bot one at a time, in order, so 1,000 a second from four chats
	// would measure four chats' handler round trips, not remedy (a single chat's rate is
	// bounded by its handler's answer time and a commit; see README, deliveries).
	const rate, senders, phones = 1000, 4, 40
	seconds := loadSeconds()
	// Encrypted ahead, so that the 1,000 a second measure remedy, not the phones.
	perPhone := make([][]waBinary.Node, phones)
	for i := range perPhone {
		p, err := wafake.NewPhone(ctx, b.TempDir(), fmt.Sprintf("6281100001%03d", i))
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		for n := range rate * seconds / phones {
			m, err := p.Prepare(ctx, dev, fmt.Sprintf("load %d-%d", i, n))
			if err != nil {
				b.Fatal(err)
			}
			perPhone[i] = append(perPhone[i], m)
		}
	}
	// Sender j takes phones j, j+4, …, in turn (each phone's messages in its order).
	queues := make([][]waBinary.Node, senders)
	for n := range rate * seconds / phones {
		for i := range phones {
			queues[i%senders] = append(queues[i%senders], perPhone[i][n])
		}
	}
	var sent atomic.Int64
	peak := idle
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * senders / rate)
			defer tick.Stop()
			for _, m := range q {
				<-tick.C
				if err := conn.Send(m); err == nil {
					sent.Add(1)
				}
			}
		}()
	}
	for time.Since(t0) < time.Duration(seconds)*time.Second {
		time.Sleep(500 * time.Millisecond) // sampling memory under load
		peak = max(peak, rssMB(pid))
	}
	wg.Wait()
	sending := time.Since(t0)
	for end := time.Now().Add(30 * time.Second); handled.Load() < sent.Load() && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond) // the backlog drains
		peak = max(peak, rssMB(pid))
	}
	elapsed := time.Since(t0)
	b.ReportMetric(idle, "idle_MB")
	b.ReportMetric(peak, "load_peak_MB")
	b.ReportMetric(float64(sent.Load())/sending.Seconds(), "sent_msg/s")
	b.ReportMetric(float64(handled.Load())/elapsed.Seconds(), "handled_msg/s")
	b.ReportMetric(float64(sent.Load()-handled.Load()), "unhandled")
	b.ReportMetric((elapsed - sending).Seconds(), "drain_s") // backlog left when sending stopped
	b.ReportMetric(float64(seconds), "load_s")
}

// loadSeconds is how long BenchmarkMemory sends 1,000 messages a second: 10 s, or 3 s
// with -short (bench/run --short, CI's form).
func loadSeconds() int {
	if testing.Short() {
		return 3
	}
	return 10
}
