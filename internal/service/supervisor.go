// Package service supervises remedy's services: in-process ones (workers, the WhatsApp
// connection, the sampler, the web server) and external processes from the
// configuration. It reports crashes and health as events and restarts a service when a
// policy says so; it never restarts anything on its own.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// Service is something the supervisor can start, stop and probe.
type Service interface {
	Name() string
	Start(ctx context.Context) error
	// Stop stops gracefully and forcibly after grace (0: the service's default).
	Stop(ctx context.Context, grace time.Duration) error
	Health(ctx context.Context) error
	Output() []string
	setOnExit(func(code int, err error))
}

var (
	_ Service = (*Process)(nil)
	_ Service = (*Func)(nil)
)

// Status describes a service for the dashboard.
type Status struct {
	Name     string    `json:"name"`
	Up       bool      `json:"up"`
	Since    time.Time `json:"since"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"last_exit,omitempty"`
	Output   []string  `json:"output"`
}

type entry struct {
	// starting is held from Start until SERVICE_UP is out, so that a service dying at
	// once is reported down after it was reported up, never before.
	starting  sync.Mutex
	svc       Service
	up        bool
	since     time.Time
	restarts  int
	lastExit  string
	unhealthy int // consecutive failed health checks
}

// Supervisor owns the services. It is safe for concurrent use.
type Supervisor struct {
	mu     sync.Mutex
	svcs   map[string]*entry
	events func(engine.Event)
	log    *slog.Logger
	// HealthFailures is how many consecutive failed checks make a running service down.
	HealthFailures int
}

// NewSupervisor returns a supervisor reporting to events (which must not block).
func NewSupervisor(events func(engine.Event), log *slog.Logger) *Supervisor {
	if events == nil {
		events = func(engine.Event) {}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{svcs: map[string]*entry{}, events: events, log: log, HealthFailures: 3}
}

// Add registers a service. Names are unique.
func (s *Supervisor) Add(svc Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.svcs[svc.Name()]; dup {
		return fmt.Errorf("service %q added twice", svc.Name())
	}
	e := &entry{svc: svc}
	s.svcs[svc.Name()] = e
	svc.setOnExit(func(code int, err error) { s.exited(e, code, err) })
	return nil
}

func (s *Supervisor) exited(e *entry, code int, err error) {
	e.starting.Lock()
	defer e.starting.Unlock()
	s.mu.Lock()
	e.up, e.since = false, time.Now()
	e.lastExit = fmt.Sprintf("exit code %d", code)
	if err != nil {
		e.lastExit = firstLine(err.Error())
	}
	name, exit := e.svc.Name(), e.lastExit
	s.mu.Unlock()
	s.log.Warn("service exited", "service", name, "exit", exit)
	s.emit("SERVICE_DOWN", name, exit, map[string]string{"exit_code": strconv.Itoa(code), "reason": "exited"})
}

func (s *Supervisor) emit(code, name, msg string, extra map[string]string) {
	labels := map[string]string{"service": name}
	for k, v := range extra {
		labels[k] = v
	}
	s.events(engine.Event{Time: time.Now(), Code: code, Source: "service", Labels: labels, Message: msg})
}

// Start starts one service and reports SERVICE_UP.
func (s *Supervisor) Start(ctx context.Context, name string) error {
	e, err := s.get(name)
	if err != nil {
		return err
	}
	e.starting.Lock()
	defer e.starting.Unlock()
	if err := e.svc.Start(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	e.up, e.since, e.unhealthy = true, time.Now(), 0
	s.mu.Unlock()
	s.emit("SERVICE_UP", name, "started", nil)
	return nil
}

// StartAll starts every service, in name order.
func (s *Supervisor) StartAll(ctx context.Context) error {
	var errs []error
	for _, n := range s.names() {
		errs = append(errs, s.Start(ctx, n))
	}
	return errors.Join(errs...)
}

// StopAll stops every service, in reverse name order, each within grace.
func (s *Supervisor) StopAll(ctx context.Context, grace time.Duration) error {
	names := s.names()
	var errs []error
	for i := len(names) - 1; i >= 0; i-- {
		e, _ := s.get(names[i])
		errs = append(errs, e.svc.Stop(ctx, grace))
		s.mu.Lock()
		e.up = false
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Restart stops a service gracefully (forcibly after grace) and starts it again: the
// RESTART_SERVICE recovery. It fails, starting nothing, while any process of the old
// run is alive when ctx ends.
func (s *Supervisor) Restart(ctx context.Context, name string, grace time.Duration) error {
	e, err := s.get(name)
	if err != nil {
		return err
	}
	// A replacement never starts beside a member of the old run: two bots on one
	// session or one database are worse than none.
	if err := e.svc.Stop(ctx, grace); err != nil {
		return fmt.Errorf("restart %s: the old run is still alive: %w", name, err)
	}
	s.mu.Lock()
	e.restarts++
	s.mu.Unlock()
	return s.Start(ctx, name)
}

// Kill kills a supervised process without telling the supervisor, as a crash would:
// the fire drill for the restart policies.
func (s *Supervisor) Kill(name string) error {
	p, err := s.process(name)
	if err != nil {
		return err
	}
	return p.Kill()
}

// MemoryMB is a supervised process's resident memory in MB.
func (s *Supervisor) MemoryMB(ctx context.Context, name string) (float64, error) {
	p, err := s.process(name)
	if err != nil {
		return 0, err
	}
	return p.RSSMB(ctx)
}

// process is the named service when it is an external process.
func (s *Supervisor) process(name string) (*Process, error) {
	e, err := s.get(name)
	if err != nil {
		return nil, err
	}
	p, ok := e.svc.(*Process)
	if !ok {
		return nil, fmt.Errorf("service %q is not a process", name)
	}
	return p, nil
}

// CheckHealth probes every running service once; after HealthFailures consecutive
// failures a service is reported SERVICE_DOWN (reason unhealthy), and SERVICE_UP again
// when it recovers.
func (s *Supervisor) CheckHealth(ctx context.Context) {
	for _, n := range s.names() {
		e, _ := s.get(n)
		err := e.svc.Health(ctx)
		s.mu.Lock()
		wasDown := e.unhealthy >= s.HealthFailures
		if err != nil {
			e.unhealthy++
		} else {
			e.unhealthy = 0
		}
		nowDown := e.unhealthy == s.HealthFailures
		up := e.up
		s.mu.Unlock()
		switch {
		case up && nowDown:
			reason := "unhealthy"
			if errors.Is(err, ErrMemory) {
				reason = "memory"
			}
			s.emit("SERVICE_DOWN", n, err.Error(), map[string]string{"reason": reason})
		case up && wasDown && err == nil:
			s.emit("SERVICE_UP", n, "healthy again", nil)
		}
	}
}

// RunHealth checks health every interval until ctx ends.
func (s *Supervisor) RunHealth(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, every)
			s.CheckHealth(cctx)
			cancel()
		}
	}
}

// Status describes every service.
func (s *Supervisor) Status() []Status {
	var out []Status
	for _, n := range s.names() {
		e, _ := s.get(n)
		s.mu.Lock()
		st := Status{Name: n, Up: e.up, Since: e.since, Restarts: e.restarts, LastExit: e.lastExit}
		s.mu.Unlock()
		st.Output = e.svc.Output()
		out = append(out, st)
	}
	return out
}

func (s *Supervisor) get(name string) (*entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.svcs[name]
	if !ok {
		return nil, fmt.Errorf("no service named %q", name)
	}
	return e, nil
}

func (s *Supervisor) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.svcs))
	for n := range s.svcs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
