package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/webhook"
)

// The inbound queue's defaults. A bot's handler is given InboundItemTimeout per
// attempt, its HTTP request included: long enough for a handler that asks a language
// model (b2-03: 35 s answers were cut at a fixed 30 s and delivered again); longer ones
// raise queues.inbound.item_timeout. Not longer by default: the queue counts as stuck
// only after 1.25 × the item timeout (75 s), and a hung handler should be noticed soon.
// A failed attempt is retried after 1 s, 2 s, 4 s, … (doubling, at most
// queue.MaxRetryDelay, or later if the handler answered Retry-After) for
// InboundAttempts attempts: the retries span 511 s (8.5 minutes) before the message is
// dead-lettered, so a bot restarting or being deployed (b2-04: 25 s of 503) gets it once
// it is back. The 10th failure moves it to the dead-letter table with
// QUEUE_DEAD_LETTER, which the default policy queue-dead-letter alerts on.
const (
	InboundItemTimeout = 60 * time.Second
	InboundAttempts    = 10
	InboundRetryDelay  = time.Second
)

// inboundOptions are the inbound queue's options before the configuration's tuning.
// Deliveries about one chat reach the handler one at a time, in the order WhatsApp
// gave them (Group "chat", as the outbound queue): with four workers and no group, a
// chat's second message could be handled before its first, or beside it, and an edit
// before the message it edits. Different chats still go in parallel; a chat whose
// delivery is being retried holds back only its own later deliveries (until it is
// delivered or dead-lettered), as a FIFO queue's message group does.
func inboundOptions(o queue.Options) queue.Options {
	o.Name, o.Workers, o.Group = "inbound", 4, "chat"
	o.ItemTimeout, o.MaxAttempts, o.RetryDelay = InboundItemTimeout, InboundAttempts, InboundRetryDelay
	return o
}

// Receive queues an incoming message; it only writes it down, so whatsmeow's event
// handler is never held up by processing.
func (p *Pipeline) Receive(ctx context.Context, m Message) error {
	p.counters.Received(1)
	_, err := p.In.Enqueue(ctx, webhook.NewMessage(m))
	return err
}

// Notify queues a delivery that is not an incoming message (a receipt, a send outcome)
// for the bot's handler, durably: it is on disk when Notify returns nil, and retried like
// a message. Without a handler that takes events it is dropped when its turn comes.
func (p *Pipeline) Notify(ctx context.Context, e webhook.Event) error {
	if e.Type == "" || e.Type == webhook.TypeMessage {
		return fmt.Errorf("chat: Notify takes other deliveries than messages, not %q", e.Type)
	}
	_, err := p.In.Enqueue(ctx, e)
	return err
}

// decodeInbound reads an inbound item: a webhook.Event, or a bare Message as queued
// before deliveries had types (items from an older remedy's queue).
func decodeInbound(payload []byte) (webhook.Event, error) {
	var e webhook.Event
	if err := json.Unmarshal(payload, &e); err == nil {
		return e, nil
	}
	var m Message
	if err := json.Unmarshal(payload, &m); err != nil {
		return webhook.Event{}, err
	}
	if m.Kind == "" {
		m.Kind = webhook.KindText
	}
	return webhook.NewMessage(m), nil
}

func (p *Pipeline) handle(ctx context.Context, it queue.Item) error {
	e, err := decodeInbound(it.Payload)
	if err != nil {
		p.counters.Failed(1)
		return err
	}
	ctx = context.WithValue(ctx, deliveryKey{}, fmt.Sprintf("q%d", it.ID))
	if p.session != "" { // the handler learns which number the delivery is about
		e.Session = p.session
		if e.Message != nil {
			e.Message.Session = p.session
		}
	}
	if e.Type != webhook.TypeMessage {
		if eh, ok := p.handler.(EventHandler); ok {
			return eh.HandleEvent(ctx, e)
		}
		return nil
	}
	m := *e.Message
	if p.commands != nil {
		if reply, handled := p.commands.Handle(ctx, m); handled {
			p.counters.Processed(1)
			// remedy's answer goes to the admin who asked, privately, also for a command
			// typed in a group: the group's other members are not admins.
			return p.reply(ctx, m.From, reply, commandKeyPrefix, m.ID)
		}
	}
	if p.handler == nil {
		p.counters.Processed(1)
		return nil
	}
	reply, err := p.handler.Handle(ctx, m)
	if err != nil {
		p.counters.Failed(1)
		return err
	}
	p.counters.Processed(1)
	to := m.Chat // the chat as received: a group's JID for a group message (b2-02)
	if to == "" {
		to = m.From
	}
	return p.reply(ctx, to, reply, ReplyKeyPrefix, m.ID)
}

// ReplyKeyPrefix starts the idempotency key of the bot's answer to an incoming message
// (its handler's {"reply": …}): the key is ReplyKeyPrefix + the incoming message's id.
// commandKeyPrefix is the same for remedy's own answers to admin commands, which are not
// the bot's messages: the bot's handler gets no send_outcome for them.
const (
	ReplyKeyPrefix   = "reply:"
	commandKeyPrefix = "remedy-command:"
	// AlertKeyPrefix starts the key of an alert sent to an admin (alert.WhatsAppChannel
	// through package session): remedy's message, not the bot's, like a command's answer.
	AlertKeyPrefix = "remedy-alert:"
)

// reply queues text to `to` as an answer, through the send path (an id, a status, the
// send limits) under the idempotency key prefix+inReplyTo (none when the incoming message
// has no id).
// Delivery of incoming messages is at least once (a crash between the handler's answer and
// the item's completion hands the message over again), and the key makes the answer go
// out once: the first answer stands, also when the handler answers differently the second
// time. An answer the send path refuses (too long) dead-letters the incoming message at
// once, with its reason, instead of retrying it.
func (p *Pipeline) reply(ctx context.Context, to, text, prefix, inReplyTo string) error {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	if p.messages == nil {
		_, err := p.Out.Enqueue(ctx, Reply{To: to, Text: text}) // a text-only Sender (tests): no send path to dedupe on
		return err
	}
	o := Outgoing{To: to, Text: text}
	if inReplyTo != "" {
		o.IdempotencyKey = prefix + inReplyTo
	}
	_, _, err := p.Enqueue(ctx, o)
	switch {
	case errors.Is(err, ErrKeyReused):
		return nil // answered before this delivery
	case errors.Is(err, ErrInvalid):
		return queue.Permanent(fmt.Errorf("the answer cannot be sent: %w", err))
	}
	return err
}
