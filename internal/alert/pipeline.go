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
	// Inhibit rules; DefaultInhibitRules when nil.
	Inhibit []InhibitRule
	// PerMinute limits deliveries per channel (e.g. whatsapp: 10); no limit if absent.
	PerMinute map[string]int
	// Batch is the most alerts handed to a channel at once (default 10); more are sent
	// grouped in several deliveries.
	Batch   int
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
	wake     chan struct{}

	mu       sync.Mutex
	firing   map[string]map[string]bool // policy -> instances notified as firing
	acks     map[string]policies.Severity
	recent   map[string]time.Time // dedupe: fingerprint|state|severity -> when handled
	failing  map[string]bool      // channels currently reported undelivered
	retryNow map[string]bool      // channels whose waiting alerts are due at once
	silences []Silence

	submitted []engine.Decision // Submit's, not yet taken by Run
	// Owned by Run's goroutine; unstoredN is its length, for Backlog.
	unstored     []*pendingAlert
	unstoredN    atomic.Int64
	storeFailing bool
}

// New returns a pipeline; it loads active silences and acks from the database.
func New(ctx context.Context, opts Options) (*Pipeline, error) {
	if opts.Batch <= 0 {
		opts.Batch = 10
	}
	if opts.Inhibit == nil {
		opts.Inhibit = DefaultInhibitRules
	}
	if opts.Events == nil {
		opts.Events = func(engine.Event) {}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{opts: opts, channels: map[string]Channel{}, limits: map[string]*rate.Limiter{}, wake: make(chan struct{}, 1),
		firing: map[string]map[string]bool{}, acks: map[string]policies.Severity{}, recent: map[string]time.Time{}, failing: map[string]bool{}}
	for _, c := range opts.Channels {
		p.channels[c.Name()] = c
		if n := opts.PerMinute[c.Name()]; n > 0 {
			p.limits[c.Name()] = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
		}
	}
	if err := p.loadSilences(ctx); err != nil {
		return nil, err
	}
	var acks []struct {
		FP  string `db:"fingerprint"`
		Sev string `db:"severity"`
	}
	if err := opts.DB.Select(ctx, &acks, `SELECT fingerprint, max(severity) AS severity FROM alerts
		WHERE acked_at > 0 GROUP BY fingerprint`); err != nil {
		return nil, err
	}
	for _, a := range acks {
		p.acks[a.FP] = policies.Severity(a.Sev)
	}
	return p, nil
}

// Handle takes an engine decision. Alert decisions are stored, then queued in the
// outbox for their channels unless a silence, an inhibition or an ack holds them back
// (the row is kept, with why). It returns once the alert is durable. The engine loop
// uses Submit instead; Handle suits callers that can wait (the NOTIFY action).
func (p *Pipeline) Handle(ctx context.Context, d engine.Decision) error {
	if d.Kind != engine.KindAlert {
		return nil
	}
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
	a     Alert
	held  string
	chans []string
	sent  map[string]time.Time // channels it was delivered on before it could be stored
	tried bool                 // direct delivery was attempted
}

// prepare applies dedupe, silences, inhibition and acks; nil for a duplicate.
func (p *Pipeline) prepare(d engine.Decision) *pendingAlert {
	a := FromDecision(d)
	chans := a.Channels
	if len(chans) == 0 {
		for name := range p.channels {
			chans = append(chans, name)
		}
	}
	sort.Strings(chans)
	held := p.hold(a)
	if held == "duplicate" {
		p.count("duplicate")
		return nil
	}
	return &pendingAlert{a: a, held: held, chans: chans}
}

// store writes the alert and its outbox rows in one transaction; channels it was
// already delivered on are recorded as delivered.
func (p *Pipeline) store(ctx context.Context, pa *pendingAlert) error {
	a := pa.a
	labels, _ := json.Marshal(a.Labels)
	annotations, _ := json.Marshal(a.Annotations)
	err := p.opts.DB.WithTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO alerts(fingerprint, ts, policy, instance, severity, state, summary, labels,
			annotations, suppressed, held, reason, repeat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.Fingerprint, a.Time.UnixMilli(), a.Policy, a.Instance, string(a.Severity), a.State, a.Summary, string(labels),
			string(annotations), a.Suppressed, pa.held, a.Reason, a.Repeat)
		if err != nil {
			return err
		}
		if a.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if pa.held != "" {
			return nil
		}
		payload, _ := json.Marshal(a)
		for _, c := range pa.chans {
			if _, ok := p.channels[c]; !ok {
				continue // a channel the configuration does not have
			}
			delivered := int64(0)
			if at, ok := pa.sent[c]; ok {
				delivered = at.UnixMilli()
			}
			if _, err := tx.Exec(ctx, `INSERT INTO alert_outbox(alert_id, channel, payload, created, delivered) VALUES (?, ?, ?, ?, ?)`,
				a.ID, c, string(payload), time.Now().UnixMilli(), delivered); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("alert %s: %w", a.Policy, err)
	}
	return nil
}

func (p *Pipeline) stored(pa *pendingAlert) {
	if pa.held != "" {
		p.count(strings.SplitN(pa.held, " ", 2)[0])
		return
	}
	p.Wake()
}

// Submit hands an alert decision to the pipeline without waiting: the engine loop's way
// in, so that no SQLite write happens on the loop. Run stores submitted alerts in order;
// one that cannot be stored (a full disk, a held lock) is delivered at once on every
// channel that does not need the disk, kept in memory, and stored (its deliveries
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
	p.mu.Lock()
	subs := p.submitted
	p.submitted = nil
	p.unstoredN.Add(int64(len(subs))) // counted as waiting until they are stored
	p.mu.Unlock()
	for _, d := range subs {
		if pa := p.prepare(d); pa != nil {
			p.unstored = append(p.unstored, pa)
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
			for _, pa := range p.unstored {
				p.deliverDirect(ctx, pa)
			}
			return false
		}
		p.unstored = p.unstored[1:]
		p.stored(pa)
	}
	if p.storeFailing {
		p.storeFailing = false
		p.opts.Logger.Info("alerts stored again")
	}
	return true
}

// deliverDirect sends an alert that is not stored on every channel that does not need
// the disk (all but the dashboard, which reads the alerts table), once.
func (p *Pipeline) deliverDirect(ctx context.Context, pa *pendingAlert) {
	if pa.tried || pa.held != "" {
		return
	}
	pa.tried = true
	pa.sent = map[string]time.Time{}
	for _, name := range pa.chans {
		ch, ok := p.channels[name]
		if !ok || name == (DashboardChannel{}).Name() {
			continue
		}
		if lim := p.limits[name]; lim != nil && !lim.Allow() {
			continue // over the channel's budget: it goes through the outbox once stored
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := ch.Send(sctx, []Alert{pa.a})
		cancel()
		if err != nil {
			p.opts.Logger.Warn("alert not stored and not delivered; kept", "channel", name, "policy", pa.a.Policy, "error", err)
			continue
		}
		pa.sent[name] = time.Now()
		if p.opts.Metrics != nil {
			p.opts.Metrics.AlertsSent.WithLabelValues(name).Inc()
		}
	}
}

func (p *Pipeline) count(reason string) {
	if p.opts.Metrics != nil {
		p.opts.Metrics.AlertsSuppressed.WithLabelValues(reason).Inc()
	}
}

// hold decides whether an alert is held back, and records firing state for inhibition.
func (p *Pipeline) hold(a Alert) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A decision seen twice (replayed after a restart) is one alert.
	key := a.Fingerprint + "|" + a.State + "|" + string(a.Severity) + "|" + a.Time.UTC().Format(time.RFC3339Nano)
	if _, dup := p.recent[key]; dup {
		return "duplicate"
	}
	p.recent[key] = a.Time
	if len(p.recent) > 10_000 {
		for k, t := range p.recent {
			if a.Time.Sub(t) > time.Hour {
				delete(p.recent, k)
			}
		}
	}
	switch a.State {
	case "firing", "escalated":
		if p.firing[a.Policy] == nil {
			p.firing[a.Policy] = map[string]bool{}
		}
		p.firing[a.Policy][a.Instance] = true
	case "resolved":
		delete(p.firing[a.Policy], a.Instance)
		delete(p.acks, a.Fingerprint) // an ack lasts until the incident resolves
	}
	for _, s := range p.silences {
		if s.Matches(a, time.Now()) {
			return fmt.Sprintf("silenced by #%d", s.ID)
		}
	}
	for _, r := range p.opts.Inhibit {
		if r.Source == a.Policy || len(p.firing[r.Source]) == 0 {
			continue
		}
		for _, t := range r.Targets {
			if globMatch(t, a.Policy) {
				return "inhibited by " + r.Source
			}
		}
	}
	if acked, ok := p.acks[a.Fingerprint]; ok && a.State != "resolved" && a.Severity.Rank() <= acked.Rank() {
		return "acknowledged"
	}
	return ""
}

// Wake makes the dispatcher look at the outbox now (for example after WhatsApp
// reconnects).
func (p *Pipeline) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// RetryNow makes a channel's waiting alerts due at once, without waiting out their retry
// delay (up to 5 min), and wakes the sender: WhatsApp is connected again.
func (p *Pipeline) RetryNow(channel string) {
	p.mu.Lock()
	if p.retryNow == nil {
		p.retryNow = map[string]bool{}
	}
	p.retryNow[channel] = true
	p.mu.Unlock()
	p.Wake()
}

// Run delivers the outbox until ctx ends: at once when woken, and every second for
// retries that fell due.
func (p *Pipeline) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		p.storeSubmitted(ctx)
		p.Deliver(ctx)
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-t.C:
		}
	}
}

// Flush stores what was submitted and delivers what is due, once: the shutdown's last
// step for the pipeline, after Run returned and the engine loop stopped.
func (p *Pipeline) Flush(ctx context.Context) {
	p.storeSubmitted(ctx)
	p.Deliver(ctx)
}

type outboxRow struct {
	ID       int64  `db:"id"`
	Channel  string `db:"channel"`
	Payload  string `db:"payload"`
	Attempts int    `db:"attempts"`
}

// Deliver sends what is due in the outbox, oldest first, per channel in batches; a
// failed batch is retried with a growing delay (1 s doubling to 5 min) and stays in the
// outbox until it is delivered. After three failed tries the channel is reported with
// ALERT_UNDELIVERED.
func (p *Pipeline) Deliver(ctx context.Context) {
	p.mu.Lock()
	due := p.retryNow
	p.retryNow = nil
	p.mu.Unlock()
	for ch := range due {
		if _, err := p.opts.DB.Exec(ctx, `UPDATE alert_outbox SET next_attempt = 0 WHERE delivered = 0 AND channel = ?`, ch); err != nil {
			p.opts.Logger.Error("alert outbox", "error", err)
		}
	}
	var rows []outboxRow
	if err := p.opts.DB.Select(ctx, &rows, `SELECT id, channel, payload, attempts FROM alert_outbox
		WHERE delivered = 0 AND next_attempt <= ? ORDER BY id LIMIT 500`, time.Now().UnixMilli()); err != nil {
		if ctx.Err() == nil {
			p.opts.Logger.Error("alert outbox", "error", err)
		}
		return
	}
	byChan := map[string][]outboxRow{}
	var order []string
	for _, r := range rows {
		if _, seen := byChan[r.Channel]; !seen {
			order = append(order, r.Channel)
		}
		byChan[r.Channel] = append(byChan[r.Channel], r)
	}
	for _, name := range order {
		ch, ok := p.channels[name]
		if !ok {
			continue
		}
		pending := byChan[name]
		for len(pending) > 0 && ctx.Err() == nil {
			n := min(len(pending), p.opts.Batch)
			if lim := p.limits[name]; lim != nil && !lim.Allow() {
				break // this channel's per-minute budget is spent; the rest waits
			}
			batch := pending[:n]
			pending = pending[n:]
			p.send(ctx, ch, batch)
		}
	}
	if p.opts.Metrics != nil {
		var n int
		if err := p.opts.DB.Get(ctx, &n, `SELECT count(*) FROM alert_outbox WHERE delivered = 0`); err == nil {
			p.opts.Metrics.OutboxPending.Set(float64(n))
		}
	}
}

func (p *Pipeline) send(ctx context.Context, ch Channel, batch []outboxRow) {
	alerts := make([]Alert, 0, len(batch))
	ids := make([]any, 0, len(batch))
	for _, r := range batch {
		var a Alert
		if err := json.Unmarshal([]byte(r.Payload), &a); err == nil {
			alerts = append(alerts, a)
		}
		ids = append(ids, r.ID)
	}
	in := "?" + strings.Repeat(",?", len(ids)-1)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := ch.Send(sctx, alerts)
	cancel()
	now := time.Now()
	if err == nil {
		_, derr := p.opts.DB.Exec(ctx, `UPDATE alert_outbox SET delivered = ? WHERE id IN (`+in+`)`, append([]any{now.UnixMilli()}, ids...)...)
		if derr != nil {
			p.opts.Logger.Error("alert outbox", "error", derr)
		}
		if p.opts.Metrics != nil {
			p.opts.Metrics.AlertsSent.WithLabelValues(ch.Name()).Add(float64(len(batch)))
		}
		p.mu.Lock()
		recovered := p.failing[ch.Name()]
		p.failing[ch.Name()] = false
		p.mu.Unlock()
		if recovered {
			p.opts.Logger.Info("alert channel delivers again", "channel", ch.Name())
		}
		return
	}
	attempts := batch[0].Attempts + 1
	delay := min(time.Second<<min(attempts-1, 20), 5*time.Minute)
	_, _ = p.opts.DB.Exec(ctx, `UPDATE alert_outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id IN (`+in+`)`,
		append([]any{now.Add(delay).UnixMilli(), err.Error()}, ids...)...)
	if p.opts.Metrics != nil {
		p.opts.Metrics.AlertsFailed.WithLabelValues(ch.Name()).Inc()
	}
	p.opts.Logger.Warn("alert delivery failed; kept in the outbox", "channel", ch.Name(), "alerts", len(batch), "attempt", attempts, "error", err)
	p.mu.Lock()
	report := attempts >= 3 && !p.failing[ch.Name()]
	if report {
		p.failing[ch.Name()] = true
	}
	p.mu.Unlock()
	if report {
		p.opts.Events(engine.Event{Time: now, Code: "ALERT_UNDELIVERED", Source: "alert",
			Labels: map[string]string{"channel": ch.Name()}, Message: err.Error(), Value: float64(len(batch))})
	}
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
	return p.loadSilences(ctx)
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

// Ack acknowledges an alert's incident: its repeats and equal-severity notifications are
// held until it resolves; a worse one still goes out.
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
	if _, err := p.opts.DB.Exec(ctx, `UPDATE alerts SET acked_by = ?, acked_at = ? WHERE id = ?`, by, time.Now().UnixMilli(), alertID); err != nil {
		return err
	}
	p.mu.Lock()
	p.acks[row.FP] = policies.Severity(row.Sev)
	p.mu.Unlock()
	return nil
}
