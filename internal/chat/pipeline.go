package chat

import (
	"context"
	"encoding/json"
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
	commands *Commands
	handler  Handler
	counters *monitor.Counters
}

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
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
}

// NewPipeline opens the "inbound" and "outbound" queues. Outbound items are tried for a
// long time (a reply must survive a long disconnect) and are dead-lettered, never
// dropped, after that.
func NewPipeline(ctx context.Context, o PipelineOptions) (*Pipeline, error) {
	p := &Pipeline{commands: o.Commands, handler: o.Handler, counters: o.Counters}
	if p.counters == nil {
		p.counters = monitor.NewCounters()
	}
	tune := func(q queue.Options) queue.Options {
		q.Events = o.Events
		if o.Tune != nil {
			o.Tune(&q)
		}
		return q
	}
	var err error
	p.Out, err = queue.Open(ctx, o.DB, tune(queue.Options{Name: "outbound", Workers: 1, MaxAttempts: 200, RetryDelay: time.Second,
		ItemTimeout: 60 * time.Second, Logger: o.Logger,
		Handler: func(ctx context.Context, it queue.Item) error {
			var r Reply
			if err := json.Unmarshal(it.Payload, &r); err != nil {
				return err
			}
			if err := o.Sender.SendText(ctx, r.To, r.Text); err != nil {
				return err
			}
			p.counters.Sent(1)
			return nil
		}}))
	if err != nil {
		return nil, err
	}
	p.In, err = queue.Open(ctx, o.DB, tune(inboundOptions(queue.Options{Logger: o.Logger, Handler: p.handle})))
	return p, err
}

// Send queues a reply.
func (p *Pipeline) Send(ctx context.Context, to, text string) error {
	_, err := p.Out.Enqueue(ctx, Reply{To: to, Text: text})
	return err
}

// Run runs both queues until ctx ends.
func (p *Pipeline) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { p.Out.Run(ctx) })
	p.In.Run(ctx)
	wg.Wait() // both queues' workers have stopped
}
