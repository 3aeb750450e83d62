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
	"strconv"
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
	wake     chan struct{}

	// handleMu makes storing an alert and updating the incidents one step (Handle,
	// the release of held incidents, acks).
	handleMu  sync.Mutex
	incidents map[string]*incident // open incidents by fingerprint (incidents.go)
	refreshed map[string]time.Time // when each refreshing channel was last given the open incidents

	mu       sync.Mutex
	acks     map[string]policies.Severity // fingerprint -> the acknowledged severity
	recent   map[string]time.Time         // dedupe: fingerprint|state|severity -> when handled
	failing  map[string]bool              // channels currently reported undelivered
	retryNow map[string]bool              // channels whose waiting alerts are due at once
	silences []Silence

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
	sent map[string]time.Time // channels it was delivered on before it could be stored
	// tried: direct delivery was attempted
	tried bool
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
	return &pendingAlert{a: a, held: held, out: out}
}

// store writes the alert and its outbox rows in one transaction; channels it was
// already delivered on are recorded as delivered. A resolution deletes the incident's
// ack in the same transaction.
func (p *Pipeline) store(ctx context.Context, pa *pendingAlert) error {
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
			for _, pa := range p.unstored {
				p.deliverDirect(ctx, pa)
			}
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

// deliverDirect sends an alert that is not stored on every channel that does not need
// the disk (all but the dashboard, which reads the alerts table), once.
func (p *Pipeline) deliverDirect(ctx context.Context, pa *pendingAlert) {
	if pa.tried || pa.held != "" {
		return
	}
	pa.tried = true
	pa.sent = map[string]time.Time{}
	for _, dl := range pa.out {
		name := dl.channel
		ch, ok := p.channels[name]
		if !ok || name == (DashboardChannel{}).Name() {
			continue
		}
		if lim := p.limits[name]; lim != nil && !lim.Allow() {
			continue // over the channel's budget: it goes through the outbox once stored
		}
		b := pa.a
		b.Ends = dl.ends
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := ch.Send(sctx, []Alert{b})
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
		p.checkSilences(ctx)
		p.refresh(ctx)
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
	ID          int64  `db:"id"`
	Channel     string `db:"channel"`
	Payload     string `db:"payload"`
	Attempts    int    `db:"attempts"`
	NextAttempt int64  `db:"next_attempt"`
}

// Deliver sends what waits in the outbox, per channel in batches, most severe incident
// first (an incident's alerts stay together, oldest first, so its resolution never
// overtakes its firing); see order. A failed batch is retried with a growing delay
// (1 s doubling to 5 min) and holds the channel's later alerts back meanwhile, so a
// channel never receives an incident's alerts out of order. After three failed tries
// the channel is reported with ALERT_UNDELIVERED.
func (p *Pipeline) Deliver(ctx context.Context) {
	p.mu.Lock()
	due := p.retryNow
	p.retryNow = nil
	p.mu.Unlock()
	for ch := range due {
		if _, err := p.opts.DB.Exec(ctx, `UPDATE alert_outbox SET next_attempt = 0 WHERE delivered = 0 AND channel = ?`, ch); err != nil && ctx.Err() == nil {
			p.opts.Logger.Error("alert outbox", "error", err)
		}
	}
	var rows []outboxRow
	if err := p.opts.DB.Select(ctx, &rows, `SELECT id, channel, payload, attempts, next_attempt FROM alert_outbox
		WHERE delivered = 0 ORDER BY id LIMIT 2000`); err != nil {
		if ctx.Err() == nil {
			p.opts.Logger.Error("alert outbox", "error", err)
		}
		return
	}
	byChan := map[string][]outboxRow{}
	for _, r := range rows {
		byChan[r.Channel] = append(byChan[r.Channel], r)
	}
	now := time.Now().UnixMilli()
	for _, name := range sortedKeys(byChan) {
		ch, ok := p.channels[name]
		if !ok {
			continue
		}
		pending := byChan[name]
		waiting := false
		for _, r := range pending {
			waiting = waiting || r.NextAttempt > now
		}
		if waiting {
			continue // a failed batch waits for its retry; nothing overtakes it
		}
		items := order(pending)
		for len(items) > 0 && ctx.Err() == nil {
			lim := p.limits[name]
			if lim != nil && !lim.Allow() {
				break // this channel's per-minute budget is spent; the rest waits
			}
			n := min(len(items), p.opts.Batch)
			var batch []outboxItem
			if lim != nil && p.folds(name) && len(items) > n && lim.Tokens() < 1 {
				// A flood on a limited channel that a person reads: the most severe
				// first, the rest folded into one summary line, instead of minutes of
				// messages that bury the one that matters.
				batch, items = items, nil
			} else {
				batch, items = items[:n], items[n:]
			}
			if !p.send(ctx, ch, batch, n) {
				break
			}
		}
	}
	if p.opts.Metrics != nil {
		var n int
		if err := p.opts.DB.Get(ctx, &n, `SELECT count(*) FROM alert_outbox WHERE delivered = 0`); err == nil {
			p.opts.Metrics.OutboxPending.Set(float64(n))
		}
	}
}

// folds reports whether a channel takes a flood as a summary (a channel people read).
func (p *Pipeline) folds(channel string) bool {
	fold := p.opts.Fold
	if fold == nil {
		fold = []string{"whatsapp"}
	}
	for _, f := range fold {
		if f == channel {
			return true
		}
	}
	return false
}

// outboxItem is an outbox row with its alert.
type outboxItem struct {
	row   outboxRow
	alert Alert
}

// order sorts a channel's waiting alerts: incidents by their most severe waiting alert
// (rank), then by their oldest; within an incident, oldest first.
func order(rows []outboxRow) []outboxItem {
	items := make([]outboxItem, 0, len(rows))
	rank := map[string]int{}
	first := map[string]int64{}
	for _, r := range rows {
		var a Alert
		_ = json.Unmarshal([]byte(r.Payload), &a)
		items = append(items, outboxItem{r, a})
		key := a.Fingerprint
		if a.Instant || key == "" {
			key = "#" + strconv.FormatInt(r.ID, 10)
		}
		rank[key] = max(rank[key], a.Severity.Rank())
		if _, ok := first[key]; !ok {
			first[key] = r.ID
		}
	}
	keyOf := func(it outboxItem) string {
		if it.alert.Instant || it.alert.Fingerprint == "" {
			return "#" + strconv.FormatInt(it.row.ID, 10)
		}
		return it.alert.Fingerprint
	}
	sort.SliceStable(items, func(i, j int) bool {
		ki, kj := keyOf(items[i]), keyOf(items[j])
		if rank[ki] != rank[kj] {
			return rank[ki] > rank[kj]
		}
		if first[ki] != first[kj] {
			return first[ki] < first[kj]
		}
		return items[i].row.ID < items[j].row.ID
	})
	return items
}

// summary folds alerts into one: counts per policy, state and severity.
func summary(items []outboxItem) Alert {
	type k struct{ policy, state, sev string }
	n := map[k]int{}
	var keys []k
	for _, it := range items {
		key := k{it.alert.Policy, it.alert.State, string(it.alert.Severity)}
		if n[key] == 0 {
			keys = append(keys, key)
		}
		n[key]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d more alerts, folded (the dashboard lists each):", len(items))
	for _, key := range keys {
		fmt.Fprintf(&b, "\n- %s %s (%s) ×%d", key.policy, key.state, key.sev, n[key])
	}
	last := items[len(items)-1].alert
	return Alert{Time: last.Time, Policy: "remedy-summary", Severity: items[0].alert.Severity, State: "firing", Instant: true,
		Summary: b.String()}
}

// send delivers a batch: its first keep alerts, and the rest (if more than one) folded
// into a summary.
func (p *Pipeline) send(ctx context.Context, ch Channel, items []outboxItem, keep int) bool {
	alerts := make([]Alert, 0, keep+1)
	ids := make([]any, 0, len(items))
	batch := make([]outboxRow, 0, len(items))
	for i, it := range items {
		if i < keep || len(items) == keep+1 {
			alerts = append(alerts, it.alert)
		}
		ids = append(ids, it.row.ID)
		batch = append(batch, it.row)
	}
	if len(items) > keep+1 {
		alerts = append(alerts, summary(items[keep:]))
	}
	in := "?" + strings.Repeat(",?", len(ids)-1)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := ch.Send(sctx, alerts)
	cancel()
	now := time.Now()
	if err == nil {
		// Recorded even when shutdown has begun: the alerts are out, and an unrecorded
		// delivery is sent again after the restart.
		mctx, mcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, derr := p.opts.DB.Exec(mctx, `UPDATE alert_outbox SET delivered = ? WHERE id IN (`+in+`)`, append([]any{now.UnixMilli()}, ids...)...)
		mcancel()
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
		return true
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
	return false
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
