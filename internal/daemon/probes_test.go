package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/store"
)

// probeView is what each probe and screen says about WhatsApp and the database.
type probeView struct {
	readyWhatsApp, readyDB string // /readyz checks
	metricState            string // the remedy_whatsapp_state series at 1
	metricOnes             int    // how many series are at 1
	statusWhatsApp         string // GET status
	statusDB               string
}

var stateSeries = regexp.MustCompile(`(?m)^remedy_whatsapp_state\{session="default",state="([a-z_]+)"\} ([01])$`)

func (r *running) probes() probeView {
	r.t.Helper()
	var v probeView
	_, b := r.do("GET", "/readyz", "")
	var ready struct{ Checks map[string]string }
	if err := json.Unmarshal([]byte(b), &ready); err != nil {
		r.t.Fatalf("readyz: %v: %s", err, b)
	}
	v.readyWhatsApp, v.readyDB = ready.Checks["whatsapp"], ready.Checks["database_writable"]
	_, b = r.do("GET", "/metrics", "")
	for _, m := range stateSeries.FindAllStringSubmatch(b, -1) {
		if m[2] == "1" {
			v.metricState = m[1]
			v.metricOnes++
		}
	}
	_, b = r.do("GET", "/api/v1/status", "")
	var st struct{ WhatsApp, Database string }
	if err := json.Unmarshal([]byte(b), &st); err != nil {
		r.t.Fatalf("status: %v: %s", err, b)
	}
	v.statusWhatsApp, v.statusDB = st.WhatsApp, st.Database
	return v
}

// agree checks the rule the probes were broken against: every probe and screen says the
// same WhatsApp state (one series at 1, naming it), and the database is "ok" on the
// status exactly when readiness says it is.
func (v probeView) agree(t *testing.T, wantWhatsApp string) {
	t.Helper()
	if v.metricOnes != 1 || v.metricState != wantWhatsApp || v.statusWhatsApp != wantWhatsApp || v.readyWhatsApp != wantWhatsApp {
		t.Fatalf("whatsapp %s: readyz %q, metrics %q (%d series at 1), status %q", wantWhatsApp, v.readyWhatsApp, v.metricState, v.metricOnes, v.statusWhatsApp)
	}
	if (v.statusDB == "ok") != (v.readyDB == "ok") {
		t.Fatalf("database: status %q, readyz %q", v.statusDB, v.readyDB)
	}
}

// Issue 25: unpaired, /readyz said "whatsapp":"ok" and /metrics had no WhatsApp series,
// so a fleet's Prometheus could not tell a never-paired remedy from a working one. Each
// state is on every probe: off, unpaired, connected.
func TestWhatsAppStateOnEveryProbe(t *testing.T) {
	t.Parallel()
	t.Run("off", func(t *testing.T) {
		r := startDaemon(t, func(c *config.Config) { c.WhatsApp.Enabled = false })
		r.probes().agree(t, "off")
	})
	t.Run("unpaired", func(t *testing.T) {
		r, _ := startWithWhatsApp(t, false, nil)
		v := r.probes()
		v.agree(t, "unpaired")
		if code, b := r.do("GET", "/readyz", ""); code != 200 {
			t.Fatalf("unpaired is deliberate until someone pairs: readyz %d %s", code, b)
		}
		_, b := r.do("GET", "/metrics", "")
		if !strings.Contains(b, `remedy_whatsapp_state{session="default",state="connected"} 0`) {
			t.Fatalf("every state has its series from the first scrape:\n%s", b)
		}
	})
	t.Run("connected", func(t *testing.T) {
		r, _ := startWithWhatsApp(t, true, nil)
		r.probes().agree(t, "connected")
	})
}

// Issue 25: GET status said the database was "ok" (green badge) while /readyz said it was
// read-only or full. Both derive it from one probe now; over seeded sequences of faults
// coming and going, they agree after every step.
func TestStatusAndReadyzAgreeOnTheDatabase(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	ctx := context.Background()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 25))
	readOnly, sawBad := false, false
	for step := range 12 {
		if rng.IntN(2) == 0 {
			readOnly = !readOnly
			if _, err := r.d.data.Main.Exec(ctx, fmt.Sprintf(`PRAGMA query_only = %t`, readOnly)); err != nil {
				t.Fatal(err)
			}
			r.d.dbProbe.forget() // the next probe, not one shared from before the change
		}
		v := r.probes()
		if readOnly != (v.statusDB != "ok") {
			t.Fatalf("seed %d step %d: read-only %v, status says %q", seed, step, readOnly, v.statusDB)
		}
		sawBad = sawBad || readOnly
		v.agree(t, "unpaired")
	}
	if !sawBad { // the named case, whatever the seed drew
		r.d.data.Main.Exec(ctx, `PRAGMA query_only = 1`)
		r.d.dbProbe.forget()
		v := r.probes()
		v.agree(t, "unpaired")
		if v.statusDB == "ok" {
			t.Fatalf("read-only database: status %q", v.statusDB)
		}
	}
	r.d.data.Main.Exec(ctx, `PRAGMA query_only = 0`)
}

// withStoreTune changes the store's options after the daemon's own (tests only).
func withStoreTune(f func(*store.Options)) Option {
	return func(o *options) { o.storeTune = append(o.storeTune, f) }
}

// Issue 26 asked for a rebuild's progress "in the log, on the dashboard and /readyz":
// the status's database field said "rebuilding (events: … rows)", while /readyz said
// database_writable "ok" for the whole copy. Held mid-copy, every probe names the
// rebuild and its progress, readiness stays 200 (the damaged file serves), and ingest
// answers 202.
func TestRebuildProgressOnEveryProbe(t *testing.T) {
	t.Parallel()
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r := startDaemon(t, nil, withStoreTune(func(so *store.Options) {
		next := so.Progress
		so.Progress = func(p store.RebuildProgress) {
			if p.Table == "events" && !p.Done {
				once.Do(func() { close(paused); <-resume })
			}
			if next != nil {
				next(p)
			}
		}
	}))
	ctx := context.Background()
	evs := make([]engine.Event, 10000)
	for i := range evs {
		evs[i] = engine.Event{Time: time.Now(), Code: "USER_MSG", Message: fmt.Sprint("event ", i)}
	}
	if err := r.d.data.Main.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.d.data.Main.Rebuild(ctx)
		done <- err
	}()
	<-paused
	v := r.probes()
	code, _ := r.do("GET", "/readyz", "")
	ingest, _ := r.do("POST", "/api/v1/events", `[{"code":"CANARY"}]`)
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"readyz database_writable": v.readyDB, "status database": v.statusDB} {
		if !strings.Contains(s, "rebuilding") || !strings.Contains(s, "events: ") || !strings.Contains(s, " rows") {
			t.Errorf("%s during a rebuild: %q; want the rebuild and its progress", name, s)
		}
	}
	if code != 200 || ingest != 202 {
		t.Errorf("during a rebuild: readyz %d (want 200: the damaged file serves), POST events %d (want 202)", code, ingest)
	}
	if v := r.probes(); v.readyDB != "ok" || v.statusDB != "ok" {
		t.Errorf("after the swap: readyz %q, status %q", v.readyDB, v.statusDB)
	}
}

// Issue 26: status and readyz cost nothing per call. Their one database probe (a write)
// is shared by every caller within probeShare of it, a failure as much as a pass, and a
// clock that went back never keeps an old answer.
func TestDatabaseProbeIsSharedWithinASecond(t *testing.T) {
	t.Parallel()
	var m probeMemo
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	probes := 0
	var result error
	probe := func() error { probes++; return result }
	ask := func(at time.Duration) error { now = t0.Add(at); return m.do(clock, probe) }

	for i := range 100 {
		if err := ask(time.Duration(i) * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if probes != 1 {
		t.Fatalf("100 callers within 100 ms made %d probes, want 1", probes)
	}
	result = errors.New("not writable: disk I/O error")
	if err := ask(999 * time.Millisecond); err != nil || probes != 1 {
		t.Fatalf("inside the second: %v after %d probes", err, probes)
	}
	if err := ask(time.Second); err == nil || probes != 2 {
		t.Fatalf("a second later the fault was not probed: %v after %d probes", err, probes)
	}
	if err := ask(1500 * time.Millisecond); err == nil || probes != 2 {
		t.Fatalf("the failure was not shared: %v after %d probes", err, probes)
	}
	result = nil
	if err := ask(0); err != nil || probes != 3 {
		t.Fatalf("a clock that went back kept the old answer: %v after %d probes", err, probes)
	}
}

// forget drops the shared probe result, so the next caller probes.
func (m *probeMemo) forget() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.at = time.Time{}
}
