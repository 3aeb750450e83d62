package chat

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/webhook"
)

// sendComplete is the outbound queue's Complete: the message is marked sent and, for a
// handler that takes events, its "send_outcome" delivery is queued on the inbound queue
// — both in the transaction that removes the item, so the outcome is told exactly once
// and never for a send whose record was lost.
func (p *Pipeline) sendComplete(ctx context.Context, tx *store.Tx, it queue.Item) error {
	if err := completeSend(ctx, tx, it); err != nil {
		return err
	}
	return p.queueOutcome(ctx, tx, it, webhook.OutcomeSent, "")
}

// sendDeadLettered is the outbound queue's DeadLettered: a message that will not be sent
// (its last try failed, a refusal, a stopped chat, CLEAR_QUEUE) is told as "failed" with
// the dead letter's reason.
func (p *Pipeline) sendDeadLettered(ctx context.Context, tx *store.Tx, it queue.Item, reason string) error {
	return p.queueOutcome(ctx, tx, it, webhook.OutcomeFailed, reason)
}

// queueOutcome queues a send outcome for a message of the send path (an item with an id:
// the send API's, and the handler's replies if it asked for theirs; not remedy's own
// answers to admin commands, nor texts queued by Send). A full
// inbound queue drops the outcome rather than undo the send's record: the message's
// status (GET /api/v1/messages/{id}) still says it.
func (p *Pipeline) queueOutcome(ctx context.Context, tx *store.Tx, it queue.Item, status, reason string) error {
	if !p.outcomes || p.In == nil {
		return nil
	}
	var o Outgoing
	if json.Unmarshal(it.Payload, &o) != nil || o.ID == "" || strings.HasPrefix(o.IdempotencyKey, commandKeyPrefix) || strings.HasPrefix(o.IdempotencyKey, AlertKeyPrefix) ||
		(!p.replyOutcomes && strings.HasPrefix(o.IdempotencyKey, ReplyKeyPrefix)) {
		return nil
	}
	now := time.Now()
	e, err := webhook.New(webhook.TypeSendOutcome, now, webhook.SendOutcome{ID: o.ID, Chat: o.Chat, Status: status,
		Reason: reason, Attempts: it.Attempts, IdempotencyKey: o.IdempotencyKey, Time: now})
	if err != nil {
		return err
	}
	if _, err := p.In.EnqueueTx(ctx, tx, e); err != nil {
		if errors.Is(err, queue.ErrFull) {
			p.log.Warn("send outcome not queued for the handler: the inbound queue is full", "id", o.ID, "status", status)
			return nil
		}
		return err
	}
	p.In.Notify() // before the commit: a worker that finds nothing yet polls again shortly
	return nil
}
