package alert

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/policies"
)

// Channel delivers alerts somewhere. Send gets one or more alerts, oldest first, and
// must return an error if any was not delivered (the whole batch is then tried again).
type Channel interface {
	Name() string
	Send(ctx context.Context, alerts []Alert) error
}

// Options configure a Pipeline.
type Options struct {
	DB       *store.DB
	Channels []Channel
	// PerMinute limits deliveries per channel (e.g. whatsapp: 10); no limit if absent.
	PerMinute map[string]int
	// Batch is the most alerts handed to a channel at once (default 10); more are sent
	// grouped in several deliveries.
	Batch int
	// Fold names the channels where a flood that the per-minute limit would spread over
	// minutes is sent as the most severe alerts plus one summary (default: whatsapp).
	Fold    []string
	Events  func(engine.Event) // ALERT_UNDELIVERED; must not block
	Metrics *monitor.Metrics   // may be nil
	Logger  *slog.Logger
	// LabelNames are the label names alerts can carry (policies.Set.LabelNames); a
	// silence matching any other key could never match and is refused. Nil: any key.
	LabelNames func() []string
}

// Pipeline is the alert system. Handle is called by the daemon's engine loop; Run
// delivers the outbox. It is safe for concurrent use.
type Pipeline struct {
	opts     Options
	channels map[string]Channel
	limits   map[string]*rate.Limiter
	wake     chan struct{}      // Run's: store what was submitted
	workers  map[string]*worker // one delivery loop per channel (deliver.go)

	// handleMu makes storing an alert and updating the incidents one step (Handle,
	// the release of held incidents, acks).
	handleMu  sync.Mutex
	incidents map[string]*incident // open incidents by fingerprint (incidents.go)

	mu        sync.Mutex
	refreshed map[string]time.Time         // when each refreshing channel was last given the open incidents
	acks      map[string]policies.Severity // fingerprint -> the acknowledged severity
	recent    map[string]time.Time         // dedupe: fingerprint|state|severity -> when handled
	failing   map[string]bool              // channels currently reported undelivered
	retryNow  map[string]bool              // channels whose waiting alerts are due at once
	silences  []Silence
	direct    []*pendingAlert // not stored yet: the workers send them directly, once

	submitted []engine.Decision // Submit's, not yet taken by Run
	// Guarded by handleMu; unstoredN is its length, for Backlog.
	unstored     []*pendingAlert
	unstoredN    atomic.Int64
	storeFailing bool
}

// New returns a pipeline; it loads active silences and acks from the database.
func New(ctx context.Context, opts Options) (*Pipeline, error) {
	if opts.Batch <= 0 {
		opts.Batch = 10
	}
	if opts.Events == nil {
		opts.Events = func(engine.Event) {}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{opts: opts, channels: map[string]Channel{}, limits: map[string]*rate.Limiter{}, wake: make(chan struct{}, 1),
		incidents: map[string]*incident{}, refreshed: map[string]time.Time{}, acks: map[string]policies.Severity{}, recent: map[string]time.Time{}, failing: map[string]bool{}}
	for _, c := range opts.Channels {
		p.channels[c.Name()] = c
		if n := opts.PerMinute[c.Name()]; n > 0 {
			p.limits[c.Name()] = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
		}
	}
	p.workers = newWorkers(p.channels)
	if err := p.loadSilences(ctx); err != nil {
		return nil, err
	}
	if err := p.loadIncidents(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Handle takes an engine decision. Alert decisions are stored, then queued in the
// outbox for their channels unless the engine held them (inhibition), or a silence or
// an ack holds them back (the row is kept, with why). A resolution goes to every
// channel that was given the incident's firing, and nowhere else, whatever holds are
// active: the last word a channel has about an incident must be true. It returns once
// the alert is durable. The engine loop uses Submit instead; Handle suits callers that
// can wait (the NOTIFY action).
func (p *Pipeline) Handle(ctx context.Context, d engine.Decision) error {
	if d.Kind != engine.KindAlert {
		return nil
	}
	p.handleMu.Lock()
	defer p.handleMu.Unlock()
	pa := p.prepare(d)
	if pa == nil {
		return nil
	}
	if err := p.store(ctx, pa); err != nil {
		return err
	}
	p.stored(pa)
	return nil
}

// pendingAlert is an alert on its way into the database.
type pendingAlert struct {
	a    Alert
	held string
	out  []delivery

	// While it cannot be stored, the channels' workers send it directly (sendDirect).
	direct  bool            // in Pipeline.direct (handleMu)
	mu      sync.Mutex      // guards the rest; store holds it through its transaction
	triedOn map[string]bool // channels a direct send was tried on
	sent    map[string]time.Time
	id      int64 // its alerts row once stored
}

// prepare applies dedupe, the engine's hold, silences and acks, decides the channels
// (deliveries) and records them in the open incidents; nil for a duplicate. Alerts are
// prepared in the order the engine decided them (handleMu held).
func (p *Pipeline) prepare(d engine.Decision) *pendingAlert {
	a := FromDecision(d)
	if p.duplicate(a) {
		p.count("duplicate")
		return nil
	}
	held := a.Held
	if held == "" {
		held = p.hold(a)
	}
	return p.plan(a, held)
}

// plan decides an alert's deliveries and records them in the open incidents.
func (p *Pipeline) plan(a Alert, held string) *pendingAlert {
	var out []delivery
	if held == "" {
		out = p.deliveries(a)
		if a.State == "resolved" && len(out) == 0 {
			held = "not notified: its firing was never sent"
		}
	}
	p.track(a, held, out)
	return &pendingAlert{a: a, held: held, out: out, triedOn: map[string]bool{}, sent: map[string]time.Time{}}
}

// store writes the alert and its outbox rows in one transaction; channels it was
// already delivered on are recorded as delivered. A resolution deletes the incident's
// ack in the same transaction.
func (p *Pipeline) store(ctx context.Context, pa *pendingAlert) error {
	// Held through the transaction: a direct send that ends meanwhile either is in
	// sent before the rows are written, or sees the id after and marks its row.
	pa.mu.Lock()
	defer pa.mu.Unlock()
	a := pa.a
	labels, _ := json.Marshal(a.Labels)
	annotations, _ := json.Marshal(a.Annotations)
	err := p.opts.DB.WithTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO alerts(fingerprint, ts, policy, instance, severity, state, summary, labels,
			annotations, suppressed, held, reason, repeat, instant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.Fingerprint, a.Time.UnixMilli(), a.Policy, a.Instance, string(a.Severity), a.State, a.Summary, string(labels),
			string(annotations), a.Suppressed, pa.held, a.Reason, a.Repeat, a.Instant)
		if err != nil {
			return err
		}
		if a.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if a.State == "resolved" {
			if _, err := tx.Exec(ctx, `DELETE FROM acks WHERE fingerprint = ?`, a.Fingerprint); err != nil {
				return err
			}
		}
		for _, dl := range pa.out {
			b := a
			b.Ends = dl.ends
			payload, _ := json.Marshal(b)
			delivered := int64(0)
			if at, ok := pa.sent[dl.channel]; ok {
				delivered = at.UnixMilli()
			}
			if _, err := tx.Exec(ctx, `INSERT INTO alert_outbox(alert_id, channel, payload, created, delivered) VALUES (?, ?, ?, ?, ?)`,
				a.ID, dl.channel, string(payload), time.Now().UnixMilli(), delivered); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("alert %s: %w", a.Policy, err)
	}
	pa.id = a.ID
	return nil
}

// stored ends a stored alert's way in: it leaves the direct sends, and its channels'
// workers look at their outbox (handleMu held).
func (p *Pipeline) stored(pa *pendingAlert) {
	if pa.direct {
		pa.direct = false
		p.mu.Lock()
		p.direct = slices.DeleteFunc(p.direct, func(x *pendingAlert) bool { return x == pa })
		p.mu.Unlock()
	}
	if pa.held != "" {
		p.count(strings.SplitN(pa.held, " ", 2)[0])
		return
	}
	p.wakeChannels(pa.out)
}

// Submit hands an alert decision to the pipeline without waiting: the engine loop's way
// in, so that no SQLite write happens on the loop. Run stores submitted alerts in order
// and never waits for a delivery; one that cannot be stored (a full disk, a held lock)
// is delivered at once by every channel's worker that does not need the disk, kept in memory, and stored (its deliveries
// recorded) when the database takes writes again. Backlog counts them.
func (p *Pipeline) Submit(d engine.Decision) {
	if d.Kind != engine.KindAlert {
		return
	}
	p.mu.Lock()
	p.submitted = append(p.submitted, d)
	p.mu.Unlock()
	p.Wake()
}

// Backlog is the number of alerts submitted and not stored yet.
func (p *Pipeline) Backlog() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.submitted) + int(p.unstoredN.Load())
}

// storeSubmitted stores what was submitted, in order; false if the database refused.
func (p *Pipeline) storeSubmitted(ctx context.Context) bool {
	p.handleMu.Lock()
	defer p.handleMu.Unlock()
	p.mu.Lock()
	subs := p.submitted
	p.submitted = nil
	p.unstoredN.Add(int64(len(subs))) // counted as waiting until they are stored
	p.mu.Unlock()
	for _, d := range subs {
		if pa := p.prepare(d); pa != nil {
			p.unstored = append(p.unstored, pa)
			p.unstoredN.Store(int64(len(p.unstored)))
		}
	}
	defer func() { p.unstoredN.Store(int64(len(p.unstored))) }()
	p.unstoredN.Store(int64(len(p.unstored)))
	for len(p.unstored) > 0 {
		pa := p.unstored[0]
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.store(sctx, pa)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			if !p.storeFailing {
				p.storeFailing = true
				p.opts.Logger.Error("alerts not stored; delivering them directly and keeping them to store later", "alerts", len(p.unstored), "error", err)
				p.opts.Events(engine.Event{Time: time.Now(), Code: "STORE_BACKLOG", Source: "alert",
					Labels: map[string]string{"writer": "alerts"}, Message: err.Error(), Value: float64(len(p.unstored))})
			}
			// Handed to the channels' workers, which send them without holding up the
			// next try to store them (nor each other).
			var woken []delivery
			p.mu.Lock()
			for _, pa := range p.unstored {
				if !pa.direct && pa.held == "" {
					pa.direct = true
					p.direct = append(p.direct, pa)
					woken = append(woken, pa.out...)
				}
			}
			p.mu.Unlock()
			p.wakeChannels(woken)
			return false
		}
		p.unstored = p.unstored[1:]
		p.unstoredN.Store(int64(len(p.unstored)))
		p.stored(pa)
	}
	if p.storeFailing {
		p.storeFailing = false
		p.opts.Logger.Info("alerts stored again")
	}
	return true
}

func (p *Pipeline) count(reason string) {
	if p.opts.Metrics != nil {
		p.opts.Metrics.AlertsSuppressed.WithLabelValues(reason).Inc()
	}
}

// duplicate reports whether the decision was seen already (replayed after a restart).
func (p *Pipeline) duplicate(a Alert) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := a.Fingerprint + "|" + a.State + "|" + string(a.Severity) + "|" + a.Time.UTC().Format(time.RFC3339Nano)
	if _, dup := p.recent[key]; dup {
		return true
	}
	p.recent[key] = a.Time
	if len(p.recent) > 10_000 {
		for k, t := range p.recent {
			if a.Time.Sub(t) > time.Hour {
				delete(p.recent, k)
			}
		}
	}
	return false
}

// hold says why an alert is held back now ("" when it goes out). A resolution is never
// held here: store sends it where the firing went.
func (p *Pipeline) hold(a Alert) string {
	if a.State == "resolved" {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.silences {
		if s.Matches(a, time.Now()) {
			return fmt.Sprintf("silenced by #%d", s.ID)
		}
	}
	if acked, ok := p.acks[a.Fingerprint]; ok && a.Severity.Rank() <= acked.Rank() {
		return "acknowledged"
	}
	return ""
}

// OutboxEntry is an alert waiting for a channel, for the dashboard.
type OutboxEntry struct {
	ID          int64  `db:"id" json:"id"`
	AlertID     int64  `db:"alert_id" json:"alert_id"`
	Channel     string `db:"channel" json:"channel"`
	Attempts    int    `db:"attempts" json:"attempts"`
	NextAttempt int64  `db:"next_attempt" json:"next_attempt"`
	LastError   string `db:"last_error" json:"last_error"`
	Created     int64  `db:"created" json:"created"`
}

// Pending lists the undelivered outbox entries, oldest first.
func (p *Pipeline) Pending(ctx context.Context) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := p.opts.DB.Select(ctx, &out, `SELECT id, alert_id, channel, attempts, next_attempt, last_error, created
		FROM alert_outbox WHERE delivered = 0 ORDER BY id`)
	return out, err
}

// ErrNotFound is an alert or an active silence that does not exist.
var ErrNotFound = errors.New("not found")

// ErrBadSilence is a silence without matchers, with a matcher key no alert carries
// (Options.LabelNames), or that ends before it starts.
var ErrBadSilence = errors.New("bad silence")

// Silence adds a silence and returns it with its id; ErrBadSilence when it has no
// matcher or ends before it starts.
func (p *Pipeline) Silence(ctx context.Context, s Silence) (Silence, error) {
	if len(s.Matchers) == 0 {
		return s, fmt.Errorf("%w: it needs at least one matcher", ErrBadSilence)
	}
	if !s.Ends.After(s.Starts) {
		return s, fmt.Errorf("%w: it must end after it starts", ErrBadSilence)
	}
	if p.opts.LabelNames != nil {
		known := append([]string{"policy", "severity", "instance"}, p.opts.LabelNames()...)
		var keys []string
		for k := range s.Matchers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !slices.Contains(known, k) {
				return s, fmt.Errorf("%w: matchers: unknown key %q: it would never match (known: policy, severity, instance, or a label: %s)",
					ErrBadSilence, k, strings.Join(known[3:], ", "))
			}
		}
	}
	m, _ := json.Marshal(s.Matchers)
	res, err := p.opts.DB.Exec(ctx, `INSERT INTO silences(matchers, starts, ends, author, reason, created) VALUES (?, ?, ?, ?, ?, ?)`,
		string(m), s.Starts.UnixMilli(), s.Ends.UnixMilli(), s.Author, s.Reason, time.Now().UnixMilli())
	if err != nil {
		return s, err
	}
	s.ID, _ = res.LastInsertId()
	return s, p.loadSilences(ctx)
}

// Expire ends a silence now.
func (p *Pipeline) Expire(ctx context.Context, id int64) error {
	res, err := p.opts.DB.Exec(ctx, `UPDATE silences SET ends = ? WHERE id = ? AND ends > ?`, time.Now().UnixMilli(), id, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("no active silence #%d: %w", id, ErrNotFound)
	}
	if err := p.loadSilences(ctx); err != nil {
		return err
	}
	return p.release(ctx, fmt.Sprintf("silence #%d expired", id))
}

// Silences lists the active silences.
func (p *Pipeline) Silences() []Silence {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Silence
	now := time.Now()
	for _, s := range p.silences {
		if now.Before(s.Ends) {
			out = append(out, s)
		}
	}
	return out
}

func (p *Pipeline) loadSilences(ctx context.Context) error {
	var rows []struct {
		ID       int64  `db:"id"`
		Matchers string `db:"matchers"`
		Starts   int64  `db:"starts"`
		Ends     int64  `db:"ends"`
		Author   string `db:"author"`
		Reason   string `db:"reason"`
	}
	if err := p.opts.DB.Select(ctx, &rows, `SELECT id, matchers, starts, ends, author, reason FROM silences WHERE ends > ?`,
		time.Now().UnixMilli()); err != nil {
		return err
	}
	var out []Silence
	for _, r := range rows {
		s := Silence{ID: r.ID, Starts: time.UnixMilli(r.Starts), Ends: time.UnixMilli(r.Ends), Author: r.Author, Reason: r.Reason}
		_ = json.Unmarshal([]byte(r.Matchers), &s.Matchers)
		out = append(out, s)
	}
	p.mu.Lock()
	p.silences = out
	p.mu.Unlock()
	return nil
}

// Ack acknowledges an alert's incident: its repeats and notifications of the same or
// a lower severity (by rank) are held until it resolves; a worse one still goes out.
// The ack is stored with the incident's identity and deleted when it resolves. It
// returns an error if there is no such alert or its incident is no longer open.
func (p *Pipeline) Ack(ctx context.Context, alertID int64, by string) error {
	var row struct {
		FP  string `db:"fingerprint"`
		Sev string `db:"severity"`
	}
	if err := p.opts.DB.Get(ctx, &row, `SELECT fingerprint, severity FROM alerts WHERE id = ?`, alertID); errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("no alert #%d: %w", alertID, ErrNotFound)
	} else if err != nil {
		return err
	}
	p.handleMu.Lock()
	defer p.handleMu.Unlock()
	if err := p.openIncidentOf(ctx, alertID, row.FP); err != nil {
		return err
	}
	sev := policies.Severity(row.Sev)
	p.mu.Lock()
	if old, ok := p.acks[row.FP]; ok && old.Rank() > sev.Rank() {
		sev = old
	}
	p.mu.Unlock()
	now := time.Now().UnixMilli()
	err := p.opts.DB.WithTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE alerts SET acked_by = ?, acked_at = ? WHERE id = ?`, by, now, alertID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO acks(fingerprint, alert_id, severity, acked_by, ts) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(fingerprint) DO UPDATE SET alert_id = excluded.alert_id, severity = excluded.severity,
			acked_by = excluded.acked_by, ts = excluded.ts`, row.FP, alertID, string(sev), by, now)
		return err
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.acks[row.FP] = sev
	p.mu.Unlock()
	return nil
}

// openIncidentOf returns nil if alertID's incident (fingerprint fp) is open: the
// identity is open and has not resolved since that alert — an alert of an earlier
// incident of the same identity must not act on a later one (handleMu held).
func (p *Pipeline) openIncidentOf(ctx context.Context, alertID int64, fp string) error {
	var ended int
	if err := p.opts.DB.Get(ctx, &ended, `SELECT count(*) FROM alerts WHERE fingerprint = ? AND id >= ? AND state = 'resolved'`,
		fp, alertID); err != nil {
		return err
	}
	if p.incidents[fp] == nil || ended > 0 {
		return fmt.Errorf("alert #%d: its incident is not open: %w", alertID, ErrNotFound)
	}
	return nil
}

// CanAck says whether Ack(alertID) would find the alert's incident open: the dashboard
// offers the Ack button only then (a button that answers 404 is a dead button).
func (p *Pipeline) CanAck(ctx context.Context, alertID int64, fp string) bool {
	p.handleMu.Lock()
	defer p.handleMu.Unlock()
	return p.openIncidentOf(ctx, alertID, fp) == nil
}

// Unack withdraws the ack of an alert's incident; if the incident's latest notification
// was held by it, that notification goes out now.
func (p *Pipeline) Unack(ctx context.Context, alertID int64) error {
	var fp string
	if err := p.opts.DB.Get(ctx, &fp, `SELECT fingerprint FROM alerts WHERE id = ?`, alertID); errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("no alert #%d: %w", alertID, ErrNotFound)
	} else if err != nil {
		return err
	}
	p.handleMu.Lock()
	err := p.openIncidentOf(ctx, alertID, fp)
	p.handleMu.Unlock()
	if err != nil {
		return err
	}
	res, err := p.opts.DB.Exec(ctx, `DELETE FROM acks WHERE fingerprint = ?`, fp)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("alert #%d: its incident is not acknowledged: %w", alertID, ErrNotFound)
	}
	p.mu.Lock()
	delete(p.acks, fp)
	p.mu.Unlock()
	return p.release(ctx, "acknowledgement withdrawn")
}
