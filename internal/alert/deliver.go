package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// SendTimeout bounds one delivery to one channel (a batch, a direct send, a refresh).
// It holds up only that channel: each channel has its own worker.
const SendTimeout = 30 * time.Second

// worker is one channel's delivery loop, as each integration of an Alertmanager
// receiver is its own: the outbox rows of its channel, the alerts waiting to be stored
// that it may send directly, and its refresh. A channel that hangs or fails delays only
// its own deliveries; storing alerts and every other channel go on.
type worker struct {
	name string
	wake chan struct{}
	busy sync.Mutex // one pass at a time: a channel's alerts leave in order
}

func newWorkers(channels map[string]Channel) map[string]*worker {
	ws := make(map[string]*worker, len(channels))
	for name := range channels {
		ws[name] = &worker{name: name, wake: make(chan struct{}, 1)}
	}
	return ws
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Wake makes the pipeline store what was submitted and every channel look at its
// outbox now (for example after a release of held incidents).
func (p *Pipeline) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
	for _, w := range p.workers {
		w.poke()
	}
}

// wakeChannels wakes the workers of the named channels.
func (p *Pipeline) wakeChannels(out []delivery) {
	for _, dl := range out {
		if w := p.workers[dl.channel]; w != nil {
			w.poke()
		}
	}
}

// RetryNow makes a channel's waiting alerts due at once, without waiting out their retry
// delay (up to 5 min), and wakes its worker: WhatsApp is connected again.
func (p *Pipeline) RetryNow(channel string) {
	p.mu.Lock()
	if p.retryNow == nil {
		p.retryNow = map[string]bool{}
	}
	p.retryNow[channel] = true
	p.mu.Unlock()
	if w := p.workers[channel]; w != nil {
		w.poke()
	}
}

// Run stores submitted alerts and runs one delivery worker per channel until ctx ends;
// it returns when every worker has. Each worker delivers at once when woken, and every
// second for retries that fell due.
func (p *Pipeline) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, name := range sortedKeys(p.workers) {
		w := p.workers[name]
		wg.Go(func() { p.runWorker(ctx, w) })
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		p.storeSubmitted(ctx)
		p.checkSilences(ctx)
		p.gaugeOutbox(ctx)
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-t.C:
		}
	}
}

func (p *Pipeline) runWorker(ctx context.Context, w *worker) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		p.pass(ctx, w)
		p.refreshChannel(ctx, w.name)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-t.C:
		}
	}
}

// pass is one look of a channel's worker: alerts waiting to be stored first (they are
// the newest news while the database refuses writes), then the outbox.
func (p *Pipeline) pass(ctx context.Context, w *worker) {
	w.busy.Lock()
	defer w.busy.Unlock()
	p.sendDirect(ctx, w.name)
	p.deliverOutbox(ctx, w.name)
}

// Flush stores what was submitted and delivers what is due, once: the shutdown's last
// step for the pipeline, after Run returned and the engine loop stopped.
func (p *Pipeline) Flush(ctx context.Context) {
	p.storeSubmitted(ctx)
	p.Deliver(ctx)
}

// Deliver makes one pass of every channel's worker, the channels side by side, and
// returns when all are done; see deliverOutbox.
func (p *Pipeline) Deliver(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range p.workers {
		wg.Go(func() { p.pass(ctx, w) })
	}
	wg.Wait()
	p.gaugeOutbox(ctx)
}

func (p *Pipeline) gaugeOutbox(ctx context.Context) {
	if p.opts.Metrics == nil {
		return
	}
	var n int
	if err := p.opts.DB.Get(ctx, &n, `SELECT count(*) FROM alert_outbox WHERE delivered = 0`); err == nil {
		p.opts.Metrics.OutboxPending.Set(float64(n))
	}
}

// sendDirect sends, once each, the alerts that could not be stored and that go to this
// channel, unless it needs the disk (the dashboard reads the alerts table). One stored
// while it was being sent is marked delivered in the outbox, so it is not sent again.
func (p *Pipeline) sendDirect(ctx context.Context, name string) {
	ch, ok := p.channels[name]
	if !ok || name == (DashboardChannel{}).Name() {
		return
	}
	p.mu.Lock()
	list := slices.Clone(p.direct)
	p.mu.Unlock()
	for _, pa := range list {
		i := slices.IndexFunc(pa.out, func(dl delivery) bool { return dl.channel == name })
		if i < 0 || ctx.Err() != nil {
			continue
		}
		pa.mu.Lock()
		skip := pa.id != 0 || pa.triedOn[name]
		if !skip {
			pa.triedOn[name] = true
		}
		pa.mu.Unlock()
		if skip {
			continue
		}
		if lim := p.limits[name]; lim != nil && !lim.Allow() {
			continue // over the channel's budget: it goes through the outbox once stored
		}
		b := pa.a
		b.Ends = pa.out[i].ends
		sctx, cancel := context.WithTimeout(ctx, SendTimeout)
		err := ch.Send(sctx, []Alert{b})
		cancel()
		if err != nil {
			p.opts.Logger.Warn("alert not stored and not delivered; kept", "channel", name, "policy", pa.a.Policy, "error", err)
			continue
		}
		at := time.Now()
		pa.mu.Lock()
		id := pa.id
		if id == 0 {
			pa.sent[name] = at // store records it as delivered
		}
		pa.mu.Unlock()
		if id != 0 {
			mctx, mcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, derr := p.opts.DB.Exec(mctx, `UPDATE alert_outbox SET delivered = ? WHERE alert_id = ? AND channel = ? AND delivered = 0`,
				at.UnixMilli(), id, name)
			mcancel()
			if derr != nil {
				p.opts.Logger.Error("alert outbox", "error", derr)
			}
		}
		if p.opts.Metrics != nil {
			p.opts.Metrics.AlertsSent.WithLabelValues(name).Inc()
		}
	}
}

type outboxRow struct {
	ID          int64  `db:"id"`
	Channel     string `db:"channel"`
	Payload     string `db:"payload"`
	Attempts    int    `db:"attempts"`
	NextAttempt int64  `db:"next_attempt"`
}

// deliverOutbox sends what waits in one channel's outbox, in batches, most severe
// incident first (an incident's alerts stay together, oldest first, so its resolution
// never overtakes its firing); see order. A failed batch is retried with a growing delay
// (1 s doubling to 5 min) and holds the channel's later alerts back meanwhile, so a
// channel never receives an incident's alerts out of order. After three failed tries
// the channel is reported with ALERT_UNDELIVERED.
func (p *Pipeline) deliverOutbox(ctx context.Context, name string) {
	ch, ok := p.channels[name]
	if !ok {
		return
	}
	p.mu.Lock()
	due := p.retryNow[name]
	delete(p.retryNow, name)
	p.mu.Unlock()
	if due {
		if _, err := p.opts.DB.Exec(ctx, `UPDATE alert_outbox SET next_attempt = 0 WHERE delivered = 0 AND channel = ?`, name); err != nil && ctx.Err() == nil {
			p.opts.Logger.Error("alert outbox", "error", err)
		}
	}
	var pending []outboxRow
	if err := p.opts.DB.Select(ctx, &pending, `SELECT id, channel, payload, attempts, next_attempt FROM alert_outbox
		WHERE delivered = 0 AND channel = ? ORDER BY id LIMIT 2000`, name); err != nil {
		if ctx.Err() == nil {
			p.opts.Logger.Error("alert outbox", "error", err)
		}
		return
	}
	now := time.Now().UnixMilli()
	for _, r := range pending {
		if r.NextAttempt > now {
			return // a failed batch waits for its retry; nothing overtakes it
		}
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
	sctx, cancel := context.WithTimeout(ctx, SendTimeout)
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
