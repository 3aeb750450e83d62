package bench

import (
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
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/process"
	waBinary "go.mau.fi/whatsmeow/binary"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/daemon"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// sessionsDaemon is what BenchmarkSessions hands the daemon process.
type sessionsDaemon struct {
	Trust   wafake.Trust `json:"trust"`
	Data    string       `json:"data"`
	Stores  []string     `json:"stores"` // one per session, named s000, s001, …
	Handler string       `json:"handler"`
	Stats   string       `json:"stats"` // where the daemon writes its goroutine count
	// IdleProfile: where the daemon writes its CPU profile of the idle window (SIGUSR1
	// starts it, SIGUSR2 ends it); "" for none.
	IdleProfile string `json:"idle_profile,omitempty"`
}

// sessionName is the name of session k in BenchmarkSessions.
func sessionName(k int) string { return fmt.Sprintf("s%03d", k) }

// yaml is the daemon's remedy.yaml: one `sessions:` entry per store, all sharing the
// `whatsapp:` block's handler; a single store is the old single-number form (the
// session "default"), so that the one-session point is today's remedy.
func (m sessionsDaemon) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\nlisten: 127.0.0.1:0\nwhatsapp:\n  enabled: true\n  send_per_minute: 10\n  handler: {url: %q}\n", m.Data, m.Handler)
	if len(m.Stores) == 1 {
		fmt.Fprintf(&b, "  store: %q\n", m.Stores[0])
		return b.String()
	}
	b.WriteString("sessions:\n")
	for k, s := range m.Stores {
		fmt.Fprintf(&b, "  - name: %s\n    store: %q\n", sessionName(k), s)
	}
	return b.String()
}

// TestSessionsDaemon is the daemon of BenchmarkSessions (the test binary run again):
// remedy with one session per store, paired to the fake server in the parent, the bot's
// webhook in the parent. It writes its goroutine count to Stats twice a second (a
// figure the parent cannot read from outside) and runs until SIGTERM.
func TestSessionsDaemon(t *testing.T) {
	env := os.Getenv("REMEDY_BENCH_SESSIONS")
	if env == "" {
		t.Skip("helper process")
	}
	var m sessionsDaemon
	if err := json.Unmarshal([]byte(env), &m); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("bench.yaml", []byte(m.yaml()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				tmp := m.Stats + ".tmp"
				if os.WriteFile(tmp, []byte(strconv.Itoa(runtime.NumGoroutine())), 0o600) == nil {
					os.Rename(tmp, m.Stats)
				}
			}
		}
	}()
	if m.IdleProfile != "" {
		go profileOnSignal(ctx, m.IdleProfile)
	}
	d, err := daemon.New(ctx, cfg, slog.New(slog.DiscardHandler), daemon.WithWhatsAppHTTP(m.Trust.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// profileOnSignal writes a CPU profile to path from SIGUSR1 to SIGUSR2.
func profileOnSignal(ctx context.Context, path string) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sig)
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-sig:
			if s == syscall.SIGUSR1 {
				if f, err := os.Create(path); err == nil {
					pprof.StartCPUProfile(f)
					defer f.Close()
				}
			} else {
				pprof.StopCPUProfile()
			}
		}
	}
}

// procFigures is what BenchmarkSessions reads of the daemon process.
type procFigures struct {
	rssMB, cpuPct                  float64
	goroutines, fds, sqlite, start float64
}

// sampleIdle measures the daemon process over window: its RSS at the end, its CPU time
// over the window as a percentage of one core, its goroutines, its open file descriptors
// and, among them, its SQLite database files (one per connection: the -wal and -shm
// files are not counted).
func sampleIdle(b *testing.B, pid int, stats string, window time.Duration) procFigures {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		b.Fatal(err)
	}
	t1, err := p.Times()
	if err != nil {
		b.Fatal(err)
	}
	w0 := time.Now()
	time.Sleep(window) // idle: this is what is measured
	t2, err := p.Times()
	if err != nil {
		b.Fatal(err)
	}
	cpu := (t2.User + t2.System - t1.User - t1.System) / time.Since(w0).Seconds() * 100
	var f procFigures
	f.rssMB, f.cpuPct = rssMB(pid), cpu
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	f.fds = float64(len(ents))
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.HasSuffix(l, ".db") {
			f.sqlite++
		}
	}
	if raw, err := os.ReadFile(stats); err == nil {
		f.goroutines, _ = strconv.ParseFloat(string(raw), 64)
	}
	return f
}

// delivered records when the bot's webhook got each benchmark message (by its text).
type delivered struct {
	mu  sync.Mutex
	at  map[string]time.Time
	all atomic.Int64
}

var benchText = regexp.MustCompile(`(?:load|lat) \d+ \d+`)

func (d *delivered) handler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if m := benchText.Find(body); m != nil {
		d.mu.Lock()
		if _, dup := d.at[string(m)]; !dup {
			d.at[string(m)] = time.Now()
			d.all.Add(1)
		}
		d.mu.Unlock()
	}
	w.Write([]byte(`{}`))
}

func (d *delivered) when(text string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.at[text]
	return t, ok
}

// runSessions starts the daemon process with the first n devices, waits until each has
// logged in, and returns its pid and how long that took. The process is stopped by the
// returned function (SIGTERM, then wait).
func runSessions(b *testing.B, s *wafake.Server, devs []wafake.PairedDevice, handler, profile string) (pid int, stats string, startup time.Duration, stop func()) {
	dir := b.TempDir()
	stores := make([]string, len(devs))
	for k, d := range devs {
		stores[k] = d.Path
	}
	stats = filepath.Join(dir, "goroutines")
	spec, _ := json.Marshal(sessionsDaemon{Trust: s.Trust(), Data: filepath.Join(dir, "data"), Stores: stores, Handler: handler, Stats: stats,
		IdleProfile: profile})
	cmd := exec.Command(os.Args[0], "-test.run=^TestSessionsDaemon$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REMEDY_BENCH_SESSIONS="+string(spec))
	cmd.Stderr = os.Stderr
	before := make([]int, len(devs)) // the devices may have logged in for an earlier count
	for k, d := range devs {
		before[k] = s.LoginsOf(d.User)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop = sync.OnceFunc(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	b.Cleanup(stop)
	exited := make(chan struct{})
	go func() { cmd.Process.Wait(); close(exited) }()
	for deadline := time.Now().Add(3 * time.Minute); ; {
		in := 0
		for k, d := range devs {
			if s.ConnOf(d.User) != nil && s.LoginsOf(d.User) > before[k] {
				in++
			}
		}
		if in == len(devs) {
			break
		}
		select {
		case <-exited:
			b.Fatalf("the daemon with %d sessions exited before logging in", len(devs))
		case <-time.After(50 * time.Millisecond): // the daemon starting
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sessions logged in within 3 minutes", in, len(devs))
		}
	}
	return cmd.Process.Pid, stats, time.Since(t0), stop
}

// BenchmarkSessions runs once (about two to three minutes): remedy in its own process
// with 1, 10, 50 and 100 sessions (each its own paired device, number and store) against
// one fake server here, and the bot's webhook here.
//   - idle, per count: RSS, CPU over the idle window (% of one core), goroutines, file
//     descriptors, SQLite database files open; the cost of one more session is the slope
//     from 10 to 100 sessions;
//   - with 100 sessions: 1,000 inbound messages a second spread over the 100 for
//     loadSeconds, and the time the backlog takes to drain after the burst;
//   - with 100 sessions: rounds of one message to each of sessions 1–99 at once, the
//     time until all 99 reached the bot, first with all connected, then for 30 s while
//     session 0's connection is dropped every 200 ms whenever it is up (a reconnect storm).
//
// The figures are printed (bench/run's table); nothing is asserted about speed.
func BenchmarkSessions(b *testing.B) {
	ctx := context.Background()
	s, err := wafake.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	got := &delivered{at: map[string]time.Time{}}
	bot := httptest.NewServer(http.HandlerFunc(got.handler))
	b.Cleanup(bot.Close)
	counts := []int{1, 10, 50, 100}
	window := 10 * time.Second
	if testing.Short() {
		counts, window = []int{1, 10}, 3*time.Second
	}
	if env := os.Getenv("REMEDY_BENCH_SESSION_COUNTS"); env != "" { // e.g. 1,10,200
		counts = nil
		for f := range strings.SplitSeq(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || len(counts) > 0 && n <= counts[len(counts)-1] {
				b.Fatalf("REMEDY_BENCH_SESSION_COUNTS=%q: increasing counts, at least 1", env)
			}
			counts = append(counts, n)
		}
	}
	top := counts[len(counts)-1]
	t0 := time.Now()
	devs, err := wafake.PairedStores(ctx, b.TempDir(), top)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(t0).Seconds(), "pair_stores_s")
	figs := map[int]procFigures{}
	var pid int
	for _, n := range counts {
		var stats string
		var startup time.Duration
		var stop func()
		profile := ""
		if n == top {
			profile = os.Getenv("REMEDY_BENCH_SESSIONS_IDLE_CPUPROFILE") // the top count's idle window
		}
		pid, stats, startup, stop = runSessions(b, s, devs[:n], bot.URL, profile)
		time.Sleep(5 * time.Second) // settling after the logins: not measured
		w := window
		if n == top {
			w = 3 * window // the headline figure: a longer window
		}
		if profile != "" {
			syscall.Kill(pid, syscall.SIGUSR1)
		}
		f := sampleIdle(b, pid, stats, w)
		if profile != "" {
			syscall.Kill(pid, syscall.SIGUSR2)
		}
		f.start = startup.Seconds()
		figs[n] = f
		unit := func(name string) string { return fmt.Sprintf("n%d_%s", n, name) }
		b.ReportMetric(f.rssMB, unit("idle_MB"))
		b.ReportMetric(f.cpuPct, unit("idle_cpu_pct"))
		b.ReportMetric(f.goroutines, unit("goroutines"))
		b.ReportMetric(f.fds, unit("fds"))
		b.ReportMetric(f.sqlite, unit("sqlite_files"))
		b.ReportMetric(f.start, unit("login_all_s"))
		if n != top {
			stop()
		}
	}
	if len(counts) >= 2 {
		// The slope from the second count (10) up: the first is the single-number form, whose
		// fixed cost (one daemon) the slope leaves out.
		from := counts[min(1, len(counts)-2)]
		lo, hi := figs[from], figs[top]
		per := func(f func(procFigures) float64) float64 { return (f(hi) - f(lo)) / float64(top-from) }
		b.ReportMetric(per(func(f procFigures) float64 { return f.rssMB }), "per_session_MB")
		b.ReportMetric(per(func(f procFigures) float64 { return f.cpuPct }), "per_session_cpu_pct")
		b.ReportMetric(per(func(f procFigures) float64 { return f.goroutines }), "per_session_goroutines")
		b.ReportMetric(per(func(f procFigures) float64 { return f.fds }), "per_session_fds")
		b.ReportMetric(per(func(f procFigures) float64 { return f.sqlite }), "per_session_sqlite_files")
	}

	// The open connection of each device, for the phones to deliver over; looked up
	// again when a send fails (session 0's, during the storm).
	conns := make([]*wafake.Conn, top)
	for k, d := range devs {
		conns[k] = s.ConnOf(d.User)
	}
	send := func(k int, m waBinary.Node) bool {
		if conns[k].Send(m) == nil {
			return true
		}
		if c := s.ConnOf(devs[k].User); c != nil {
			conns[k] = c
			return c.Send(m) == nil
		}
		return false
	}

	// 1,000 messages a second over the 100 sessions: four phones, each writing to the
	// sessions in turn, encrypted ahead so that the rate measures remedy.
	const rate, phones = 1000, 4
	seconds := loadSeconds()
	type msg struct {
		k    int
		node waBinary.Node
	}
	queues := make([][]msg, phones)
	for i := range queues {
		p, err := wafake.NewPhone(ctx, b.TempDir(), fmt.Sprintf("62811000020%02d", i))
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		for n := range rate * seconds / phones {
			k := (n*phones + i) % top
			m, err := p.Prepare(ctx, devs[k].Device, fmt.Sprintf("load %d %d", i, n))
			if err != nil {
				b.Fatal(err)
			}
			queues[i] = append(queues[i], msg{k, m})
		}
	}
	var sent atomic.Int64
	var sendMu sync.Mutex // conns[k] is shared by the phones
	peak := figs[top].rssMB
	t1 := time.Now()
	var wg sync.WaitGroup
	for _, q := range queues {
		wg.Go(func() {
			tick := time.NewTicker(time.Second * phones / rate)
			defer tick.Stop()
			for _, m := range q {
				<-tick.C
				sendMu.Lock()
				ok := send(m.k, m.node)
				sendMu.Unlock()
				if ok {
					sent.Add(1)
				}
			}
		})
	}
	wg.Wait()
	sending := time.Since(t1)
	for end := time.Now().Add(60 * time.Second); got.all.Load() < sent.Load() && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond) // the backlog drains
		peak = max(peak, rssMB(pid))
	}
	elapsed := time.Since(t1)
	b.ReportMetric(float64(sent.Load())/sending.Seconds(), "load_sent_msg/s")
	b.ReportMetric(float64(got.all.Load())/elapsed.Seconds(), "load_handled_msg/s")
	b.ReportMetric(float64(sent.Load()-got.all.Load()), "load_unhandled")
	b.ReportMetric((elapsed - sending).Seconds(), "load_drain_s")
	b.ReportMetric(peak, "load_peak_MB")
	b.ReportMetric(float64(seconds), "load_s")

	if top < 2 {
		return
	}
	// Rounds of one message to each of sessions 1..top-1, all at once: the time until
	// every one reached the bot. Then the same while session 0 reconnects in a loop.
	rounds, stormFor := 20, 30*time.Second
	if testing.Short() {
		rounds, stormFor = 5, 6*time.Second
	}
	lp, err := wafake.NewPhone(ctx, b.TempDir(), "6281100003000")
	if err != nil {
		b.Fatal(err)
	}
	defer lp.Close()
	// Enough rounds for the calm ones and a storm of stormFor (two a second at most).
	prepared := make([][]waBinary.Node, rounds+max(rounds, 2*int(stormFor/time.Second)))
	for r := range prepared {
		for k := 1; k < top; k++ {
			m, err := lp.Prepare(ctx, devs[k].Device, fmt.Sprintf("lat %d %d", r, k))
			if err != nil {
				b.Fatal(err)
			}
			prepared[r] = append(prepared[r], m)
		}
	}
	round := func(r int) (all time.Duration, each []time.Duration, lost int) {
		start := time.Now()
		for i, m := range prepared[r] {
			send(i+1, m)
		}
		for k := 1; k < top; k++ {
			text := fmt.Sprintf("lat %d %d", r, k)
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) { // polling the bot's record
				if at, ok := got.when(text); ok {
					each = append(each, at.Sub(start))
					all = max(all, at.Sub(start))
					break
				}
				if time.Now().After(deadline) {
					lost++
					break
				}
			}
		}
		return all, each, lost
	}
	// measure runs rounds, half a second apart, for at least n rounds and at least
	// lasting, from prepared[from]; false if it ran out of prepared rounds.
	measure := func(name string, from, n int, lasting time.Duration) int {
		var alls, each []time.Duration
		lost, r := 0, from
		for t0 := time.Now(); r < len(prepared) && (r-from < n || time.Since(t0) < lasting); r++ {
			a, e, l := round(r)
			alls, each, lost = append(alls, a), append(each, e...), lost+l
			time.Sleep(500 * time.Millisecond) // rounds apart, so each is measured on its own
		}
		slices.Sort(alls)
		slices.Sort(each)
		b.ReportMetric(float64(len(alls)), name+"_rounds")
		b.ReportMetric(ms(alls[len(alls)/2]), name+"_all99_p50_ms")
		b.ReportMetric(ms(alls[len(alls)-1]), name+"_all99_max_ms")
		b.ReportMetric(ms(each[len(each)*99/100]), name+"_msg_p99_ms")
		b.ReportMetric(float64(lost), name+"_lost")
		return r
	}
	next := measure("calm", 0, rounds, 0)
	// The storm: session 0's connection dropped every 200 ms, whenever it is up again
	// (remedy reconnects it through the wa-reconnect policy, after its 2 s `for` and
	// the login budget's backoff), for long enough to see several reconnects.
	user0 := devs[0].User
	logins0 := s.LoginsOf(user0)
	storm := make(chan struct{})
	var stormDone sync.WaitGroup
	stormDone.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-storm:
				return
			case <-tick.C:
				s.DropDevice(user0)
			}
		}
	})
	st := time.Now()
	measure("storm", next, rounds, stormFor)
	close(storm)
	stormDone.Wait()
	b.ReportMetric(float64(s.LoginsOf(user0)-logins0), "storm_logins_s0")
	b.ReportMetric(time.Since(st).Seconds(), "storm_s")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
