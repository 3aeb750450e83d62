package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/alert"
	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/session"
	"github.com/remedy-run/remedy/policies"
	"github.com/remedy-run/remedy/web"
)

// ErrWhatsAppOff is returned by the send paths when WhatsApp is switched off
// (whatsapp.enabled false, no sessions).
var ErrWhatsAppOff = errors.New("whatsapp is off (whatsapp.enabled: false)")

// PruneMedia is CLEAN_DATA target media: the send API's uploads no queued message needs,
// in every session (none when WhatsApp is off).
func (c dataCleaner) PruneMedia(ctx context.Context) (string, error) {
	var out []string
	var errs []error
	for _, s := range c.d.sessions.all() {
		r, err := s.PruneMedia(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", s.Name(), err))
		}
		if r != "" {
			out = append(out, r)
		}
	}
	return strings.Join(out, "; "), errors.Join(errs...)
}

// sessionSet is the running sessions, ordered by name. Readers never lock: a change
// (start, reload) publishes a new list.
type sessionSet struct {
	list atomic.Pointer[[]*session.Session]
	// The configured sessions that do not run: name → why (not opened; removed by a
	// reload with queued items), for the status, /readyz and !status.
	failed, removed sync.Map
	// reloadErr is why the last reload kept the sessions as they were ("" after a good
	// one), for the status.
	reloadErr atomic.Value
}

// all is every session, ordered by name (never nil).
func (s *sessionSet) all() []*session.Session {
	if l := s.list.Load(); l != nil {
		return *l
	}
	return nil
}

// set publishes the list, ordered by name.
func (s *sessionSet) set(l []*session.Session) {
	l = slices.Clone(l)
	slices.SortFunc(l, func(a, b *session.Session) int { return cmp.Compare(a.Name(), b.Name()) })
	s.list.Store(&l)
}

// get is the session named name (nil: none).
func (s *sessionSet) get(name string) *session.Session {
	for _, x := range s.all() {
		if x.Name() == name {
			return x
		}
	}
	return nil
}

// Default is the session the single-number paths use (the old /api/v1/whatsapp/*
// routes, a send without a session): the only session, else the one named "default";
// nil when there is none or several without a "default".
func (s *sessionSet) Default() *session.Session {
	l := s.all()
	if len(l) == 1 {
		return l[0]
	}
	return s.get(config.DefaultSession)
}

// names lists the sessions' names, in order.
func (s *sessionSet) names() []string {
	var n []string
	for _, x := range s.all() {
		n = append(n, x.Name())
	}
	return n
}

// pick is the session a send names: with a name, that one (web.ErrUnknownSession if
// there is none); without, the only one (web.ErrSessionRequired with several;
// ErrWhatsAppOff with none).
func (s *sessionSet) pick(name string) (*session.Session, error) {
	l := s.all()
	if name != "" {
		if x := s.get(name); x != nil {
			return x, nil
		}
		return nil, fmt.Errorf("%w: no session %q (sessions: %s)", web.ErrUnknownSession, name, strings.Join(s.names(), ", "))
	}
	switch len(l) {
	case 0:
		if notes := s.notes(); len(notes) > 0 { // configured, and none runs
			return nil, &web.Error{Status: http.StatusServiceUnavailable, Code: "no_session",
				Message: "no WhatsApp session runs: " + strings.Join(notes, "; ")}
		}
		return nil, ErrWhatsAppOff
	case 1:
		return l[0], nil
	}
	return nil, fmt.Errorf("%w: name one of %s (\"session\" in the body or the X-Remedy-Session header)", web.ErrSessionRequired, strings.Join(s.names(), ", "))
}

// Sessions is the running sessions, ordered by name (embedders, benchmarks, tests).
func (d *Daemon) Sessions() []*session.Session { return d.sessions.all() }

// Session is the session a send names ("": the only one); errors as sessionSet.pick.
func (d *Daemon) Session(name string) (*session.Session, error) { return d.sessions.pick(name) }

// source is every session's part of a sample (queues, connection, logins).
func (ss *sessionSet) source(ctx context.Context) map[string]float64 {
	v := map[string]float64{}
	for _, s := range ss.all() {
		for k, x := range s.Source(ctx) {
			v[k] = x
		}
	}
	return v
}

// inboundWaiting is the incoming messages waiting in every session's spool.
func (ss *sessionSet) inboundWaiting() int {
	n := 0
	for _, s := range ss.all() {
		n += s.InboundWaiting()
	}
	return n
}

// openSessions opens every configured session (none with WhatsApp off). Without
// `sessions:` the one session "default" must open, or New fails, as the single
// WhatsApp connection did. With `sessions:`, one that does not open (its store locked
// by another process, damaged beyond rebuild) is reported — SESSION_OPEN_FAILED with its
// session label, the log, the status — and the others run.
func (d *Daemon) openSessions(ctx context.Context, o options) error {
	var opened []*session.Session
	cfgs := d.cfg.Sessions()
	d.sessionCfgs.Store(&cfgs)
	for _, sc := range cfgs {
		s, err := d.openSession(ctx, o, sc)
		if err != nil && len(d.cfg.SessionList) == 0 {
			return err
		}
		if err != nil {
			continue
		}
		opened = append(opened, s)
	}
	d.publishSessions(opened)
	d.reportUnconfigured(ctx, cfgs)
	return nil
}

// reportUnconfigured tells of the items left in the queues of sessions no longer
// configured (removed by a reload, then a restart): they stay in remedy.db, and the log
// and the status say so at every start, as SESSION_REMOVED said at the reload.
func (d *Daemon) reportUnconfigured(ctx context.Context, cfgs []config.Session) {
	known := map[string]bool{}
	for _, sc := range cfgs {
		in, out := session.Queues(sc.Name)
		known[in], known[out] = true, true
	}
	var rows []struct {
		Queue string `db:"queue"`
		N     int    `db:"n"`
	}
	if err := d.data.Main.Select(ctx, &rows, `SELECT queue, count(*) AS n FROM queue_items GROUP BY queue ORDER BY queue`); err != nil {
		d.log.Warn("the queues of unconfigured sessions not looked at", "error", err)
		return
	}
	left := map[string][]string{}
	var names []string
	for _, r := range rows {
		name, ok := sessionOfQueue(r.Queue)
		if !ok || known[r.Queue] {
			continue
		}
		if left[name] == nil {
			names = append(names, name)
		}
		left[name] = append(left[name], fmt.Sprintf("%d in %s", r.N, r.Queue))
	}
	for _, name := range names {
		msg := fmt.Sprintf("session %s is not configured; its queued items stay in remedy.db (%s) until it is configured again",
			name, strings.Join(left[name], ", "))
		d.log.Warn(msg, "session", name)
		d.sessions.removed.Store(name, msg)
	}
}

// sessionOfQueue is the session whose queue name is ("inbound", "outbound_sales"), as
// session.Queues names them.
func sessionOfQueue(queue string) (string, bool) {
	switch kind, name, ok := strings.Cut(queue, "_"); {
	case !ok && (queue == "inbound" || queue == "outbound"):
		return config.DefaultSession, true
	case ok && (kind == "inbound" || kind == "outbound") && config.SessionNameRE.MatchString(name):
		return name, true
	}
	return "", false
}

// openSession opens one session; a failure is reported (SESSION_OPEN_FAILED, the log,
// failedSessions) and returned.
func (d *Daemon) openSession(ctx context.Context, o options, sc config.Session) (*session.Session, error) {
	s, err := session.Open(ctx, d.sessionDeps(o), session.Config{Session: sc, CheckInterval: d.cfg.CheckInterval})
	if err != nil {
		err = fmt.Errorf("session %s: %w", sc.Name, err)
		d.log.Error("WhatsApp session not opened; the other sessions run", "session", sc.Name, "error", err)
		d.emit(engine.Event{Time: time.Now(), Code: "SESSION_OPEN_FAILED", Source: "daemon",
			Labels: map[string]string{session.Label: sc.Name}, Message: err.Error()})
		d.sessions.failed.Store(sc.Name, err.Error())
		return nil, err
	}
	d.sessions.failed.Delete(sc.Name)
	// Resolves a SESSION_OPEN_FAILED incident of this session (raised before a reload,
	// or before a restart: the engine's state keeps it firing across one). Only with
	// `sessions:`: without, a session that does not open stops remedy's start, so there
	// is nothing to resolve (and a first start shows no event of its own).
	if len(d.cfg.SessionList) > 0 {
		d.emit(engine.Event{Time: time.Now(), Code: "SESSION_OPENED", Source: "daemon", Labels: map[string]string{session.Label: sc.Name}})
	}
	return s, nil
}

// publishSessions makes l the running sessions, and their queues remedy's own in the
// catalogue (a program cannot post their QUEUE_* events).
func (d *Daemon) publishSessions(l []*session.Session) {
	d.sessions.set(l)
	var qs []string
	for _, s := range l {
		for _, q := range s.QueueList() {
			qs = append(qs, q.Name())
		}
	}
	policies.SetSessionQueues(qs)
}

// sessionDeps is what every session shares with the daemon.
func (d *Daemon) sessionDeps(o options) session.Deps {
	return session.Deps{Emit: d.emit, DB: d.data.Main, DataDir: d.cfg.DataDir, Counters: d.counters, Logger: d.log,
		HTTPClient: o.waHTTP, Handler: d.bot, WrapHandler: d.drillHandler, Commands: chatBackend{d},
		Backlog: d.storeBacklog, Tune: d.tuneQueue,
		// d.metrics is made after the sessions, before anything is sent.
		SendFailed: func(session, reason string) { d.metrics.SendFailures.WithLabelValues(session, reason).Inc() }}
}

// messagesAPI is the send API's backend: each call goes to the session it names.
type messagesAPI struct{ d *Daemon }

func (m messagesAPI) Send(ctx context.Context, in web.OutgoingMessage) (web.MessageAccepted, error) {
	s, err := m.d.sessions.pick(in.Session)
	if err != nil {
		return web.MessageAccepted{}, err
	}
	return s.Send(ctx, in)
}

// MessageStatus finds the message in any session: the one whose queue or dead letters
// hold it (its attempts, its failure), else any (a message that left has its status in
// its row alone).
func (m messagesAPI) MessageStatus(ctx context.Context, id string) (web.MessageStatus, error) {
	all := m.d.sessions.all()
	if len(all) == 0 {
		return web.MessageStatus{}, fmt.Errorf("%w: %q", web.ErrNotFound, id)
	}
	for _, s := range all {
		if s.Pipeline().Holds(ctx, id) {
			return s.MessageStatus(ctx, id)
		}
	}
	// Sent (in no queue), or its session is not running: the row names its session.
	st, err := all[0].MessageStatus(ctx, id)
	if err == nil && st.Status == chat.StatusQueued && m.d.sessions.get(st.Session) == nil {
		st.Reason = fmt.Sprintf("session %s is not running (removed by a reload, or not opened): the message waits in remedy.db until it is configured again", st.Session)
	}
	return st, err
}

func (m messagesAPI) SaveMedia(ctx context.Context, in web.MediaIn) (web.MediaUpload, error) {
	s, err := m.d.sessions.pick(in.Session)
	if err != nil {
		return web.MediaUpload{}, err
	}
	return s.SaveMedia(ctx, in)
}

// incomingMedia is GET /api/v1/incoming/{id}/media: the first session that knows the
// message answers.
func (d *Daemon) incomingMedia(ctx context.Context, id string) ([]byte, string, error) {
	var err error
	for _, s := range d.sessions.all() {
		var (
			data []byte
			mime string
		)
		if data, mime, err = s.IncomingMedia(ctx, id); !errors.Is(err, web.ErrNotFound) {
			return data, mime, err
		}
	}
	return nil, "", err
}

// alertNumbers are the running sessions with admins, as the whatsapp alert channel
// sends through them.
func (ss *sessionSet) alertNumbers() []alert.Number {
	var out []alert.Number
	for _, s := range ss.all() {
		if len(s.Config().Admins) > 0 {
			out = append(out, s.AlertNumber())
		}
	}
	return out
}
