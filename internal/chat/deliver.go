package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
)

// MessageSender sends one message over WhatsApp (the connection satisfies it). media
// is the attachment's bytes (nil without one). Its errors should be *SendError, which
// say why and whether a retry can help.
type MessageSender interface {
	SendMessage(ctx context.Context, m Outgoing, media []byte) error
}

// Reasons a send fails (the reason label of WA_SEND_FAILED and of
// remedy_whatsapp_send_failures_total).
const (
	ReasonNotConnected = "not_connected" // retried; the connection's policies deal with the outage
	ReasonTimeout      = "timeout"       // no answer from the server in time; retried
	ReasonServerError  = "server_error"  // the server answered 5xx; retried
	ReasonRefused      = "refused"       // the server answered 4xx (not authorized, not a group member…): dead-lettered
	ReasonInvalid      = "invalid"       // whatsmeow cannot send this at all: dead-lettered
	ReasonMedia        = "media"         // the upload failed (retried) or the file is gone (dead-lettered)
	ReasonChatStopped  = "chat_stopped"  // the chat keeps refusing: not tried, dead-lettered (see ChatStop)
	ReasonUnknown      = "unknown"       // anything else; retried
)

// SendError is a failed send: Reason is one of the Reason* constants, Code the
// server's error code if it gave one, and Permanent says a retry cannot help.
type SendError struct {
	Reason    string
	Code      int
	Permanent bool
	Err       error
}

func (e *SendError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }

// SendLimits protect the number: how fast messages go out, overall and per chat, and
// when a chat that keeps refusing is no longer tried.
//
// The defaults (DefaultSendLimits) are a conversational bot's pace, not a broadcaster's.
// WhatsApp publishes no limit for linked devices; what is known comes from bans
// reported on whatsmeow's tracker: "getting banned is expected if you spam" (the
// maintainer, issue #506), where users report that more than about 5 messages a minute
// to numbers that never wrote first are risky, and a ban after five messages sent 5 s
// apart to strangers (issue #465). A bot mostly answers people who wrote to it, which
// is safer, so the defaults allow 30 a minute overall with bursts of 10 (a command
// with a few replies), and 20 a minute to any one chat; bulk sends to strangers need
// lower figures, not higher ones.
type SendLimits struct {
	PerMinute     float64 // messages a minute, overall
	Burst         int     // sent at once before PerMinute paces them
	ChatPerMinute float64 // messages a minute to one chat
	ChatBurst     int
	// A chat whose messages WhatsApp refuses StopAfter times within StopWindow is
	// stopped for StopFor (doubling each time it trips again, up to a day): its
	// messages are dead-lettered without being sent, so a broken bot cannot hammer
	// WhatsApp with messages it keeps refusing (a refusal is a 4xx answer: not
	// authorized, not a member of the group, no such user). A restart keeps the stop
	// (restoreStops).
	StopAfter  int
	StopWindow time.Duration
	StopFor    time.Duration
}

// DefaultSendLimits are the limits where a SendLimits field is zero.
var DefaultSendLimits = SendLimits{PerMinute: 30, Burst: 10, ChatPerMinute: 20, ChatBurst: 5,
	StopAfter: 3, StopWindow: 10 * time.Minute, StopFor: time.Hour}

func (l SendLimits) withDefaults() SendLimits {
	d := DefaultSendLimits
	if l.PerMinute > 0 {
		d.PerMinute = l.PerMinute
	}
	if l.Burst > 0 {
		d.Burst = l.Burst
	}
	if l.ChatPerMinute > 0 {
		d.ChatPerMinute = l.ChatPerMinute
	}
	if l.ChatBurst > 0 {
		d.ChatBurst = l.ChatBurst
	}
	if l.StopAfter > 0 {
		d.StopAfter = l.StopAfter
	}
	if l.StopWindow > 0 {
		d.StopWindow = l.StopWindow
	}
	if l.StopFor > 0 {
		d.StopFor = l.StopFor
	}
	return d
}

// sendGuard is the outbound path's pacing and the chats it has stopped; the delivery
// handler owns it.
type sendGuard struct {
	limits SendLimits
	all    *rate.Limiter

	mu    sync.Mutex
	chats map[string]*chatGuard
}

type chatGuard struct {
	limiter  *rate.Limiter
	refusals []time.Time // within StopWindow
	until    time.Time   // stopped until
	stopFor  time.Duration
	lastUsed time.Time
}

func newSendGuard(l SendLimits) *sendGuard {
	l = l.withDefaults()
	return &sendGuard{limits: l, all: rate.NewLimiter(rate.Limit(l.PerMinute/60), l.Burst), chats: map[string]*chatGuard{}}
}

func (g *sendGuard) chat(jid string, now time.Time) *chatGuard {
	c := g.chats[jid]
	if c == nil {
		if len(g.chats) > 10_000 {
			g.prune(now)
		}
		c = &chatGuard{limiter: rate.NewLimiter(rate.Limit(g.limits.ChatPerMinute/60), g.limits.ChatBurst)}
		g.chats[jid] = c
	}
	c.lastUsed = now
	return c
}

// prune forgets chats idle for an hour that are not stopped (g.mu held).
func (g *sendGuard) prune(now time.Time) {
	for k, c := range g.chats {
		if now.Sub(c.lastUsed) > time.Hour && now.After(c.until) && len(c.refusals) == 0 {
			delete(g.chats, k)
		}
	}
}

// stopped says until when a chat is stopped (zero: it is not).
func (g *sendGuard) stopped(jid string, now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.chats[jid]; c != nil && now.Before(c.until) {
		return c.until
	}
	return time.Time{}
}

// wait paces a send. A chat over its own rate is not waited for: the item comes back
// when the chat may send again (queue.Later) and the worker moves on to other chats;
// the overall limiter is waited for. The chat's token is taken when the message
// leaves, after that wait: taken before it, a message delayed by the overall limit
// left closer to the chat's next one than the chat's rate allows
// (TestSendRateHoldsForAnyArrivalPattern).
func (g *sendGuard) wait(ctx context.Context, jid string) error {
	now := time.Now()
	g.mu.Lock()
	c := g.chat(jid, now)
	g.mu.Unlock()
	all := g.all.ReserveN(now, 1)
	d := all.DelayFrom(now)
	if tokens := c.limiter.TokensAt(now.Add(d)); tokens < 1 {
		all.CancelAt(now)
		return queue.Later(d + time.Duration((1-tokens)/float64(c.limiter.Limit())*float64(time.Second)))
	}
	if d > 0 {
		if dl, ok := ctx.Deadline(); ok && now.Add(d).After(dl) {
			all.CancelAt(now)
			return fmt.Errorf("the send rate's wait of %v would outlast the try's deadline", d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			all.Cancel()
			return ctx.Err()
		case <-t.C:
		}
	}
	now = time.Now()
	if r := c.limiter.ReserveN(now, 1); r.DelayFrom(now) > 0 { // another worker sent to the chat meanwhile
		d := r.DelayFrom(now)
		r.CancelAt(now)
		return queue.Later(d)
	}
	return nil
}

// refused records a refusal; it returns the end of a stop it starts now.
func (g *sendGuard) refused(jid string, now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.chat(jid, now)
	kept := c.refusals[:0]
	for _, t := range c.refusals {
		if now.Sub(t) < g.limits.StopWindow {
			kept = append(kept, t)
		}
	}
	c.refusals = append(kept, now)
	// Once stopped, a refusal of the first message after the stop trips it again.
	again := c.stopFor > 0 && now.Sub(c.until) < g.limits.StopWindow
	if len(c.refusals) < g.limits.StopAfter && !again {
		return time.Time{}
	}
	switch {
	case !again:
		c.stopFor = g.limits.StopFor
	default:
		c.stopFor = min(2*c.stopFor, 24*time.Hour)
	}
	c.until, c.refusals = now.Add(c.stopFor), nil
	return c.until
}

// restoreStops rebuilds the stopped chats after a restart from the refusals among the
// dead letters (in the order they happened), so that restarting remedy never lifts a
// stop early: a crash loop must not hammer a refusing chat either.
func (p *Pipeline) restoreStops(ctx context.Context) error {
	var rows []struct {
		Chat   string `db:"chat"`
		DeadAt int64  `db:"dead_at"`
	}
	// A stop lasts at most a day, after refusals within StopWindow before it.
	since := time.Now().Add(-24*time.Hour - p.guard.limits.StopWindow).UnixMilli()
	if err := p.db.Select(ctx, &rows, `SELECT coalesce(json_extract(payload, '$.chat'), '') AS chat, dead_at FROM dead_letters
		WHERE queue = ? AND dead_at >= ? AND reason LIKE ? ORDER BY dead_at, id`, p.Out.Name(), since, ReasonRefused+":%"); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Chat != "" {
			p.guard.refused(r.Chat, time.UnixMilli(r.DeadAt))
		}
	}
	return nil
}

// deliver is the outbound queue's handler.
func (p *Pipeline) deliver(ctx context.Context, it queue.Item) error {
	var o Outgoing
	if err := json.Unmarshal(it.Payload, &o); err != nil {
		return queue.Permanent(fmt.Errorf("%s: unreadable item: %v", ReasonInvalid, err))
	}
	if o.ID == "" {
		// A reply queued by Pipeline.Send (and items queued before the send API): paced
		// like every message.
		if err := p.guard.wait(ctx, o.To); err != nil {
			return err // queue.Later: the chat's rate; or the item's deadline
		}
		if err := p.sender.SendText(ctx, o.To, o.Text); err != nil {
			return err
		}
		p.counters.Sent(1)
		return nil
	}
	if p.messages == nil {
		return errors.New("no WhatsApp sender for messages")
	}
	if until := p.guard.stopped(o.Chat, time.Now()); !until.IsZero() {
		err := &SendError{Reason: ReasonChatStopped, Permanent: true,
			Err: fmt.Errorf("WhatsApp kept refusing messages to %s; not sending to it until %s", o.Chat, until.UTC().Format(time.RFC3339))}
		p.failed(o, it, err)
		return queue.Permanent(err)
	}
	var media []byte
	if o.Media != nil {
		var err error
		if media, err = p.loadMedia(o.Media.ID); err != nil {
			serr := &SendError{Reason: ReasonMedia, Permanent: true, Err: fmt.Errorf("the upload %s is gone: %v", o.Media.ID, err)}
			p.failed(o, it, serr)
			return queue.Permanent(serr)
		}
	}
	if err := p.guard.wait(ctx, o.Chat); err != nil {
		return err // queue.Later: the chat's rate; or the item's deadline
	}
	err := p.messages.SendMessage(ctx, o, media)
	if err == nil {
		p.counters.Sent(1)
		return nil
	}
	var serr *SendError
	if !errors.As(err, &serr) {
		serr = &SendError{Reason: ReasonUnknown, Err: err}
		if errors.Is(err, context.DeadlineExceeded) {
			serr.Reason = ReasonTimeout
		}
	}
	p.failed(o, it, serr)
	if serr.Reason == ReasonRefused {
		if until := p.guard.refused(o.Chat, time.Now()); !until.IsZero() {
			p.emit("WA_SEND_STOPPED", map[string]string{"chat": o.Chat},
				fmt.Sprintf("WhatsApp keeps refusing messages to this chat (%v); its messages are dead-lettered unsent until %s",
					serr.Err, until.UTC().Format(time.RFC3339)), 0)
		}
	}
	if serr.Permanent {
		return queue.Permanent(serr)
	}
	return serr
}

// failed reports a failed try: to the metric by reason (PipelineOptions.SendFailed),
// and as WA_SEND_FAILED{reason, chat, code} (value = the try's number) unless the
// connection is down — the connection's own events and policies cover the outage.
func (p *Pipeline) failed(o Outgoing, it queue.Item, err *SendError) {
	if p.sendFailed != nil {
		p.sendFailed(err.Reason)
	}
	if err.Reason == ReasonNotConnected {
		return
	}
	labels := map[string]string{"reason": err.Reason, "chat": o.Chat}
	if err.Code != 0 {
		labels["code"] = fmt.Sprint(err.Code)
	}
	p.emit("WA_SEND_FAILED", labels, fmt.Sprintf("message %s: %v", o.ID, err.Err), float64(it.Attempts))
}

func (p *Pipeline) emit(code string, labels map[string]string, msg string, value float64) {
	if p.events != nil {
		p.events(engine.Event{Time: time.Now(), Code: code, Source: "whatsapp", Labels: labels, Message: msg, Value: value})
	}
}

// completeSend marks a sent message, in the transaction that removes its item.
func completeSend(ctx context.Context, tx *store.Tx, it queue.Item) error {
	var o struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(it.Payload, &o) != nil || o.ID == "" {
		return nil
	}
	return markSent(ctx, tx, o.ID)
}

// Receipt records receipts for sent messages (status StatusDelivered or StatusRead);
// a status never goes back, and ids of other messages are ignored. It never blocks
// (the WhatsApp connection calls it from its event handler) and starts nothing: the
// receipt joins the pending ones (per id, the furthest status wins), which the
// pipeline's receipt writer — their one owner — writes, and writes again after a
// failed write, until Run returns.
func (p *Pipeline) Receipt(ids []string, status string, at time.Time) {
	if _, ok := statusRank[status]; !ok || len(ids) == 0 {
		return
	}
	p.receipts.add(ids, status, at)
}

// receipts are the receipts not yet written: memory bounded by the ids of sent
// messages awaiting a receipt (a burst coalesces), not by how many receipts came.
type receipts struct {
	mu      sync.Mutex
	pending map[string]receipt // by message id
	wake    chan struct{}      // 1 slot: something is pending
}

type receipt struct {
	status string
	at     time.Time
}

func newReceipts() *receipts {
	return &receipts{pending: map[string]receipt{}, wake: make(chan struct{}, 1)}
}

func (rs *receipts) add(ids []string, status string, at time.Time) {
	rs.mu.Lock()
	for _, id := range ids {
		if old, ok := rs.pending[id]; !ok || statusRank[status] > statusRank[old.status] {
			rs.pending[id] = receipt{status: status, at: at}
		}
	}
	rs.mu.Unlock()
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

func (rs *receipts) len() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.pending)
}

// take removes and returns everything pending.
func (rs *receipts) take() map[string]receipt {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.pending) == 0 {
		return nil
	}
	m := rs.pending
	rs.pending = map[string]receipt{}
	return m
}

// receiptRetry is how long the writer waits after a failed write (a locked or full
// store) before it tries the kept receipts again.
const receiptRetry = time.Second

// receiptWriter writes the pending receipts until ctx ends, then once more, so a
// receipt given before Run returns is on disk (or logged as not recorded) when it does.
func (p *Pipeline) receiptWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			p.writeReceipts(ctx)
			return
		case <-p.receipts.wake:
		}
		if !p.writeReceipts(ctx) {
			select {
			case <-ctx.Done():
			case <-time.After(receiptRetry):
			}
			p.receipts.wake <- struct{}{} // the writer's own slot: nobody else drains it
		}
	}
}

// writeReceipts writes what is pending, in batches of one status and time (whatsmeow
// gives receipts in such batches); what fails is kept for the next try. It reports
// whether everything was written.
func (p *Pipeline) writeReceipts(ctx context.Context) bool {
	m := p.receipts.take()
	batches := map[receipt][]string{}
	for id, r := range m {
		batches[r] = append(batches[r], id)
	}
	ok := true
	for r, ids := range batches {
		for chunk := range slices.Chunk(ids, 500) { // SQLite's default limit is 32,766 variables
			if err := p.applyReceipt(ctx, r, chunk); err != nil {
				p.log.Warn("message receipt not recorded yet; kept for the next try", "ids", len(chunk), "status", r.status, "error", err)
				p.receipts.add(chunk, r.status, r.at)
				ok = false
			}
		}
	}
	return ok
}

func (p *Pipeline) applyReceipt(ctx context.Context, r receipt, ids []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	args := []any{r.status, r.at.UnixMilli(), statusRank[r.status]}
	for _, id := range ids {
		args = append(args, id)
	}
	q := `UPDATE outgoing SET status = ?, updated = ? WHERE (CASE status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1
		WHEN 'delivered' THEN 2 ELSE 3 END) < ? AND id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`
	_, err := p.db.Exec(ctx, q, args...)
	return err
}
