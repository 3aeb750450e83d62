package chat

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
)

// Sender sends a text (the WhatsApp connection); it fails while disconnected.
type Sender interface {
	SendText(ctx context.Context, to, text string) error
}

// Pipeline is the inbound and outbound queues with their handlers.
type Pipeline struct {
	In, Out  *queue.Queue
	session  string // stamped on every delivery to the handler
	commands *Commands
	handler  Handler
	counters *monitor.Counters

	// the send API (outgoing.go, deliver.go, media.go)
	db       *store.DB
	sender   Sender
	messages MessageSender // nil: the sender sends texts only
	guard    *sendGuard
	events   func(engine.Event)
	log      *slog.Logger
	mediaDir string
	maxMedia int64
	// the media directory's bounds (mediaroom.go)
	mediaMaxTotal, mediaMinFree int64
	receipts                    *receipts
	newID                       func() string
	sendFailed                  func(reason string)
	// queue send outcomes for the handler (outcome.go): for the send API's messages,
	// and for the handler's own answers
	outcomes, replyOutcomes bool
}

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
	// InName and OutName name the queues (default "inbound" and "outbound"; a session
	// other than the default has its own, package session).
	InName, OutName string
	// Session names the number in every delivery to the handler (webhook.Event.Session);
	// "": none.
	Session  string
	DB       *store.DB
	Commands *Commands
	Handler  Handler // may be nil: only commands are answered
	Sender   Sender
	Counters *monitor.Counters
	Logger   *slog.Logger
	// Events receives the queues' events (QUEUE_STUCK, HANDLER_PANIC, …); it must not block.
	Events func(engine.Event)
	// Tune adjusts each queue's options before it opens (the configuration's queues).
	Tune func(*queue.Options)
	// MediaDir keeps the uploads of the send API (SaveMedia); "" refuses media.
	MediaDir string
	// MaxMedia caps an upload in bytes (default DefaultMaxMedia).
	MaxMedia int64
	// MediaMaxTotal caps the media directory in bytes (default DefaultMediaMaxTotal);
	// MediaMinFree is the free space below which uploads are refused (default
	// DefaultMediaMinFree; negative: no floor). Past either, SaveMedia returns
	// ErrMediaFull and raises WA_MEDIA_FULL.
	MediaMaxTotal, MediaMinFree int64
	// Limits pace the send API's messages (DefaultSendLimits where a field is zero).
	Limits SendLimits
	// NewID makes a message id (the client's GenerateMessageID; default random ids of
	// the same shape).
	NewID func() string
	// SendFailed is told the reason of every failed try (the failures metric); it must
	// not block.
	SendFailed func(reason string)
	// Offline reports whether WhatsApp is unusable (not connected): the outbound queue
	// then waits without being reported stuck (queue.Options.Blocked).
	Offline func() bool
	// SendOutcomes queues a "send_outcome" delivery for the handler when a message of
	// the send API is sent or fails (set it when a handler takes events).
	SendOutcomes bool
	// ReplyOutcomes, with SendOutcomes, queues one for the handler's answers ({"reply":
	// …}, the idempotency key ReplyKeyPrefix+id) too; only a handler that asked for them
	// gets them (whatsapp.handler.reply_outcomes): for a bot that answers every message
	// they were a second delivery per message.
	ReplyOutcomes bool
}

// NewPipeline opens the "inbound" and "outbound" queues. Outbound items are tried for a
// long time (a reply must survive a long disconnect) and are dead-lettered, never
// dropped, after that.
func NewPipeline(ctx context.Context, o PipelineOptions) (*Pipeline, error) {
	p := &Pipeline{session: o.Session, commands: o.Commands, handler: o.Handler, counters: o.Counters, db: o.DB, sender: o.Sender,
		guard: newSendGuard(o.Limits), events: o.Events, log: o.Logger, mediaDir: o.MediaDir, maxMedia: o.MaxMedia,
		mediaMaxTotal: o.MediaMaxTotal, mediaMinFree: o.MediaMinFree,
		receipts: newReceipts(), newID: o.NewID, sendFailed: o.SendFailed, outcomes: o.SendOutcomes,
		replyOutcomes: o.SendOutcomes && o.ReplyOutcomes}
	if p.newID == nil {
		p.newID = randomID
	}
	p.messages, _ = o.Sender.(MessageSender)
	if p.counters == nil {
		p.counters = monitor.NewCounters()
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.maxMedia <= 0 {
		p.maxMedia = DefaultMaxMedia
	}
	if p.mediaMaxTotal <= 0 {
		p.mediaMaxTotal = DefaultMediaMaxTotal
	}
	if p.mediaMinFree == 0 {
		p.mediaMinFree = DefaultMediaMinFree
	}
	tune := func(q queue.Options) queue.Options {
		q.Events = o.Events
		if o.Tune != nil {
			o.Tune(&q)
		}
		return q
	}
	var err error
	// One worker: whatsmeow sends one message at a time anyway, and the rate limit is
	// the pace. Messages to one chat go out in order (Group), a failing one holding back
	// the ones after it.
	p.Out, err = queue.Open(ctx, o.DB, tune(queue.Options{Name: cmp.Or(o.OutName, "outbound"), Workers: 1, MaxAttempts: 200, RetryDelay: time.Second,
		ItemTimeout: 60 * time.Second, Logger: o.Logger, Group: "chat", Blocked: o.Offline, Handler: p.deliver, Complete: p.sendComplete, DeadLettered: p.sendDeadLettered}))
	if err != nil {
		return nil, err
	}
	if err := p.restoreStops(ctx); err != nil {
		return nil, fmt.Errorf("outbound: stopped chats: %w", err)
	}
	in := inboundOptions(queue.Options{Logger: o.Logger, Handler: p.handle})
	in.Name = cmp.Or(o.InName, in.Name)
	p.In, err = queue.Open(ctx, o.DB, tune(in))
	return p, err
}

// Run runs both queues until ctx ends.
func (p *Pipeline) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { p.Out.Run(ctx) })
	wg.Go(func() { p.receiptWriter(ctx) })
	wg.Go(func() { p.mediaPruner(ctx) })
	p.In.Run(ctx)
	wg.Wait() // both queues' workers have stopped
}
