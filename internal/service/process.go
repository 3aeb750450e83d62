package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v4/process"

	"github.com/remedy-run/remedy/internal/child"
)

// ProcessConfig declares an external process to supervise, for example an existing
// Node.js bot.
type ProcessConfig struct {
	Name    string
	Command []string // program and arguments; no shell
	Dir     string
	// Env is set in the process's environment (systemd's Environment=), over a clean
	// base (child.Env): PATH, HOME, LANG, TZ, … and the names in PassEnv, copied from
	// Environ (remedy's own environment by default) when they are set there.
	Env       map[string]string
	PassEnv   []string
	Environ   []string
	HealthURL string // optional: GET must answer 2xx
	Grace     time.Duration
	Lines     int // output lines kept (default 200)
	// MaxMemoryMB makes a resident size above it a failed health check (0: no limit),
	// so that a leaking process is restarted by the service-down policy. The size is
	// the whole process tree's (RSSMB), as systemd's MemoryMax= is the cgroup's.
	MaxMemoryMB int
}

// ErrMemory is a health failure for a process over its memory limit.
var ErrMemory = errors.New("over its memory limit")

// Process is a supervised child process, in its own process group so that stopping it
// stops everything it started. A run lasts from Start until every process of its group
// is gone, not only the one remedy started: a wrapper script that dies on SIGTERM while
// the bot it started ignores it is still running.
type Process struct {
	cfg    ProcessConfig
	out    *Ring
	client *http.Client

	mu       sync.Mutex
	cmd      *exec.Cmd     // the group's leader, until it is reaped
	pgid     int           // the current run's process group, until no member is left
	done     chan struct{} // closed when the current run's whole group is gone
	stopping bool
	exitCode int
	exitErr  error
	started  time.Time
	onExit   func(code int, err error)
}

// NewProcess returns a process service; it does not start it.
func NewProcess(cfg ProcessConfig) *Process {
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	return &Process{cfg: cfg, out: NewRing(cfg.Lines), client: &http.Client{}}
}

// Name is the service's name.
func (p *Process) Name() string { return p.cfg.Name }

// Output is the kept output.
func (p *Process) Output() []string { return p.out.Lines() }

func (p *Process) setOnExit(f func(code int, err error)) { p.onExit = f }

// Start starts the process. Its lifetime does not depend on ctx.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pgid != 0 {
		return fmt.Errorf("%s: already running (process group %d)", p.cfg.Name, p.pgid)
	}
	if len(p.cfg.Command) == 0 {
		return fmt.Errorf("%s: no command", p.cfg.Name)
	}
	environ := p.cfg.Environ
	if environ == nil {
		environ = os.Environ()
	}
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = child.Env(environ, p.cfg.PassEnv, p.cfg.Env)
	// The output goes through a pipe of our own, read until every holder closes it:
	// given a plain io.Writer, cmd.Wait would also wait for that, so a leftover child
	// still writing would hide the leader's exit (no SERVICE_DOWN, never restarted).
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%s: %w", p.cfg.Name, err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	pw.Close() // the children hold their copies
	if err != nil {
		pr.Close()
		return fmt.Errorf("%s: %w", p.cfg.Name, err)
	}
	go func() {
		_, _ = io.Copy(p.out, pr)
		pr.Close()
	}()
	done := make(chan struct{})
	p.cmd, p.pgid, p.done, p.stopping, p.started = cmd, cmd.Process.Pid, done, false, time.Now()
	go p.wait(cmd, done)
	return nil
}

// wait reaps the leader, reports an exit nobody asked for at once, then ends what is
// left of its group (SIGTERM, SIGKILL after grace, as systemd does when a unit's main
// process exits) before the run counts as over.
func (p *Process) wait(cmd *exec.Cmd, done chan struct{}) {
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	pgid := cmd.Process.Pid
	p.mu.Lock()
	stopping := p.stopping
	p.cmd, p.exitCode, p.exitErr = nil, code, err
	onExit := p.onExit
	p.mu.Unlock()
	if !stopping && onExit != nil {
		onExit(code, err)
	}
	// Without a deadline: the SIGKILL at grace ends every member but one stuck in the
	// kernel, and until that one is gone the run is not over.
	_ = child.Stop(context.Background(), pgid, p.cfg.Grace)
	p.mu.Lock()
	p.pgid = 0
	p.mu.Unlock()
	close(done)
}

// Stop sends SIGTERM to the process group, SIGKILL to the group if any member is left
// after grace (the configured grace if zero), and returns once every member is gone. A
// deliberate stop is not reported as a crash. It returns an error when ctx ends before
// the group is gone; the service then still counts as running, and Start refuses.
func (p *Process) Stop(ctx context.Context, grace time.Duration) error {
	if grace <= 0 {
		grace = p.cfg.Grace
	}
	p.mu.Lock()
	pgid, done := p.pgid, p.done
	if pgid == 0 {
		p.mu.Unlock()
		return nil
	}
	p.stopping = true
	p.mu.Unlock()
	if err := child.Stop(ctx, pgid, grace); err != nil {
		return fmt.Errorf("%s: %w", p.cfg.Name, err)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: process group %d not reaped: %w", p.cfg.Name, pgid, ctx.Err())
	}
}

// Health reports whether the process runs and, with a health URL, answers 2xx.
func (p *Process) Health(ctx context.Context) error {
	p.mu.Lock()
	running := p.cmd != nil
	p.mu.Unlock()
	if !running {
		return errors.New("not running")
	}
	if p.cfg.MaxMemoryMB > 0 {
		if mb, err := p.RSSMB(ctx); err == nil && mb > float64(p.cfg.MaxMemoryMB) {
			return fmt.Errorf("%w: %.0f MB resident, the limit is %d MB", ErrMemory, mb, p.cfg.MaxMemoryMB)
		}
	}
	if p.cfg.HealthURL == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.HealthURL, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check answered %s", resp.Status)
	}
	return nil
}

// PID is the running process's id (0 when stopped).
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// RSSMB is the service's resident memory in MB (MiB): the sum over its whole process
// tree (child.Tree: the process group and the leader's descendants), as systemd's
// MemoryMax= counts a unit's cgroup and Monit's totalmem counts children, so a leak
// behind a wrapper script (`sh start-bot.sh`, `npm start`) counts. Pages shared between
// members (a fork's copy-on-write) are counted once per member, so the figure errs
// high, never low. It returns an error when the service does not run.
func (p *Process) RSSMB(ctx context.Context) (float64, error) {
	p.mu.Lock()
	pid, pgid := 0, p.pgid
	if p.cmd != nil {
		pid = p.cmd.Process.Pid
	}
	p.mu.Unlock()
	if pid == 0 {
		return 0, errors.New("not running")
	}
	var sum uint64
	seen := 0
	for _, m := range child.Tree(pgid, pid) {
		proc, err := process.NewProcessWithContext(ctx, int32(m))
		if err != nil {
			continue // exited meanwhile
		}
		mi, err := proc.MemoryInfoWithContext(ctx)
		if err != nil {
			continue
		}
		sum += mi.RSS
		seen++
	}
	if seen == 0 {
		return 0, errors.New("not running")
	}
	return float64(sum) / (1 << 20), nil
}

// Kill sends SIGKILL to the process group, as a crash or the OOM killer would (the fire
// drill "service"). The supervisor sees an exit like any other.
func (p *Process) Kill() error {
	p.mu.Lock()
	pgid := p.pgid
	p.mu.Unlock()
	if pgid == 0 {
		return errors.New("not running")
	}
	return syscall.Kill(-pgid, syscall.SIGKILL)
}
