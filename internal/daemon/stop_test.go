package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/monitor"
)

// lockedBuffer is a log sink safe to read while the daemon writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// A step that waits names what it waits for and the time left, and returns at its bound;
// a step that finishes at once logs nothing.
func TestWaitStepSaysWhatItWaitsForAndEndsAtItsBound(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var buf lockedBuffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		start := time.Now()
		err := waitStep(log, "engine", 12*time.Second, func() string { return "action RESTART_SERVICE on bot" },
			func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 12*time.Second {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
		out := buf.String()
		for _, want := range []string{`"stopping: waiting for action RESTART_SERVICE on bot (11s left)" step=engine`,
			`"stopping: waiting for action RESTART_SERVICE on bot (6s left)"`, `"stopping: waiting for action RESTART_SERVICE on bot (1s left)"`} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %s:\n%s", want, out)
			}
		}
		buf = lockedBuffer{}
		if err := waitStep(log, "alerts", time.Minute, func() string { return "x" }, func(context.Context) error { return nil }); err != nil || buf.String() != "" {
			t.Fatalf("quick step: %v, log %q", err, buf.String())
		}
	})
}

// Field report (issue 25): a shutdown with a recovery action hanging took 20 s, exited 1
// and logged nothing meanwhile. A real hung action (EXEC sleep, 10-minute timeout): the
// stop logs what it waits for, abandons the action at stop_timeout, returns no error (exit
// 0), and the attempt is in the audit as interrupted after a restart.
func TestShutdownAbandonsAHungActionAtItsBound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pdir := filepath.Join(dir, "policies")
	os.MkdirAll(pdir, 0o755)
	os.WriteFile(filepath.Join(pdir, "hang.yaml"), []byte(`policies:
  - name: hung-fix
    on: [HUNG_FAULT]
    actions:
      - do: EXEC
        with: {command: "sleep 600"}
        timeout: 10m
`), 0o644)
	cfg := config.Default()
	cfg.DataDir, cfg.Policies, cfg.Listen = filepath.Join(dir, "data"), pdir, "127.0.0.1:0"
	cfg.SampleInterval, cfg.DefaultPolicies, cfg.WhatsApp.Enabled = time.Hour, false, false
	cfg.StopTimeout = 3 * time.Second
	var buf lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := New(ctx, cfg, slog.New(slog.NewTextHandler(&buf, nil)), WithHost(monitor.HealthyHost()))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r := &running{t: t, cfg: cfg, d: d, base: "http://" + d.Addr(), dir: dir, cancel: cancel, done: done}
	if code, body := r.do("POST", "/api/v1/events", `{"code":"HUNG_FAULT"}`); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	r.eventually("the action running", func() bool { return len(d.exec.InFlight()) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("a stop that abandoned a hung action at its bound is clean, got %v\n%s", err, buf.String())
	}
	out := buf.String()
	if strings.Contains(out, "escalated") {
		t.Errorf("the stop paged:\n%s", out)
	}
	for _, want := range []string{`msg="stopping: waiting for action EXEC on sleep 600 (`, `step=engine`, `abandoning recovery actions still running at stop_timeout`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	r2 := run(t, cfg, dir, nil)
	r2.eventually("the attempt in the audit as interrupted", func() bool {
		_, b := r2.do("GET", "/api/v1/actions", "")
		return strings.Contains(b, `"outcome": "interrupted"`)
	})
}

// stop_timeout: 0s with no action running: the stop abandons nothing, so it does not
// warn that it does (before: "abandoning recovery actions still running at stop_timeout"
// with actions="").
func TestShutdownWithNothingRunningAbandonsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = filepath.Join(dir, "data"), "127.0.0.1:0"
	cfg.SampleInterval, cfg.DefaultPolicies, cfg.WhatsApp.Enabled = time.Hour, false, false
	cfg.StopTimeout = 0
	for range 5 { // the bound and the executor's Wait race: try it a few times
		var buf lockedBuffer
		ctx, cancel := context.WithCancel(context.Background())
		d, err := New(ctx, cfg, slog.New(slog.NewTextHandler(&buf, nil)), WithHost(monitor.HealthyHost()))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Listen(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "abandoning") {
			t.Fatalf("a stop with nothing running warned:\n%s", buf.String())
		}
	}
}

// stuckWriter holds rows it cannot write (a held write lock) until its drain ends.
type stuckWriter struct{ rows int }

func (w stuckWriter) Run(ctx context.Context, drain time.Duration) error {
	<-ctx.Done()
	time.Sleep(drain) // the final flush failing for its whole drain (synctest's clock)
	return nil
}

func (w stuckWriter) Len() int { return w.rows }

// The writers' final flush says what it waits for, as the other steps do (before: a stop
// under a held write lock went silent for the writers' 10 s).
func TestWriterFlushSaysWhatItWaitsFor(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var buf lockedBuffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runWriter(ctx, log, "journal", stuckWriter{rows: 49}, 10*time.Second) }()
		cancel()
		start := time.Now()
		if err := <-done; err != nil || time.Since(start) != 10*time.Second {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
		if want := `"stopping: waiting for 49 journal rows to be written (9s left)" step="writer journal"`; !strings.Contains(buf.String(), want) {
			t.Fatalf("log lacks %s:\n%s", want, buf.String())
		}
	})
}
