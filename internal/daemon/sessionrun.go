package daemon

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/session"
	"github.com/remedy-run/remedy/web"
)

// sessionRuns runs the sessions, each in a goroutine of its own with its own stop, as
// one actor: a reload adds, stops or restarts one without disturbing the others.
type sessionRuns struct {
	mu      sync.Mutex
	started bool // the actor runs
	stopped bool // the actor stopped: a session added now is closed, not run
	runs    map[*session.Session]*sessionRun
}

type sessionRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs s until stop (or the actor's end); once the actor stopped it closes s.
func (r *sessionRuns) start(s *session.Session, log func(string, ...any)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		s.Close()
		return
	}
	if r.runs == nil {
		r.runs = map[*session.Session]*sessionRun{}
	}
	if _, ok := r.runs[s]; ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &sessionRun{cancel: cancel, done: make(chan struct{})}
	r.runs[s] = run
	go func() {
		defer close(run.done)
		if err := s.Run(ctx); err != nil {
			log("WhatsApp session stopped with an error", "session", s.Name(), "error", err)
		}
	}()
}

// stop stops s and waits until its queues finished and its socket closed.
func (r *sessionRuns) stop(s *session.Session) {
	r.mu.Lock()
	run := r.runs[s]
	delete(r.runs, s)
	r.mu.Unlock()
	if run == nil {
		s.Close()
		return
	}
	run.cancel()
	<-run.done
}

// runSessions is the sessions' actor: it runs every session until ctx ends, then stops
// them all (each in order: intake, queues, socket) and waits.
func (d *Daemon) runSessions(ctx context.Context) error {
	d.runs.mu.Lock()
	d.runs.started = true
	d.runs.mu.Unlock()
	for _, s := range d.sessions.all() {
		d.runs.start(s, d.log.Error)
	}
	<-ctx.Done()
	d.runs.mu.Lock()
	d.runs.stopped = true
	runs := d.runs.runs
	d.runs.runs = nil
	d.runs.mu.Unlock()
	for _, run := range runs {
		run.cancel()
	}
	for _, run := range runs {
		<-run.done
	}
	return nil
}

// ReloadSessions re-reads the configuration file's sessions (SIGHUP): it opens and runs
// the new ones, stops the removed ones (their queued items stay in remedy.db, reported
// by SESSION_REMOVED, the log and the status), restarts the changed ones and leaves the
// others alone. A configuration with errors changes nothing (the error says why). A
// session that does not open is reported as at start (SESSION_OPEN_FAILED) and retried
// at the next reload.
func (d *Daemon) ReloadSessions(ctx context.Context) error {
	if d.cfg.File == "" {
		return nil // the built-in defaults: nothing to re-read
	}
	d.reloading.Lock()
	defer d.reloading.Unlock()
	cfg, err := config.Load(d.cfg.File, nil)
	if err != nil {
		d.sessionsReloadFailed(err)
		return err
	}
	if prev, _ := d.sessions.reloadErr.Swap("").(string); prev != "" {
		// The configuration reads again: what SESSION_RELOAD_FAILED raised resolves.
		d.emit(engine.Event{Time: time.Now(), Code: "SESSION_RELOADED", Source: "daemon"})
	}
	want := cfg.Sessions()
	d.runs.mu.Lock()
	running := d.runs.started && !d.runs.stopped
	d.runs.mu.Unlock()
	if !running {
		return errors.New("sessions are reloaded only while remedy runs")
	}
	wanted := map[string]config.Session{}
	for _, sc := range want {
		wanted[sc.Name] = sc
	}
	keep := map[string]bool{}
	var stop []*session.Session
	for _, s := range d.sessions.all() {
		sc, ok := wanted[s.Name()]
		if ok && reflect.DeepEqual(sc, s.Config().Session) {
			keep[s.Name()] = true
			continue
		}
		stop = append(stop, s)
	}
	// Out of the set first, so that no send is routed to a session being stopped.
	d.publishSessions(slicesFilter(d.sessions.all(), func(s *session.Session) bool { return keep[s.Name()] }))
	for _, s := range stop {
		d.runs.stop(s)
		if _, ok := wanted[s.Name()]; !ok {
			d.sessionRemoved(ctx, s)
		} else {
			d.log.Info("WhatsApp session restarted: its configuration changed", "session", s.Name())
		}
	}
	var added []*session.Session
	for _, sc := range want {
		if keep[sc.Name] {
			continue
		}
		s, err := d.openSession(ctx, d.opts, sc)
		if err != nil {
			continue // reported; retried at the next reload
		}
		d.sessions.removed.Delete(sc.Name)
		s.Start(ctx, false)
		added = append(added, s)
	}
	for name := range d.sessions.failedNames() {
		if _, ok := wanted[name]; !ok {
			d.sessions.failed.Delete(name) // no longer configured: its failure is over
			d.emit(engine.Event{Time: time.Now(), Code: "SESSION_REMOVED", Source: "daemon",
				Labels: map[string]string{session.Label: name}, Message: "session " + name + " (not opened) is no longer configured"})
		}
	}
	d.sessionCfgs.Store(&want)
	d.publishSessions(append(d.sessions.all(), added...))
	for _, s := range added {
		d.runs.start(s, d.log.Error)
	}
	d.addSessionChecks()
	return nil
}

// sessionsReloadFailed reports a configuration a reload refused: the log,
// SESSION_RELOAD_FAILED (its first error, with file:line:col) and the status until a
// reload succeeds, as the running sessions go on unchanged.
func (d *Daemon) sessionsReloadFailed(err error) {
	d.log.Error("sessions not reloaded: the configuration has errors; the running sessions go on", "error", err)
	errs := strings.Split(strings.TrimSpace(err.Error()), "\n")
	msg := errs[0]
	if len(errs) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
	}
	d.sessions.reloadErr.Store("sessions not reloaded, the configuration has errors: " + msg)
	d.emit(engine.Event{Time: time.Now(), Code: "SESSION_RELOAD_FAILED", Source: "daemon", Message: msg, Value: float64(len(errs))})
}

// sessionRemoved reports a session a reload removed, with what its queues still hold.
func (d *Daemon) sessionRemoved(ctx context.Context, s *session.Session) {
	counts := map[string]string{session.Label: s.Name()}
	total, what := 0, []string{}
	for _, q := range s.QueueList() {
		st, err := q.Stats(ctx)
		if err != nil {
			continue
		}
		kind, _, _ := strings.Cut(q.Name(), "_")
		counts[kind] = fmt.Sprint(st.Depth)
		total += st.Depth
		what = append(what, fmt.Sprintf("%d in %s", st.Depth, q.Name()))
	}
	msg := fmt.Sprintf("session %s removed by a reload; its queued items stay in remedy.db (%s) until it is configured again",
		s.Name(), strings.Join(what, ", "))
	d.log.Warn(msg, "session", s.Name(), "queued", total)
	d.sessions.removed.Store(s.Name(), msg)
	d.emit(engine.Event{Time: time.Now(), Code: "SESSION_REMOVED", Source: "daemon", Labels: counts, Message: msg, Value: float64(total)})
}

// failedNames are the sessions that did not open.
func (ss *sessionSet) failedNames() map[string]bool {
	out := map[string]bool{}
	ss.failed.Range(func(k, _ any) bool { out[k.(string)] = true; return true })
	return out
}

// notes are the status's words about sessions that do not run: not opened, or removed
// with queued items.
func (ss *sessionSet) notes() []string {
	var out []string
	ss.failed.Range(func(_, v any) bool { out = append(out, v.(string)); return true })
	ss.removed.Range(func(_, v any) bool { out = append(out, v.(string)); return true })
	slices.Sort(out) // the same words in the same order at every look
	if e, _ := ss.reloadErr.Load().(string); e != "" {
		out = append([]string{e}, out...)
	}
	return out
}

func slicesFilter[T any](l []T, keep func(T) bool) []T {
	var out []T
	for _, x := range l {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// Reload is SIGHUP's and POST /api/v1/reload's: the configuration's sessions (added,
// removed, changed ones restarted; ReloadSessions), then the policies. A configuration
// with errors changes no session and its errors join the status (each "file:line:col:
// …"), which then reads not OK (the dashboard's and !status's "last reload failed"),
// whatever the policies did; the running sessions and policies go on.
func (d *Daemon) Reload(ctx context.Context) web.ReloadStatus {
	serr := d.ReloadSessions(ctx)
	st := d.runner.Reload(ctx)
	if serr == nil {
		return st
	}
	var errs config.Errors
	if errors.As(serr, &errs) {
		st.Errors = append(st.Errors, errs...)
	} else {
		st.Errors = append(st.Errors, "sessions: "+serr.Error())
	}
	st.OK = false
	d.lastReload.Store(&st)
	d.hub.Publish("reload", st)
	return st
}
