package daemon

import (
	"sync"
	"sync/atomic"

	"github.com/remedy-run/remedy/engine"
)

// inbox collects inputs for the engine loop from any goroutine without ever blocking
// the sender (a source may be the loop itself, writing to the store). Events are never
// dropped; past the limit, the oldest samples are (they are superseded anyway), and
// counted.
type inbox struct {
	mu      sync.Mutex
	items   []engine.Input
	notify  chan struct{}
	limit   int
	dropped atomic.Int64
}

func newInbox(limit int) *inbox { return &inbox{notify: make(chan struct{}, 1), limit: limit} }

func (b *inbox) push(in engine.Input) {
	b.mu.Lock()
	if len(b.items) >= b.limit {
		for i, x := range b.items {
			if _, isSample := x.(engine.Sample); isSample {
				b.items = append(b.items[:i], b.items[i+1:]...)
				b.dropped.Add(1)
				break
			}
		}
	}
	b.items = append(b.items, in)
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// take returns everything queued, in arrival order.
func (b *inbox) take() []engine.Input {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.items
	b.items = nil
	return out
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}
