package daemon

import (
	"sync"
	"sync/atomic"

	"github.com/remedy-run/remedy/engine"
)

// inbox collects inputs for the engine loop from any goroutine. It is bounded two ways:
// remedy's own sources never block (a source may be the loop itself) and their events are
// never dropped, while past the limit the oldest samples are (they are superseded anyway,
// and counted); the ingest API is refused (offer) once the inbox holds its share, so a
// flood gets 429 instead of growing memory.
type inbox struct {
	mu      sync.Mutex
	items   []item
	notify  chan struct{}
	limit   int
	dropped atomic.Int64
}

// item is one input; stored says its event or sample is already on disk (the ingest API
// commits before it answers), so the journal does not write it again.
type item struct {
	in     engine.Input
	stored bool
}

func newInbox(limit int) *inbox { return &inbox{notify: make(chan struct{}, 1), limit: limit} }

func (b *inbox) push(in engine.Input) { b.add(item{in: in}) }

func (b *inbox) add(its ...item) {
	b.mu.Lock()
	for _, it := range its {
		if len(b.items) >= b.limit {
			for i, x := range b.items {
				if _, isSample := x.in.(engine.Sample); isSample {
					b.items = append(b.items[:i], b.items[i+1:]...)
					b.dropped.Add(1)
					break
				}
			}
		}
		b.items = append(b.items, it)
	}
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// room reports whether n more inputs from the API fit: the API may fill half the inbox,
// so remedy's own events always find room.
func (b *inbox) room(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)+n <= b.limit/2
}

// take returns everything queued, in arrival order.
func (b *inbox) take() []item {
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
