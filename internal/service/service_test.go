package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

// TestHelperProcess is the child process of these tests (the test binary run again):
// serve exits 0 on SIGTERM; crash exits 7; stubborn ignores SIGTERM.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("REMEDY_SERVICE_HELPER")
	if mode == "" {
		t.Skip("helper process")
	}
	switch mode {
	case "crash":
		fmt.Println("boom")
		os.Exit(7)
	case "serve":
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		fmt.Println("ready")
		<-term
		fmt.Println("bye")
		os.Exit(0)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	case "leak":
		// Grows by 8 MB every 10 ms up to 400 MB, touching every page so it is resident.
		var kept [][]byte
		fmt.Println("ready")
		for len(kept) < 50 {
			b := make([]byte, 8<<20)
			for i := range b {
				if i%4096 == 0 {
					b[i] = 1
				}
			}
			kept = append(kept, b)
			time.Sleep(10 * time.Millisecond)
		}
		select {}
	case "tree":
		holdTree(os.Getenv("REMEDY_TREE"))
	}
}

func helper(name, mode string) ProcessConfig {
	return ProcessConfig{Name: name, Command: []string{os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1"},
		Env: map[string]string{"REMEDY_SERVICE_HELPER": mode}}
}

// events records what the supervisor reports.
type events struct {
	mu  sync.Mutex
	evs []engine.Event
}

func (e *events) add(ev engine.Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }
func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		s := ev.Code
		if c := ev.Labels["exit_code"]; c != "" {
			s += "(" + c + ")"
		}
		if r := ev.Labels["reason"]; r == "unhealthy" || r == "memory" {
			s += "(" + r + ")"
		}
		out = append(out, s)
	}
	return out
}

// eventually polls a real child process's observable state.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasLine(p *Process, s string) func() bool {
	return func() bool {
		for _, l := range p.Output() {
			if l == s {
				return true
			}
		}
		return false
	}
}

func TestCrashIsReportedWithExitCode(t *testing.T) {
	ev := &events{}
	s := NewSupervisor(ev.add, nil)
	p := NewProcess(helper("bot", "crash"))
	s.Add(p)
	if err := s.Start(context.Background(), "bot"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SERVICE_DOWN", func() bool { return len(ev.list()) == 2 })
	if got := strings.Join(ev.list(), " "); got != "SERVICE_UP SERVICE_DOWN(7)" {
		t.Fatalf("events %s", got)
	}
	st := s.Status()[0]
	if st.Up || st.LastExit != "exit status 7" || !hasLine(p, "boom")() {
		t.Fatalf("status %+v", st)
	}
	ev.catalogued(t)
}

// catalogued fails unless every label of every event is listed for its code in `remedy
// codes` (before, SERVICE_DOWN's reason was missing), so policies can rely on it.
func (e *events) catalogued(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.evs {
		var listed string
		for _, c := range policies.Codes {
			if c.Code == ev.Code {
				listed = ", " + c.Labels + ","
			}
		}
		for k := range ev.Labels {
			if !strings.Contains(listed, ", "+k+",") {
				t.Errorf("%s has label %q, not listed in remedy codes (%q)", ev.Code, k, strings.Trim(listed, ", "))
			}
		}
	}
}

func TestGracefulRestart(t *testing.T) {
	ev := &events{}
	s := NewSupervisor(ev.add, nil)
	p := NewProcess(helper("bot", "serve"))
	s.Add(p)
	s.Start(context.Background(), "bot")
	eventually(t, "ready", hasLine(p, "ready"))
	old := p.PID()
	if err := s.Restart(context.Background(), "bot", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !hasLine(p, "bye")() {
		t.Fatalf("no graceful exit: %v", p.Output())
	}
	if p.PID() == 0 || p.PID() == old {
		t.Fatalf("pid %d after restart (was %d)", p.PID(), old)
	}
	if got := strings.Join(ev.list(), " "); got != "SERVICE_UP SERVICE_UP" {
		t.Fatalf("a deliberate stop was reported: %s", got)
	}
	if s.Status()[0].Restarts != 1 {
		t.Fatal("restart not counted")
	}
	s.StopAll(context.Background(), time.Second)
}

func TestForcedRestartAfterGrace(t *testing.T) {
	s := NewSupervisor(nil, nil)
	p := NewProcess(helper("bot", "stubborn"))
	s.Add(p)
	s.Start(context.Background(), "bot")
	eventually(t, "ready", hasLine(p, "ready"))
	old := p.PID()
	began := time.Now()
	if err := s.Restart(context.Background(), "bot", 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Fatalf("killed after %v, before the grace period", took)
	}
	if err := syscall.Kill(old, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("old process %d still there: %v", old, err)
	}
	if p.PID() == 0 || p.PID() == old {
		t.Fatal("not running again")
	}
	s.StopAll(context.Background(), 100*time.Millisecond)
}

func TestHealthURL(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ev := &events{}
	s := NewSupervisor(ev.add, nil)
	cfg := helper("bot", "serve")
	cfg.HealthURL = srv.URL
	p := NewProcess(cfg)
	s.Add(p)
	s.Start(context.Background(), "bot")
	defer s.StopAll(context.Background(), time.Second)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		s.CheckHealth(ctx)
	}
	healthy.Store(true)
	s.CheckHealth(ctx)
	if got := strings.Join(ev.list(), " "); got != "SERVICE_UP SERVICE_DOWN(unhealthy) SERVICE_UP" {
		t.Fatalf("events %s", got)
	}
}

func TestMissingProgramFailsToStart(t *testing.T) {
	s := NewSupervisor(nil, nil)
	s.Add(NewProcess(ProcessConfig{Name: "bot", Command: []string{"/no/such/bot"}}))
	if err := s.Restart(context.Background(), "bot", time.Second); err == nil {
		t.Fatal("restart of a missing program succeeded")
	}
	if err := s.Restart(context.Background(), "nope", time.Second); err == nil {
		t.Fatal("restart of an unknown service succeeded")
	}
}

func TestFuncServicePanicAndStuckStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ev := &events{}
		s := NewSupervisor(ev.add, nil)
		var runs atomic.Int32
		s.Add(NewFunc("workers", func(ctx context.Context) error {
			if runs.Add(1) == 1 {
				panic("nil map")
			}
			<-ctx.Done()
			return nil
		}, nil))
		s.Start(context.Background(), "workers")
		synctest.Wait()
		if got := strings.Join(ev.list(), " "); got != "SERVICE_UP SERVICE_DOWN(-1)" {
			t.Fatalf("events %s", got)
		}
		if out := s.Status()[0].Output; len(out) == 0 || !strings.Contains(out[0], "panic: nil map") {
			t.Fatalf("output %v", out)
		}
		if err := s.Restart(context.Background(), "workers", time.Second); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := s.StopAll(context.Background(), time.Second); err != nil {
			t.Fatalf("a function that honours its context did not stop: %v", err)
		}

		stuck := make(chan struct{})
		s2 := NewSupervisor(nil, nil)
		s2.Add(NewFunc("stuck", func(ctx context.Context) error { <-stuck; return nil }, nil))
		s2.Start(context.Background(), "stuck")
		began := time.Now()
		err := s2.StopAll(context.Background(), 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "abandoned") || time.Since(began) != 5*time.Second {
			t.Fatalf("stop of a stuck function: %v after %v", err, time.Since(began))
		}
		close(stuck)
	})
}

func TestRing(t *testing.T) {
	r := NewRing(3)
	fmt.Fprint(r, "a\nb\nc\nd\npart")
	if got := strings.Join(r.Lines(), ","); got != "b,c,d,part" {
		t.Fatalf("%s", got)
	}
	fmt.Fprint(r, "ial\n")
	if got := strings.Join(r.Lines(), ","); got != "c,d,partial" {
		t.Fatalf("%s", got)
	}
}

// A process over max_memory_mb fails its health check: after HealthFailures checks it is
// reported down with reason memory, which the service-down policy restarts.
func TestMemoryLimit(t *testing.T) {
	ev := &events{}
	s := NewSupervisor(ev.add, nil)
	s.HealthFailures = 2
	cfg := helper("bot", "leak")
	cfg.MaxMemoryMB = 64
	p := NewProcess(cfg)
	s.Add(p)
	if err := s.Start(context.Background(), "bot"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.StopAll(context.Background(), time.Second) })
	eventually(t, "the process past its limit", func() bool {
		mb, err := p.RSSMB(context.Background())
		return err == nil && mb > 64
	})
	s.CheckHealth(context.Background())
	if err := p.Health(context.Background()); !errors.Is(err, ErrMemory) {
		t.Fatalf("health: %v", err)
	}
	s.CheckHealth(context.Background())
	if got := strings.Join(ev.list(), " "); got != "SERVICE_UP SERVICE_DOWN(memory)" {
		t.Fatalf("events %s", got)
	}
}

// Kill is a crash as far as the supervisor knows: SERVICE_DOWN with the signal.
func TestKillIsACrash(t *testing.T) {
	ev := &events{}
	s := NewSupervisor(ev.add, nil)
	p := NewProcess(helper("bot", "serve"))
	s.Add(p)
	if err := s.Start(context.Background(), "bot"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ready", hasLine(p, "ready"))
	if err := s.Kill("bot"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SERVICE_DOWN", func() bool { return len(ev.list()) == 2 })
	if got := strings.Join(ev.list(), " "); got != "SERVICE_UP SERVICE_DOWN(-1)" {
		t.Fatalf("events %s", got)
	}
	ev.catalogued(t)
	if err := s.Kill("nobody"); err == nil {
		t.Fatal("killed an unknown service")
	}
}
