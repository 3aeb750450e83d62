package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/drill"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/internal/whatsapp"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"github.com/remedy-run/remedy/web"
)

// The seed's seven fault scenarios against the real parts: the real whatsmeow client on
// a fake server on loopback, real SQLite files, real child processes, the embedded
// default policies. Each runs twice: with recovery, and with recovery off (dry_run, so
// policies detect and alert but act on nothing, and the store's retry off: what a bot
// without remedy gets). A workload stands for the bot's own traffic during the fault;
// its failures are the error rate.

// op is one operation of the workload.
type op struct {
	start, end time.Time
	ok         bool
}

// workload records operations.
type workload struct {
	mu  sync.Mutex
	ops []op
}

func (w *workload) add(start time.Time, ok bool) {
	w.mu.Lock()
	w.ops = append(w.ops, op{start, time.Now(), ok})
	w.mu.Unlock()
}

// every runs f every interval from now until the window (from t0) ends.
func (w *workload) every(t0 time.Time, window, interval time.Duration, f func() bool) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for time.Since(t0) < window {
		start := time.Now()
		w.add(start, f())
		<-tick.C
	}
}

// recovered is when the workload was back to normal, measured from t0: the end of the
// first successful operation after the last failure; with no failures, the end of the
// last operation the fault held up for more than half a second (0: nothing was held
// up). ok is false when the workload was still failing at the end.
func (w *workload) recovered(t0 time.Time) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lastFail := -1
	for i, o := range w.ops {
		if !o.ok {
			lastFail = i
		}
	}
	if lastFail == len(w.ops)-1 && lastFail >= 0 {
		return 0, false
	}
	if lastFail >= 0 {
		var first time.Time
		for _, o := range w.ops[lastFail+1:] {
			if o.start.After(w.ops[lastFail].start) && (first.IsZero() || o.end.Before(first)) {
				first = o.end
			}
		}
		return first.Sub(t0), true
	}
	var last time.Time
	for _, o := range w.ops {
		if o.end.Sub(o.start) > 500*time.Millisecond && o.end.After(last) {
			last = o.end
		}
	}
	if last.IsZero() {
		return 0, true
	}
	return last.Sub(t0), true
}

func (w *workload) counts() (ops, errs int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.ops {
		if !o.ok {
			errs++
		}
	}
	return len(w.ops), errs
}

// outcome is one row of the table.
type outcome struct {
	scenario  string
	recovery  bool
	detect    time.Duration // -1: no expected policy decided
	recover   time.Duration // -1: still failing at the end of the window
	actions   []string
	alert     time.Duration // first alert; -1: none
	alerts    int
	ops, errs int
	uptime    float64 // share of the workload's probes that succeeded
	lost      int
	note      string
}

// harness is one scenario run.
type harness struct {
	t        *testing.T
	r        *running
	s        *wafake.Server // nil without WhatsApp
	dir      string
	recovery bool
	t0       time.Time
	w        workload
	lost     int
	note     string
	// ops and errs, when set, count the bot's operations instead of the workload's probes
	// (WhatsApp: the replies, while the probes measure the connection's uptime).
	ops, errs int

	floodHandled *atomic.Int64 // messages the bot's handler saw, once each
}

type scenario struct {
	name     string
	whatsapp bool
	config   func(h *harness, c *config.Config)
	// before runs once the daemon is up, before t0 (seeding data); it may restart it.
	before func(h *harness)
	// run injects the fault at h.t0 and drives the workload through the window.
	run      func(h *harness)
	policies []string // the default policies expected to detect it
	noFault  bool     // the stress scenario: nothing to detect or recover
}

func scenarios() []scenario {
	return []scenario{
		{name: "1 WhatsApp disconnection", whatsapp: true, policies: []string{"wa-reconnect"},
			run: func(h *harness) { h.whatsAppFault(8*time.Second, func() { h.s.DropAll() }) }},
		{name: "2a database: write lock held 3 s", policies: []string{"db-busy-burst"}, run: (*harness).writeLock},
		{name: "2b database: file replaced", policies: []string{"db-conn-lost"}, run: (*harness).fileReplaced},
		{name: "3 memory leak in a supervised process", policies: []string{"service-down"},
			config: func(h *harness, c *config.Config) {
				c.Services = []config.Service{{Name: "bot", Command: []string{os.Args[0], "-test.run=^TestScenarioChild$", "-test.count=1"},
					Env: map[string]string{"REMEDY_SCENARIO_CHILD": filepath.Join(h.dir, "leak")}, Grace: time.Second, MaxMemoryMB: 96}}
			},
			before: func(h *harness) {
				h.r.eventually("the service up", func() bool { _, b := h.r.do("GET", "/api/v1/status", ""); return strings.Contains(b, `"up": true`) })
			},
			run: (*harness).memoryLeak},
		{name: "4 message flood (5,000 inbound; 1,000 under -race)", whatsapp: true, noFault: true, config: (*harness).floodConfig, run: (*harness).flood},
		{name: "5 corrupted state (torn JSON, garbage pages)", policies: []string{"db-corrupt"}, before: (*harness).corruptAndRestart,
			run: (*harness).corrupted},
		{name: "6 network interruption (4 s)", whatsapp: true, policies: []string{"wa-reconnect"},
			run: func(h *harness) {
				h.whatsAppFault(10*time.Second, func() {
					h.s.Down()
					time.AfterFunc(4*time.Second, h.s.Up) // the outage's length
				})
			}},
		{name: "7 disk exhaustion (metrics database full)", policies: []string{"db-full"}, before: (*harness).fillMetrics, run: (*harness).diskFull},
	}
}

// TestScenarioChild is the supervised process of the memory-leak scenario (the test
// binary run again): it idles until the trigger file appears, then leaks 8 MB every 10 ms
// up to 300 MB. The file is consumed, so the restarted process is healthy.
func TestScenarioChild(t *testing.T) {
	trigger := os.Getenv("REMEDY_SCENARIO_CHILD")
	if trigger == "" {
		t.Skip("helper process")
	}
	var kept [][]byte
	for {
		if len(kept) == 0 {
			if err := os.Remove(trigger); err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
		}
		if len(kept) < 38 {
			b := make([]byte, 8<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			kept = append(kept, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestScenarios(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("the scenario suite takes about two minutes")
	}
	scs := scenarios()
	// One slot per run, filled by its subtest: the table keeps the scenarios' order
	// whether they ran one at a time or side by side. It is made when all have ended.
	slots := make([]*outcome, 2*len(scs))
	t.Cleanup(func() { scenarioReport(t, slots) })
	for i, sc := range scs {
		for j, recovery := range []bool{true, false} {
			t.Run(sc.name+"/"+mode(recovery), func(t *testing.T) {
				// Side by side (4 at once, TestMain): each run has its own daemon. The
				// figures then include the others' load; -parallel 1 measures one at a time.
				t.Parallel()
				if sc.whatsapp && raceEnabled {
					// whatsmeow races with itself when the server drops a socket under a
					// send (FrameSocket.Close against SendFrame); .ci/run runs the suite
					// again without -race for these and for the figures.
					t.Skip("WhatsApp fault scenarios run without -race (whatsmeow's own data race)")
				}
				if !recovery && raceEnabled {
					// The baseline only gives the figures' denominator; under -race it
					// doubled the package's time (past go test's 10 minutes on a loaded
					// machine). .ci/run runs the whole suite again without -race.
					t.Skip("the recovery-off baseline runs without -race (figures only)")
				}
				o := runScenario(t, sc, recovery)
				slots[2*i+j] = &o
				if o.lost != 0 {
					t.Errorf("%d items lost", o.lost)
				}
				if !recovery || sc.noFault {
					return
				}
				if o.detect < 0 {
					t.Errorf("not detected by %v", sc.policies)
				}
				if o.recover < 0 {
					t.Errorf("not recovered within the window")
				}
			})
		}
	}
}

// scenarioReport logs and stores the scenario table, and the error rates with recovery
// and without, of the runs that ended (nil slots were skipped).
func scenarioReport(t *testing.T, slots []*outcome) {
	var rows []outcome
	for _, o := range slots {
		if o != nil {
			rows = append(rows, *o)
		}
	}
	table := scenarioTable(rows)
	t.Log("\n" + table)
	artifact(t, "scenarios.md", []byte(table))
	// The seed's "error rate reduced by 80%" is a figure, not an assertion: how many
	// errors a scenario makes depends on how fast the machine runs it (scenario 7 made 2
	// errors on an idle machine and 64 under -race beside other work). The assertions
	// above are the invariants (detected, recovered, nothing lost); the ratios are
	// reported here, per scenario and in all, and printed by bench/run.
	var on, off int
	base := map[string]outcome{}
	for _, o := range rows {
		if !o.recovery {
			base[o.scenario] = o
		}
	}
	for _, o := range rows {
		b, ok := base[o.scenario]
		if !o.recovery || !ok {
			continue
		}
		on += o.errs
		off += b.errs
		if b.errs > 0 {
			t.Logf("%s: %d errors with recovery, %d without: reduced by %.1f%%", o.scenario, o.errs, b.errs, 100*(1-float64(o.errs)/float64(b.errs)))
		}
	}
	if off > 0 {
		t.Logf("errors with recovery %d, without %d: reduced by %.1f%% (the seed's target: 80%%)", on, off, 100*(1-float64(on)/float64(off)))
	}
}

func runScenario(t *testing.T, sc scenario, recovery bool) outcome {
	h := &harness{t: t, recovery: recovery, dir: t.TempDir()}
	mutate := func(c *config.Config) {
		c.Policies, c.DefaultPolicies, c.Token = "", true, "scenario"
		c.DataDir = filepath.Join(h.dir, "data")
		c.CheckInterval = 200 * time.Millisecond
		c.DryRun = !recovery
		if sc.config != nil {
			sc.config(h, c)
		}
	}
	var opts []Option
	if !recovery {
		opts = append(opts, withoutSelfHealing())
	}
	if sc.whatsapp {
		h.r, h.s = startWithWhatsAppOpts(t, true, mutate, opts)
	} else {
		h.r = startDaemon(t, func(c *config.Config) { c.WhatsApp.Enabled = false; mutate(c) }, opts...)
	}
	if sc.before != nil {
		sc.before(h)
	}
	if h.t0.IsZero() {
		h.t0 = time.Now()
	}
	sc.run(h)
	o := outcome{scenario: sc.name, recovery: recovery, detect: -1, recover: -1, alert: -1, lost: h.lost, note: h.note}
	probes, failed := h.w.counts()
	o.ops, o.errs = probes, failed
	if h.ops > 0 {
		o.ops, o.errs = h.ops, h.errs
	}
	if probes > 0 {
		o.uptime = 1 - float64(failed)/float64(probes)
	}
	if d, ok := h.w.recovered(h.t0); ok {
		o.recover = d
	}
	// The decisions are read from the journal: wait until the writers hold nothing more
	// (bounded: a baseline whose database stays broken never writes them).
	for deadline := time.Now().Add(30 * time.Second); (h.r.d.inbox.len() > 0 || h.r.d.backlog() > 0) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	c := &drill.Client{Base: h.r.base, Token: h.r.token}
	rep, err := c.Read(context.Background(), web.DrillStarted{Scenario: sc.name, Started: h.t0, Policies: sc.policies})
	if err != nil { // the baseline of a corrupt file: remedy.db cannot even be read
		o.note += "; remedy's own log unreadable: " + err.Error()
	}
	if rep.Detected != nil {
		o.detect = rep.Detected.After
	}
	for _, a := range rep.Actions {
		o.actions = append(o.actions, a.What)
	}
	o.alerts = len(rep.Alerts)
	if len(rep.Alerts) > 0 {
		o.alert = rep.Alerts[0].After
	}
	t.Logf("%s: detect %v, recover %v, actions %v, alerts %d, ops %d, errors %d, uptime %.1f%%, lost %d; %s",
		mode(recovery), o.detect, o.recover, compact(o.actions), o.alerts, o.ops, o.errs, 100*o.uptime, o.lost, o.note)
	return o
}

func mode(recovery bool) string {
	if recovery {
		return "recovery"
	}
	return "baseline"
}

// whatsAppFault: the workload checks every 100 ms that WhatsApp is connected and sends
// a reply every 500 ms; at the end every reply must be delivered or still queued.
func (h *harness) whatsAppFault(window time.Duration, inject func()) {
	const to = "+6281100000042"
	var sent atomic.Int64
	var wg sync.WaitGroup
	h.t0 = time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for time.Since(h.t0) < window {
			if _, err := h.r.d.sessions.Default().SendMessage(context.Background(), chat.Outgoing{To: to, Text: fmt.Sprintf("reply %d", sent.Load())}); err == nil {
				sent.Add(1)
			}
			<-tick.C
		}
	}()
	inject()
	h.w.every(h.t0, window, 100*time.Millisecond, func() bool { return h.r.d.sessions.Default().Conn().State() == whatsapp.Connected })
	wg.Wait()
	delivered := func() int { return h.delivered("6281100000042") }
	// The same grace in both modes for the replies that waited: a reply delivered late
	// is a delay, one never delivered is an error.
	for end := time.Now().Add(5 * time.Second); delivered() < int(sent.Load()) && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond) // measuring delivery, in both modes alike
	}
	a := h.replies(int(sent.Load()), "6281100000042", 0)
	h.ops, h.errs = a.sent, a.sent-a.delivered
	h.lost = a.lost
	h.note = fmt.Sprintf("replies sent every 0.5 s: %s", a)
}

// replyAccount says where every reply went.
type replyAccount struct {
	sent, delivered, queued, dead, duplicates, lost int
}

func (a replyAccount) String() string {
	s := fmt.Sprintf("%d, delivered %d, still queued %d", a.sent, a.delivered, a.queued)
	if a.dead > 0 {
		s += fmt.Sprintf(", dead-lettered %d", a.dead)
	}
	if a.duplicates > 0 {
		s += fmt.Sprintf(", delivered twice %d (at-least-once across a restart)", a.duplicates)
	}
	return s
}

// replies accounts for sent replies to number, first letting the outbound queue settle
// for up to settle (an item being sent is both delivered and still queued).
func (h *harness) replies(sent int, number string, settle time.Duration) replyAccount {
	ctx := context.Background()
	count := func() (queued, dead int) {
		h.r.d.data.Main.Get(ctx, &queued, `SELECT count(*) FROM queue_items WHERE queue = 'outbound'`)
		h.r.d.data.Main.Get(ctx, &dead, `SELECT count(*) FROM dead_letters WHERE queue = 'outbound'`)
		return
	}
	for end := time.Now().Add(settle); time.Now().Before(end); {
		if q, _ := count(); q == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the queue settling
	}
	a := replyAccount{sent: sent, delivered: h.delivered(number)}
	a.queued, a.dead = count()
	if a.delivered > sent {
		a.duplicates = a.delivered - sent
	}
	a.lost = sent - (a.delivered - a.duplicates) - a.queued - a.dead
	if a.queued > 0 && a.delivered-a.duplicates+a.queued+a.dead > sent {
		a.lost = 0 // one in flight: delivered, not yet marked done
	}
	return a
}

// delivered counts the messages the fake server received for a number.
func (h *harness) delivered(number string) int {
	n := 0
	for _, m := range h.s.Messages() {
		if m.To == number {
			n++
		}
	}
	return n
}

// kept is the items of a queue still queued or dead-lettered: not lost, visible.
func (h *harness) kept(name string) int {
	var n int
	if err := h.r.d.data.Main.Get(context.Background(), &n, `SELECT (SELECT count(*) FROM queue_items WHERE queue = ?) +
		(SELECT count(*) FROM dead_letters WHERE queue = ?)`, name, name); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// writes is the bot's write traffic: one write every 50 ms, each with a 5 s deadline,
// each a new key; acked collects the keys whose write succeeded.
func (h *harness) writes(window time.Duration, acked *sync.Map) {
	h.writesUntil(func() bool { return time.Since(h.t0) >= window }, acked)
}

// writesUntil is writes until done says so.
func (h *harness) writesUntil(done func() bool, acked *sync.Map) {
	var wg sync.WaitGroup
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; !done(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start, key := time.Now(), fmt.Sprintf("bot.%d", i)
			_, err := h.r.d.data.Main.Exec(ctx, `INSERT INTO state(key, kind, data, updated) VALUES (?, 'session', '{"n":1}', ?)`, key, time.Now().UnixMilli())
			if err == nil {
				acked.Store(key, true)
			}
			h.w.add(start, err == nil)
		}()
		<-tick.C
	}
	wg.Wait()
}

// missing counts the acked keys that are not in the file at path (read afresh).
func (h *harness) missing(acked *sync.Map) int {
	db, err := sqlx.Open("sqlite", "file:"+filepath.Join(h.dir, "data", store.RemedyFile)+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	n := 0
	acked.Range(func(k, _ any) bool {
		var c int
		if err := db.Get(&c, `SELECT count(*) FROM state WHERE key = ?`, k); err != nil || c == 0 {
			n++
		}
		return true
	})
	return n
}

func (h *harness) writeLock() {
	h.t0 = time.Now()
	lock, err := holdWriteLock(context.Background(), filepath.Join(h.dir, "data", store.RemedyFile))
	if err != nil {
		h.t.Fatal(err)
	}
	// The lock is held 3 s (the fault's length), and on a machine too loaded for ten
	// queries to meet it in that time, until the policy has seen it (at most 30 s more):
	// being detected is the invariant, the time it takes a figure. The bot writes on
	// until 3 s after the release.
	var releasedAt atomic.Int64
	go func() {
		time.Sleep(3 * time.Second)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !h.fired("db-busy-burst"); {
			time.Sleep(50 * time.Millisecond)
		}
		lock.release()
		releasedAt.Store(time.Now().UnixNano())
	}()
	var acked sync.Map
	h.writesUntil(func() bool {
		at := releasedAt.Load()
		return at > 0 && time.Since(time.Unix(0, at)) >= 3*time.Second
	}, &acked)
	h.lost = h.missing(&acked)
	h.note = "the bot writes every 50 ms, 5 s deadline"
}

// fired reports whether the engine fired policy since the fault began.
func (h *harness) fired(policy string) bool {
	ps, err := h.r.d.Policies(context.Background())
	if err != nil {
		return false
	}
	for _, p := range ps {
		if p.Name == policy && p.LastFired != nil && !p.LastFired.Before(h.t0) {
			return true
		}
	}
	return false
}

func (h *harness) fileReplaced() {
	path := filepath.Join(h.dir, "data", store.RemedyFile)
	ctx := context.Background()
	// Someone restores a copy of the file over it while remedy runs.
	if _, err := h.r.d.data.Main.Exec(ctx, `VACUUM INTO ?`, path+".copy"); err != nil {
		h.t.Fatal(err)
	}
	h.t0 = time.Now()
	if err := os.Rename(path+".copy", path); err != nil {
		h.t.Fatal(err)
	}
	var acked sync.Map
	h.writes(5*time.Second, &acked)
	h.lost = h.missing(&acked)
	h.note = "writes after the replacement must be in the new file"
}

func (h *harness) memoryLeak() {
	h.t0 = time.Now()
	if err := os.WriteFile(filepath.Join(h.dir, "leak"), nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
	var peak atomic.Int64
	h.w.every(h.t0, 6*time.Second, 100*time.Millisecond, func() bool {
		for _, st := range h.r.d.sup.Status() {
			if !st.Up {
				return false
			}
		}
		mb, err := h.r.d.sup.MemoryMB(context.Background(), "bot")
		if int64(mb) > peak.Load() {
			peak.Store(int64(mb))
		}
		return err == nil && mb <= 96
	})
	h.note = fmt.Sprintf("limit 96 MB; peak seen %d MB", peak.Load())
}

func (h *harness) floodConfig(c *config.Config) {
	var handled sync.Map
	var count atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m chat.Message
		if err := jsonDecode(r, &m); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if _, dup := handled.LoadOrStore(m.ID, true); !dup {
			count.Add(1)
		}
		w.Write([]byte(`{}`))
	}))
	h.t.Cleanup(srv.Close)
	c.WhatsApp.Handler = &config.Handler{URL: srv.URL}
	c.Queues = map[string]config.Queue{"inbound": {Workers: 16}}
	h.floodHandled = &count
}

// floodChat is the customer of a flood's i-th message: fifty of them. A flood is many
// customers at once; one chat's deliveries go to the bot one at a time, in order, so a
// flood from one chat measures the handler's round trip, not remedy.
func floodChat(i int) string { return fmt.Sprintf("62811000%05d", i%50) }

func (h *harness) flood() {
	n, senders := 5000, 8
	if raceEnabled {
		n = 1000
	}
	in := h.r.d.sessions.Default().Pipeline().In
	var maxDepth atomic.Int64
	stop := make(chan struct{})
	go func() { // the depth, as the dashboard would see it
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if st, err := in.Stats(context.Background()); err == nil && int64(st.Depth) > maxDepth.Load() {
					maxDepth.Store(int64(st.Depth))
				}
			}
		}
	}()
	h.t0 = time.Now()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < n; i += senders {
				start := time.Now()
				err := h.r.d.sessions.Default().Receive(chat.Message{ID: fmt.Sprintf("flood-%d", i), From: floodChat(i), Chat: floodChat(i) + "@s.whatsapp.net",
					Text: fmt.Sprintf("message %d", i), Time: start, Kind: "text"})
				if err != nil {
					refused.Add(1)
				}
				h.w.add(start, err == nil)
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(h.t0)
	deadline := time.Now().Add(60 * time.Second)
	for h.floodHandled.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // measuring the drain, not waiting for a behaviour
	}
	drained := time.Since(h.t0)
	close(stop)
	handled := int(h.floodHandled.Load())
	// Items handled but not yet marked done are still in the queue: let them settle so
	// that none is counted twice.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		if st, err := in.Stats(context.Background()); err == nil && (st.Depth == 0 || handled < n) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	kept := h.kept("inbound")
	h.lost = n - int(refused.Load()) - handled - kept
	h.note = fmt.Sprintf("accepted in %v (%.0f msg/s), all handled after %v (%.0f msg/s), peak depth %d, %d refused, %d handled",
		accepted.Round(time.Millisecond), float64(n)/accepted.Seconds(), drained.Round(time.Millisecond), float64(n)/drained.Seconds(),
		maxDepth.Load(), refused.Load(), handled)
}

// corruptAndRestart writes history and bot state (two rows torn), stops remedy as a crash
// would leave it, overwrites pages near the end of remedy.db with garbage, and starts
// remedy again on the damaged file: t0 is the restart.
func (h *harness) corruptAndRestart() {
	ctx := context.Background()
	d := h.r.d.data.Main
	var evs []engine.Event
	for i := range 4000 {
		evs = append(evs, engine.Event{Time: time.Now().Add(-time.Hour + time.Duration(i)*time.Millisecond), Code: "BOT_NOTE",
			Labels: map[string]string{"n": fmt.Sprint(i)}, Message: strings.Repeat("history ", 6)})
	}
	if err := d.InsertEvents(ctx, evs); err != nil {
		h.t.Fatal(err)
	}
	for _, row := range [][2]string{{"session.good", `{"step":2}`}, {"session.torn1", `{"step":`}, {"session.torn2", `not json`}} {
		if _, err := d.Exec(ctx, `INSERT INTO state(key, kind, data, updated) VALUES (?, 'session', ?, 1)`, row[0], row[1]); err != nil {
			h.t.Fatal(err)
		}
	}
	pages := historyPages(h.t, d)
	h.r.stop()
	garble(h.t, filepath.Join(h.dir, "data", store.RemedyFile), pages)
	h.t0 = time.Now()
	h.r = h.r.restart()
}

// historyPages are four leaf pages of the events table: damage there destroys history
// rows only, so what the scenario counts as lost is what remedy lost, not what the
// garbage destroyed.
func historyPages(t *testing.T, db *store.DB) []int {
	var pages []int
	if err := db.Select(context.Background(), &pages, `SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf'
		ORDER BY pageno DESC LIMIT 4 OFFSET 8`); err != nil || len(pages) < 4 {
		t.Fatalf("history pages %v: %v", pages, err)
	}
	return pages
}

// garble overwrites pages (numbered from 1) of a closed database file with garbage.
func garble(t *testing.T, path string, pages []int) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	garbage := []byte(strings.Repeat("\xab\xcd\xef\x01", 1024))
	for _, p := range pages {
		if _, err := f.WriteAt(garbage, int64(p-1)*4096); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) corrupted() {
	h.w.every(h.t0, 6*time.Second, 100*time.Millisecond, func() bool {
		var n struct{ N, Bytes int }
		return h.r.d.data.Main.Get(context.Background(), &n, `SELECT count(*) AS n, coalesce(sum(length(message)), 0) AS bytes FROM events`) == nil
	})
	ctx := context.Background()
	var good, quarantined, events int
	h.r.d.data.Main.Get(ctx, &good, `SELECT count(*) FROM state WHERE key = 'session.good'`)
	h.r.d.data.Main.Get(ctx, &quarantined, `SELECT count(*) FROM quarantine WHERE tbl = 'state'`)
	h.r.d.data.Main.Get(ctx, &events, `SELECT count(*) FROM events WHERE code = 'BOT_NOTE'`)
	if h.recovery {
		h.lost = 3 - good - quarantined // the bot's state rows: kept, or quarantined
		h.note = fmt.Sprintf("state: %d good row kept, %d torn rows quarantined; history: %d of 4000 rows readable, the rest in the backup copy", good, quarantined, events)
	} else {
		h.note = "the file stays corrupt; nothing is rebuilt"
	}
}

// fillMetrics writes three days' old samples (prunable) into the metrics database.
func (h *harness) fillMetrics() {
	var pts []store.Point
	old := time.Now().Add(-72 * time.Hour)
	for i := range 30000 {
		pts = append(pts, store.Point{Time: old.Add(time.Duration(i) * time.Second), Name: "cpu_percent", Value: float64(i % 100)})
	}
	if err := h.r.d.data.Metrics.Insert(context.Background(), pts); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) diskFull() {
	ctx := context.Background()
	m := h.r.d.data.Metrics
	var pages int
	if err := m.DB().Get(ctx, &pages, `PRAGMA page_count`); err != nil {
		h.t.Fatal(err)
	}
	// The page limit stands in for a full disk (SQLITE_FULL either way); it is set on
	// the writer connection, which every write goes through. Samples fill what is left.
	if _, err := m.DB().Exec(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		h.t.Fatal(err)
	}
	// The disk has room again before the daemon stops (cleanups run last in, first out):
	// in the baseline nothing frees it, and a sample that arrived just before the stop
	// would otherwise be reported as not written at shutdown, or not, as timing falls.
	h.t.Cleanup(func() { m.DB().Exec(context.Background(), `PRAGMA max_page_count = 1073741823`) })
	for i := 0; !m.Shedding(); i++ {
		if i > 100000 {
			h.t.Fatal("the metrics database never filled up")
		}
		h.t0 = time.Now() // the write that finds the disk full is the fault
		m.Insert(ctx, []store.Point{{Time: time.Now(), Name: "fill", Value: float64(i)}})
	}
	// Meanwhile the bot posts events; they go to remedy.db and must all be kept.
	var posted atomic.Int64
	go func() {
		for i := 0; time.Since(h.t0) < 4*time.Second; i++ {
			if code, _ := h.r.do("POST", "/api/v1/events", fmt.Sprintf(`[{"code":"BOT_EVENT","labels":{"n":"%d"}}]`, i)); code == 202 {
				posted.Add(1)
			}
			time.Sleep(100 * time.Millisecond) // the bot's pace
		}
	}()
	// The baseline is watched for 5 s; with recovery the probe goes on until the prune
	// has freed the file (10 writes in a row go through), however long the machine
	// takes: the time is the figure, recovering is the invariant.
	window, good := 5*time.Second, 0
	if h.recovery {
		window = 2 * time.Minute
	}
	tick := time.NewTicker(50 * time.Millisecond)
	for time.Since(h.t0) < window && good < 10 {
		start := time.Now()
		ok := m.Insert(ctx, []store.Point{{Time: time.Now(), Name: "drill", Value: 1}}) == nil
		h.w.add(start, ok)
		if ok && time.Since(h.t0) > 5*time.Second {
			good++
		}
		<-tick.C
	}
	tick.Stop()
	var recorded int
	h.r.eventually("the posted events recorded", func() bool {
		h.r.d.data.Main.Get(ctx, &recorded, `SELECT count(*) FROM events WHERE code = 'BOT_EVENT'`)
		return recorded >= int(posted.Load())
	})
	h.lost = int(posted.Load()) - recorded
	h.note = fmt.Sprintf("samples shed while full: %d; bot events posted %d, recorded %d", h.r.d.data.Metrics.Shed(), posted.Load(), recorded)
}

func scenarioTable(rows []outcome) string {
	var b strings.Builder
	b.WriteString("| scenario | mode | detected | recovered | first alert | actions | alerts | operations | errors | uptime | items lost | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	dur := func(d time.Duration, none string) string {
		if d < 0 {
			return none
		}
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	for _, o := range rows {
		acts := "—"
		if len(o.actions) > 0 {
			acts = strings.Join(compact(o.actions), "; ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d | %d | %d | %.1f %% | %d | %s |\n", o.scenario, mode(o.recovery),
			dur(o.detect, "no"), dur(o.recover, "no (still failing)"), dur(o.alert, "—"), acts, o.alerts, o.ops, o.errs, 100*o.uptime, o.lost, o.note)
	}
	return b.String()
}

// compact folds repeated actions: "RESTART_SERVICE succeeded (attempt 1) ×2".
func compact(xs []string) []string {
	var out []string
	for i := 0; i < len(xs); {
		j := i
		for j < len(xs) && xs[j] == xs[i] {
			j++
		}
		s := xs[i]
		if j-i > 1 {
			s += fmt.Sprintf(" ×%d", j-i)
		}
		out = append(out, s)
		i = j
	}
	return out
}

func jsonDecode(r *http.Request, v any) error { return json.NewDecoder(r.Body).Decode(v) }
