package session

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/store"
)

// inboundKeeper stands between whatsmeow and the inbound queue, so that a message
// WhatsApp delivered is never acknowledged and then lost. whatsmeow sends a message's
// receipt only after its event handler returns, and the server does not deliver a
// receipted message again (whatsmeow message.go decryptMessages). So receive returns
// nil only once the message is kept: queued in remedy.db, or — when the queue cannot
// take it within bound (write lock held, disk full, I/O error, queue at capacity) —
// appended to a spool file written out in advance in the reserve's space, which works on
// a full disk and survives a kill. The spool is written before the receipt, not after:
// a message held only in memory would be lost by a kill -9 after WhatsApp was told it
// arrived. While the spool holds messages, new ones go behind them, and run moves them
// to the queue in order once it takes writes again (at least once: a kill between the
// queue's commit and the spool's trim queues a message twice, never zero times). With
// the spool full or missing, receive returns the queue's error and whatsmeow leaves the
// message unacknowledged for the server to deliver again.
//
// The session owns it; receive runs on whatsmeow's goroutine, run in the queues' actor.
type inboundKeeper struct {
	spool   *store.Spool[chat.Message] // nil: it could not be made (the disk was full at the first start)
	name    string                     // the inbound queue's name: the backlog's writer label
	enqueue func(context.Context, chat.Message) error
	// sync, if set, puts what enqueue committed on disk (enqueue does not wait for it:
	// the receipts wait at the socket, whatsapp.Options.BeforeWrite); move calls it
	// before it drops moved messages from the spool.
	sync func() error
	// backlog is told when messages start waiting in the spool (err set) and when it is
	// empty again (STORE_BACKLOG / STORE_BACKLOG_CLEARED with writer=inbound).
	backlog func(name string, rows int, err error)
	log     *slog.Logger
	bound   time.Duration // how long one message may wait for the queue before it is spooled

	mu      sync.Mutex // guards the choice queue-or-spool (receive) and the spool's front (move)
	wake    chan struct{}
	waiting atomic.Bool // the spool holds messages; the backlog was reported
}

// inboundBound is how long whatsmeow's handler waits for the queue before a message is
// spooled: long enough for a busy database's lock, short enough that the connection's
// node handling (one node at a time) is not held up for long.
const inboundBound = 5 * time.Second

func newInboundKeeper(spool *store.Spool[chat.Message], name string, enqueue func(context.Context, chat.Message) error,
	backlog func(string, int, error), log *slog.Logger) *inboundKeeper {
	k := &inboundKeeper{spool: spool, name: name, enqueue: enqueue, backlog: backlog, log: log, bound: inboundBound,
		wake: make(chan struct{}, 1)}
	if spool != nil && spool.Len() > 0 {
		k.waiting.Store(true) // left by the last run: moved first
	}
	return k
}

// receive keeps m (see inboundKeeper); nil means it is kept and may be acknowledged.
func (k *inboundKeeper) receive(ctx context.Context, m chat.Message) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.spool == nil || k.spool.Len() == 0 {
		cctx, cancel := context.WithTimeout(ctx, k.bound)
		err := k.enqueue(cctx, m)
		cancel()
		if err == nil {
			return nil
		}
		if k.spool == nil {
			return fmt.Errorf("not queued and no spool: %w", err)
		}
		k.report(err)
	}
	if err := k.spool.Append(m); err != nil {
		return fmt.Errorf("not queued, and the inbound spool refused it: %w", err)
	}
	select {
	case k.wake <- struct{}{}:
	default:
	}
	return nil
}

// report tells the backlog once per outage.
func (k *inboundKeeper) report(err error) {
	if !k.waiting.Swap(true) && k.backlog != nil {
		k.backlog(k.name, k.spool.Len()+1, err)
	}
}

// len is the number of messages waiting in the spool.
func (k *inboundKeeper) len() int {
	if k == nil || k.spool == nil {
		return 0
	}
	return k.spool.Len()
}

// run moves spooled messages to the queue until ctx ends: at once when woken, then
// after 100 ms doubling to 5 s while the queue refuses them.
func (k *inboundKeeper) run(ctx context.Context) {
	if k.spool == nil {
		return
	}
	delay := time.Duration(0)
	for {
		var retry <-chan time.Time
		if k.move(ctx) {
			delay = 0
		} else {
			delay = min(max(2*delay, 100*time.Millisecond), 5*time.Second)
			retry = time.After(delay)
		}
		select {
		case <-ctx.Done():
			return
		case <-retry:
		case <-k.wake:
			if retry != nil { // backing off: a new message does not shorten the wait
				select {
				case <-ctx.Done():
					return
				case <-retry:
				}
			}
		}
	}
}

// move queues the spool's messages in order, 100 at a time; false if the queue refused one.
func (k *inboundKeeper) move(ctx context.Context) bool {
	for ctx.Err() == nil {
		k.mu.Lock()
		ms, err := k.spool.Peek(100)
		if err != nil {
			k.mu.Unlock()
			k.log.Error("reading the inbound spool", "error", err)
			return false
		}
		if len(ms) == 0 {
			k.mu.Unlock()
			if k.waiting.Swap(false) && k.backlog != nil {
				k.backlog(k.name, 0, nil)
			}
			return true
		}
		bound := k.bound
		k.mu.Unlock()
		// Queued without the lock, so that whatsmeow's handler is not held up by a slow
		// database: what it appends meanwhile goes behind these rows, and only this
		// goroutine removes rows, from the front.
		moved := 0
		for _, m := range ms {
			cctx, cancel := context.WithTimeout(ctx, bound)
			err = k.enqueue(cctx, m)
			cancel()
			if err != nil {
				break
			}
			moved++
		}
		if moved > 0 && k.sync != nil {
			if serr := k.sync(); serr != nil {
				k.report(serr)
				return false // kept in the spool: moved again later (twice at worst)
			}
		}
		if moved > 0 {
			k.mu.Lock()
			if derr := k.spool.Drop(moved); derr != nil {
				k.log.Error("trimming the inbound spool (its messages may be queued twice)", "error", derr)
			}
			k.mu.Unlock()
		}
		if err != nil {
			k.report(err)
			return false
		}
	}
	return false
}
