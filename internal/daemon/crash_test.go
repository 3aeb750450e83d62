package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/internal/whatsapp"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// The crash test runs remedy in a child process: this test binary, re-executed with
// crashChildEnv set, so no separate build is needed and SIGKILL is real.
const crashChildEnv = "REMEDY_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	flag.Parse()
	// Most of this package's tests wait on real time (retry budgets, backoffs, child
	// processes, Chromium): at go test's default of GOMAXPROCS tests at once (2 on CI's
	// machine) its CPU sat idle more than half the time. 4 at once unless -parallel is given.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", "4")
	}
	os.Exit(m.Run())
}

const crashPolicies = `policies:
  - name: order-failed
    on: [ORDER_FAILED]
    when: 'event.labels.alert == "yes"'
    group_by: [seq]
    severity: error
    alert: {channels: [webhook]}
    annotations: {summary: 'order {{ .labels.seq }} failed'}
`

// crashChild is remedy under test: WhatsApp on against a fake server in this process
// (a phone writes to the bot every 20 ms), the alert webhook and the bot's handler in
// the parent. It prints "ADDR host:port" once it listens and runs until SIGTERM (a clean
// stop, exit 0) or SIGKILL.
func crashChild(dir string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	s, err := wafake.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer s.Close()
	waStore := filepath.Join(dir, "whatsapp.db")
	if _, err := os.Stat(waStore); err != nil {
		if err := wafake.PairedStore(ctx, waStore); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Policies, cfg.Listen = filepath.Join(dir, "data"), filepath.Join(dir, "policies"), "127.0.0.1:0"
	cfg.DefaultPolicies = false // its own policies alone
	cfg.SampleInterval = time.Hour
	cfg.Alerts.Webhook = &config.Endpoint{URL: os.Getenv("REMEDY_CRASH_HOOK")}
	cfg.WhatsApp = config.WhatsApp{Enabled: true, Store: waStore, SendPerMinute: 1000,
		Handler: &config.Handler{URL: os.Getenv("REMEDY_CRASH_BOT")}}
	cfg.WhatsApp.Send = config.Send{PerMinute: 60000, Burst: 1000, ChatPerMinute: 60000, ChatBurst: 1000} // the load, not the send rate, is under test
	// What reached WhatsApp, one line per message before its ack (TestCrashSends).
	serverLog, _ := os.OpenFile(filepath.Join(dir, "server-messages"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	defer serverLog.Close()
	s.OnMessage(func(m wafake.Message) { fmt.Fprintf(serverLog, "%s %s\n", m.ID, m.To) })
	d, err := New(ctx, cfg, slog.New(slog.DiscardHandler), WithWhatsAppHTTP(s.HTTPClient()), WithHost(monitor.HealthyHost()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := d.Listen(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("ADDR %s\n", d.Addr())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	go func() { // the phone: one message every 20 ms once connected
		pdir := filepath.Join(dir, "phone-"+strconv.Itoa(os.Getpid()))
		os.MkdirAll(pdir, 0o755)
		p, err := wafake.NewPhone(ctx, pdir, "6281100000077")
		if err != nil {
			fmt.Fprintln(os.Stderr, "phone:", err)
			return
		}
		defer p.Close()
		// What was sent and what the server got a receipt for (the client told WhatsApp
		// it has the message: it is never delivered again), one line each, written at
		// once so that a kill loses none the parent must check.
		sent, _ := os.OpenFile(filepath.Join(dir, "sent"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		defer sent.Close()
		for i := 0; ctx.Err() == nil; i++ {
			time.Sleep(20 * time.Millisecond)
			if d.sessions.Default().Conn().State() != whatsapp.Connected {
				continue
			}
			s.Each(func(fc *wafake.Conn) {
				text := fmt.Sprintf("msg-%d-%d", os.Getpid(), i)
				n, err := p.Prepare(ctx, d.sessions.Default().Conn().Client().Store, text)
				if err == nil {
					fmt.Fprintf(sent, "%s %s\n", n.Attrs["id"], text)
					err = fc.Send(n)
				}
				if err != nil && os.Getenv("REMEDY_CRASH_DEBUG") != "" {
					fmt.Fprintln(os.Stderr, "phone:", err)
				}
			})
		}
	}()
	go func() { // the receipts, as the server gets them
		f, _ := os.OpenFile(filepath.Join(dir, "receipts"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		defer f.Close()
		seen := 0
		for ctx.Err() == nil {
			rs := s.Receipts()
			for _, id := range rs[seen:] {
				fmt.Fprintln(f, id)
			}
			seen = len(rs)
			// Sampling the server's record, not waiting for anything: a receipt that
			// arrives in the last 5 ms before the kill goes unchecked, never miscounted.
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

// crashRig is the parent's side: the load, the alert webhook, the bot's handler, and
// what each has seen.
type crashRig struct {
	t   *testing.T
	dir string

	mu      sync.Mutex
	acked   map[int64]bool // ORDER_FAILED seq numbers answered 2xx
	alerted map[int64]int  // alert ids the webhook received, times
	handled map[string]bool
	samples int64
	seq     atomic.Int64
}

func newCrashRig(t *testing.T) (*crashRig, []string) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "policies"), 0o755)
	os.WriteFile(filepath.Join(dir, "policies", "p.yaml"), []byte(crashPolicies), 0o644)
	rig := &crashRig{t: t, dir: dir, acked: map[int64]bool{}, alerted: map[int64]int{}, handled: map[string]bool{}}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Alerts []struct{ ID int64 } }
		json.NewDecoder(r.Body).Decode(&body)
		rig.mu.Lock()
		for _, a := range body.Alerts {
			rig.alerted[a.ID]++
		}
		rig.mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		json.NewDecoder(r.Body).Decode(&m)
		rig.mu.Lock()
		rig.handled[m.Text] = true
		rig.mu.Unlock()
		fmt.Fprintf(w, `{"reply": "re: %s"}`, m.Text)
	}))
	t.Cleanup(bot.Close)
	return rig, []string{crashChildEnv + "=" + dir, "REMEDY_CRASH_HOOK=" + hook.URL, "REMEDY_CRASH_BOT=" + bot.URL}
}

// start runs the child and returns it with its base URL.
func (rig *crashRig) start(env []string) (*exec.Cmd, string) {
	rig.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if os.Getenv("REMEDY_CRASH_DEBUG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		rig.t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "ADDR ") {
		cmd.Process.Kill()
		cmd.Wait()
		rig.t.Fatalf("child did not start: %q %v\n%s", line, err, stderr.String())
	}
	go io.Copy(io.Discard, out)
	base := "http://" + strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	// Load starts once remedy serves, so that every kill point falls under load.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			rig.t.Fatalf("child does not serve:\n%s", stderr.String())
		}
	}
	return cmd, base
}

// load posts until stop: 8 clients of single events, 2 of batches of 100, 1 of
// samples. Every 10th event asks for an alert.
func (rig *crashRig) load(base string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(path string, body []byte) bool {
		resp, err := client.Post(base+path, "application/json", bytes.NewReader(body))
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode/100 == 2
	}
	event := func(n int64) map[string]any {
		alert := "no"
		if n%10 == 0 {
			alert = "yes"
		}
		return map[string]any{"code": "ORDER_FAILED", "source": "bot", "labels": map[string]string{"seq": strconv.FormatInt(n, 10), "alert": alert}}
	}
	for c := range 11 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch {
				case c < 8:
					n := rig.seq.Add(1)
					b, _ := json.Marshal(event(n))
					if post("/api/v1/events", b) {
						rig.mu.Lock()
						rig.acked[n] = true
						rig.mu.Unlock()
					}
				case c < 10:
					var evs []map[string]any
					var ns []int64
					for range 100 {
						n := rig.seq.Add(1)
						ns = append(ns, n)
						evs = append(evs, event(n))
					}
					b, _ := json.Marshal(evs)
					if post("/api/v1/events", b) {
						rig.mu.Lock()
						for _, n := range ns {
							rig.acked[n] = true
						}
						rig.mu.Unlock()
					}
				default:
					if post("/api/v1/samples", []byte(`{"values": {"crash_load": 1}}`)) {
						atomic.AddInt64(&rig.samples, 1)
					}
				}
			}
		})
	}
	return &wg
}

// crashFacts is what the database holds after a kill.
type crashFacts struct {
	found           map[int64]bool
	samples         int64
	alerts          int
	outboxPending   int
	alertsNoOutbox  int
	queueBadState   int
	inboundTexts    []string
	deadTexts       []string
	spoolTexts      []string // incoming messages waiting in the inbound spool
	outboundPending int
}

func readCrashFacts(t *testing.T, dataDir string) crashFacts {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Path: filepath.Join(dataDir, store.RemedyFile), Schema: store.RemedySchema})
	if err != nil {
		t.Fatalf("open after kill: %v", err)
	}
	defer db.Close()
	f := crashFacts{found: map[int64]bool{}}
	var seqs []string
	if err := db.Select(ctx, &seqs, `SELECT json_extract(labels, '$.seq') FROM events WHERE code = 'ORDER_FAILED'`); err != nil {
		t.Fatal(err)
	}
	for _, s := range seqs {
		n, _ := strconv.ParseInt(s, 10, 64)
		f.found[n] = true
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.Get(ctx, &f.alerts, `SELECT count(*) FROM alerts WHERE held = ''`))
	must(db.Get(ctx, &f.outboxPending, `SELECT count(*) FROM alert_outbox WHERE delivered = 0`))
	must(db.Get(ctx, &f.alertsNoOutbox, `SELECT count(*) FROM alerts a WHERE held = '' AND NOT EXISTS (SELECT 1 FROM alert_outbox o WHERE o.alert_id = a.id)`))
	must(db.Get(ctx, &f.queueBadState, `SELECT count(*) FROM queue_items WHERE state NOT IN ('ready', 'working')`))
	must(db.Select(ctx, &f.inboundTexts, `SELECT coalesce(json_extract(payload, '$.text'), '') FROM queue_items WHERE queue = 'inbound'`))
	must(db.Select(ctx, &f.deadTexts, `SELECT coalesce(json_extract(payload, '$.text'), '') FROM dead_letters WHERE queue = 'inbound'`))
	must(db.Get(ctx, &f.outboundPending, `SELECT count(*) FROM queue_items WHERE queue = 'outbound'`))
	sp, err := store.OpenSpool[chat.Message](spoolFile(dataDir, "inbound"), store.SpoolSize)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := sp.Peek(1 << 30)
	sp.Close()
	must(err)
	for _, m := range ms {
		f.spoolTexts = append(f.spoolTexts, m.Text)
	}
	mdb, err := store.OpenMetrics(ctx, store.Options{Path: filepath.Join(dataDir, store.MetricsFile)})
	if err != nil {
		t.Fatalf("open metrics after kill: %v", err)
	}
	defer mdb.Close()
	must(mdb.DB().Get(ctx, &f.samples, `SELECT count(*) FROM samples WHERE name = 'crash_load'`))
	return f
}

// unkept counts the incoming messages WhatsApp was told arrived (receipted) that are
// nowhere: not handled by the bot, not queued, not dead-lettered, not in the spool.
func (rig *crashRig) unkept(f crashFacts) (receipted, unkept int) {
	texts := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(rig.dir, "sent")); err == nil {
		for line := range strings.Lines(string(b)) {
			if id, text, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
				texts[id] = text
			}
		}
	}
	kept := map[string]bool{}
	for _, l := range [][]string{f.inboundTexts, f.deadTexts, f.spoolTexts} {
		for _, s := range l {
			kept[s] = true
		}
	}
	b, _ := os.ReadFile(filepath.Join(rig.dir, "receipts"))
	rig.mu.Lock()
	defer rig.mu.Unlock()
	for id := range strings.Lines(string(b)) {
		text := texts[strings.TrimSpace(id)]
		if text == "" {
			continue
		}
		receipted++
		if !kept[text] && !rig.handled[text] {
			unkept++
		}
	}
	return receipted, unkept
}

// Crash consistency: remedy killed with SIGKILL at seeded random moments under a mixed
// load (events one by one and in batches, samples, WhatsApp messages in and replies
// out, alerts firing). After every kill: each input answered 2xx is in the database, each
// alert stored has its outbox rows, queue items are only ready or working (a working
// item becomes ready at the next start); every inbound message seen queued is at the end
// handled, queued or dead-lettered; after a clean last run every alert is delivered.
func TestCrashConsistency(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills a child process 20 times")
	}
	// A race-built child starts several times slower; .ci/run runs the 20 kill points
	// again without -race, so -race keeps the package within go test's 10 minutes.
	kills, rng := crashPlan(t, 20, 6)
	rig, env := newCrashRig(t)
	dataDir := filepath.Join(rig.dir, "data")
	seenQueued := map[string]bool{}
	for k := range kills {
		cmd, base := rig.start(env)
		stop := make(chan struct{})
		wg := rig.load(base, stop)
		// The kill moment is the fault schedule, not a wait for behaviour.
		time.Sleep(time.Duration(100+rng.IntN(1400)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		close(stop)
		wg.Wait()
		f := readCrashFacts(t, dataDir)
		rig.mu.Lock()
		missing := 0
		for n := range rig.acked {
			if !f.found[n] {
				missing++
			}
		}
		acked := len(rig.acked)
		rig.mu.Unlock()
		if missing > 0 {
			t.Fatalf("kill %d: %d of %d acknowledged events missing after SIGKILL", k, missing, acked)
		}
		if f.samples < atomic.LoadInt64(&rig.samples) {
			t.Fatalf("kill %d: %d samples acknowledged, %d stored", k, atomic.LoadInt64(&rig.samples), f.samples)
		}
		if f.alertsNoOutbox > 0 || f.queueBadState > 0 {
			t.Fatalf("kill %d: %d alerts without outbox rows, %d queue items in no valid state", k, f.alertsNoOutbox, f.queueBadState)
		}
		for _, s := range f.inboundTexts {
			seenQueued[s] = true
		}
		receipted, unkept := rig.unkept(f)
		if unkept > 0 {
			t.Fatalf("kill %d: %d of %d incoming messages acknowledged to WhatsApp are neither handled, queued, dead-lettered nor spooled", k, unkept, receipted)
		}
		t.Logf("kill %d: %d acknowledged events, all found; %d samples; %d alerts (%d waiting); %d incoming messages acknowledged, all kept (%d queued, %d spooled); %d replies waiting",
			k, acked, f.samples, f.alerts, f.outboxPending, receipted, len(f.inboundTexts), len(f.spoolTexts), f.outboundPending)
	}
	// A last clean run delivers what waits: every stored alert reaches the webhook.
	cmd, base := rig.start(env)
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(base + "/api/v1/outbox")
		var pending []any
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&pending)
			resp.Body.Close()
		}
		if err == nil && len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d alerts after the last run's 90 s", len(pending))
		}
		time.Sleep(200 * time.Millisecond) // polling the outbox, not waiting for a guess
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	f := readCrashFacts(t, dataDir)
	rig.mu.Lock()
	defer rig.mu.Unlock()
	if f.outboxPending != 0 || len(rig.alerted) < f.alerts {
		t.Fatalf("after the last run: %d outbox rows pending, %d of %d alerts reached the webhook", f.outboxPending, len(rig.alerted), f.alerts)
	}
	dead := map[string]bool{}
	for _, s := range f.deadTexts {
		dead[s] = true
	}
	queued := map[string]bool{}
	for _, s := range f.inboundTexts {
		queued[s] = true
	}
	lost := 0
	for s := range seenQueued {
		if !rig.handled[s] && !dead[s] && !queued[s] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d inbound messages were queued and then neither handled, queued nor dead-lettered", lost)
	}
	missing := 0
	for n := range rig.acked {
		if !f.found[n] {
			missing++
		}
	}
	rig.mu.Unlock()
	receipted, unkept := rig.unkept(f)
	rig.mu.Lock()
	if unkept > 0 {
		t.Fatalf("%d of %d incoming messages acknowledged to WhatsApp were lost", unkept, receipted)
	}
	t.Logf("kill -9 over %d kill points: %d events acknowledged, %d found (%d missing); %d samples acknowledged, %d stored; %d alerts stored, %d delivered; %d inbound messages seen queued, %d handled, %d replies waiting; %d incoming messages acknowledged to WhatsApp, %d lost",
		kills, len(rig.acked), len(rig.acked)-missing, missing, rig.samples, f.samples, f.alerts, len(rig.alerted), len(seenQueued), len(rig.handled), f.outboundPending, receipted, unkept)
	if missing > 0 {
		t.Fatalf("%d acknowledged events missing", missing)
	}
}

// crashPlan is a crash test's number of kills (normal, or raceKills under -race;
// REMEDY_CRASH_KILLS overrides both) and its random source, seeded from the clock unless
// REMEDY_CRASH_SEED repeats a run (the seed is logged).
func crashPlan(t *testing.T, kills, raceKills int) (int, *rand.Rand) {
	if raceEnabled {
		kills = raceKills
	}
	if v, err := strconv.Atoi(os.Getenv("REMEDY_CRASH_KILLS")); err == nil && v > 0 {
		kills = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("REMEDY_CRASH_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (REMEDY_CRASH_SEED=%d to repeat)", seed, seed)
	return kills, rand.New(rand.NewPCG(seed, seed))
}
