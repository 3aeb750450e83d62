package daemon

import (
	"github.com/remedy-run/remedy/webhook"

	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/internal/whatsapp"
	"github.com/remedy-run/remedy/web"
)

// drillSender marks the fire drill's own inbound messages: they stall while the queue
// drill runs and never reach the bot's handler.
const drillSender = "remedy-drill"

// drillState is the one drill whose fault is active (the database lock, the stall).
type drillState struct {
	busy       atomic.Bool
	stallUntil atomic.Int64 // unix nanos; drill messages block until then
	// A drill still running at shutdown ends early (the lock is released) and is waited
	// for before the databases close.
	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// start registers a drill goroutine; false once the daemon is shutting down.
func (s *drillState) start() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if s.stop == nil {
		s.stop = make(chan struct{})
	}
	s.wg.Add(1)
	return true
}

// shutdown ends the running drills and waits for them.
func (s *drillState) shutdown() {
	s.mu.Lock()
	s.stopped = true
	if s.stop != nil {
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", web.ErrDrillUnavailable, fmt.Sprintf(format, args...))
}

// Drill injects a fire drill's fault into the running daemon. Each fault is real and
// ends by itself (or by the policies' recovery): a cut WhatsApp socket, the database's
// write lock held by another connection, inbound items that stall, a killed service.
func (d *Daemon) Drill(ctx context.Context, req web.DrillRequest) (web.DrillStarted, error) {
	st := web.DrillStarted{Scenario: req.Scenario, Started: time.Now()}
	switch req.Scenario {
	case "whatsapp":
		sess := d.sessions.Default()
		if sess == nil {
			return st, unavailable("%s", noDrillSession(&d.sessions))
		}
		if s := sess.State(); s != whatsapp.Connected {
			return st, unavailable("WhatsApp is %s; the drill needs a working connection to break", s)
		}
		d.drillEvent("DRILL_STARTED", req.Scenario, "cutting the WhatsApp socket", 0)
		n := sess.Conn().DropSocket()
		st.Detail = fmt.Sprintf("cut %d socket(s) under the WhatsApp client", n)
		st.Policies, st.Recovered = []string{"wa-reconnect"}, "WA_CONNECTED"
	case "database":
		secs := cmp.Or(req.Seconds, 10)
		if !d.drill.busy.CompareAndSwap(false, true) {
			return st, unavailable("another drill is running")
		}
		if !d.drill.start() {
			d.drill.busy.Store(false)
			return st, unavailable("remedy is shutting down")
		}
		lock, err := holdWriteLock(ctx, filepath.Join(d.cfg.DataDir, store.RemedyFile))
		if err != nil {
			d.drill.wg.Done()
			d.drill.busy.Store(false)
			return st, fmt.Errorf("taking the write lock: %w", err)
		}
		d.drillEvent("DRILL_STARTED", req.Scenario, fmt.Sprintf("holding remedy.db's write lock for %ds", secs), 0)
		st.Ends = st.Started.Add(time.Duration(secs) * time.Second)
		st.Detail = fmt.Sprintf("another connection holds remedy.db's write lock for %ds while writes arrive at 10/s", secs)
		st.Policies, st.Recovered = []string{"db-busy-burst"}, "DRILL_PROBE_OK"
		go d.databaseDrill(lock, st.Started, time.Duration(secs)*time.Second)
	case "queue":
		sess := d.sessions.Default()
		if sess == nil {
			return st, unavailable("%s", noDrillSession(&d.sessions))
		}
		in := sess.Pipeline().In
		secs := cmp.Or(req.Seconds, 600)
		if !d.drill.busy.CompareAndSwap(false, true) {
			return st, unavailable("another drill is running")
		}
		until := st.Started.Add(time.Duration(secs) * time.Second)
		d.drill.stallUntil.Store(until.UnixNano())
		n := in.Workers() + 1 // one per worker stalls them all; the last one waits behind them
		for i := range n {
			// A chat of its own each: the queue hands one chat's messages over one at a
			// time, and the drill must stall every worker.
			m := chat.Message{ID: fmt.Sprintf("drill-%d-%d", st.Started.UnixNano(), i), From: drillSender, Text: "fire drill", Time: st.Started,
				Chat: fmt.Sprintf("%s-%d", drillSender, i)}
			if _, err := in.Enqueue(ctx, m); err != nil {
				d.drill.stallUntil.Store(0)
				d.drill.busy.Store(false)
				return st, fmt.Errorf("queueing the drill's items: %w", err)
			}
		}
		d.drillEvent("DRILL_STARTED", req.Scenario, fmt.Sprintf("%d inbound items stall for up to %ds", n, secs), 0)
		time.AfterFunc(time.Until(until), func() { d.drill.busy.Store(false) })
		st.Ends = until
		st.Detail = fmt.Sprintf("%d items in the inbound queue hang in their handler (one per worker, one waiting) for up to %ds", n, secs)
		st.Policies, st.Recovered = []string{"queue-stuck"}, "QUEUE_OK"
		st.RecoveredLabels = map[string]string{"queue": in.Name()}
	case "service":
		name := req.Service
		if name == "" {
			svcs := d.sup.Status()
			if len(svcs) != 1 {
				return st, unavailable("name the service (%d are supervised)", len(svcs))
			}
			name = svcs[0].Name
		}
		d.drillEvent("DRILL_STARTED", req.Scenario, "killing service "+name, 0)
		if err := d.sup.Kill(name); err != nil {
			return st, unavailable("%v", err)
		}
		st.Detail = "sent SIGKILL to service " + name
		st.Policies, st.Recovered = []string{"service-down"}, "SERVICE_UP"
		st.RecoveredLabels = map[string]string{"service": name}
	default:
		return st, fmt.Errorf("unknown scenario %q", req.Scenario)
	}
	return st, nil
}

// noDrillSession says why the WhatsApp drills have no session to act on: WhatsApp is
// off, or several sessions run and none is named default (the drills act on that one).
func noDrillSession(ss *sessionSet) string {
	if len(ss.all()) == 0 {
		return "WhatsApp is off, so there is no connection or message queue to break"
	}
	return "several WhatsApp sessions run and none is named default, the one the drills act on"
}

func (d *Daemon) drillEvent(code, scenario, msg string, value float64) {
	d.emit(engine.Event{Time: time.Now(), Code: code, Source: "drill", Labels: map[string]string{"scenario": scenario},
		Message: msg, Value: value})
}

// writeLock is a second connection to a database inside BEGIN IMMEDIATE.
type writeLock struct {
	db   *sqlx.DB
	conn *sqlx.Conn
}

func holdWriteLock(ctx context.Context, path string) (*writeLock, error) {
	db, err := sqlx.Open("sqlite", store.FileURI(path)+"?_pragma=busy_timeout(2000)")
	if err != nil {
		return nil, err
	}
	conn, err := db.Connx(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return &writeLock{db: db, conn: conn}, nil
}

func (l *writeLock) release() {
	_, _ = l.conn.ExecContext(context.Background(), "ROLLBACK")
	l.conn.Close()
	l.db.Close()
}

// databaseDrill holds the lock for hold while writes arrive at 10 per second (the bot's
// traffic), each waiting on the lock through the store's retry; then it reports whether
// they all went through.
func (d *Daemon) databaseDrill(lock *writeLock, started time.Time, hold time.Duration) {
	defer d.drill.wg.Done()
	defer d.drill.busy.Store(false)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		n    int
	)
	ctx, cancel := context.WithTimeout(context.Background(), hold+30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	release := time.NewTimer(hold)
	for held := true; held; {
		select {
		case <-release.C:
			held = false
		case <-d.drill.stop: // remedy is stopping: end the drill now
			held = false
		case <-tick.C:
			n++
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := d.data.Main.Exec(ctx, `INSERT INTO state(key, kind, data, updated) VALUES (?, 'drill', '{}', ?)
					ON CONFLICT(key) DO UPDATE SET updated = excluded.updated`, fmt.Sprintf("remedy.drill.%d", i%10), time.Now().UnixMilli())
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}(n)
		}
	}
	tick.Stop()
	lock.release()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		d.drillEvent("DRILL_PROBE_FAILED", "database", fmt.Sprintf("%d of %d writes failed: %v", len(errs), n, errs[0]), float64(len(errs)))
		return
	}
	d.drillEvent("DRILL_PROBE_OK", "database", fmt.Sprintf("all %d writes that waited on the lock went through", n), time.Since(started).Seconds())
}

// drillHandler holds the queue drill's items until the stall ends (or their handler is
// cancelled: a timeout, CLEAR_QUEUE restarting the workers) and passes every other
// message, and every other delivery, on.
func (d *Daemon) drillHandler(next chat.Handler) chat.Handler {
	return drillHandler{d: d, next: next}
}

type drillHandler struct {
	d    *Daemon
	next chat.Handler
}

func (h drillHandler) HandleEvent(ctx context.Context, e webhook.Event) error {
	if eh, ok := h.next.(chat.EventHandler); ok {
		return eh.HandleEvent(ctx, e)
	}
	return nil
}

func (h drillHandler) Handle(ctx context.Context, m chat.Message) (string, error) {
	if m.From != drillSender {
		if h.next == nil {
			return "", nil
		}
		return h.next.Handle(ctx, m)
	}
	wait := time.Until(time.Unix(0, h.d.drill.stallUntil.Load()))
	if wait <= 0 {
		return "", nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return "", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
