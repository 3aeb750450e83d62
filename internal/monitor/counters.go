package monitor

import (
	"sync"
	"time"
)

// window counts events over the last minute in one-second buckets.
type window struct {
	buckets [60]int64
	stamp   [60]int64 // the unix second each bucket holds
}

func (w *window) add(now time.Time, n int64) {
	sec := now.Unix()
	i := sec % 60
	if w.stamp[i] != sec {
		w.stamp[i], w.buckets[i] = sec, 0
	}
	w.buckets[i] += n
}

func (w *window) sum(now time.Time) int64 {
	sec := now.Unix()
	var total int64
	for i := range w.buckets {
		if sec-w.stamp[i] < 60 {
			total += w.buckets[i]
		}
	}
	return total
}

// Counters are the message pipeline's counts over the last minute. They are safe for
// concurrent use; the pipeline calls them, the sampler reads them.
type Counters struct {
	mu                                  sync.Mutex
	received, processed, failed, sent   window
	undecryptable                       window
	totalReceived, totalFailed, totSent int64
	totalUndecryptable                  int64
	now                                 func() time.Time
}

// NewCounters returns zeroed counters.
func NewCounters() *Counters { return &Counters{now: time.Now} }

// Received counts inbound messages.
func (c *Counters) Received(n int) { c.add(&c.received, n, &c.totalReceived) }

// Processed counts messages handled.
func (c *Counters) Processed(n int) { c.add(&c.processed, n, nil) }

// Failed counts messages whose handler failed.
func (c *Counters) Failed(n int) { c.add(&c.failed, n, &c.totalFailed) }

// Undecryptable counts inbound messages that could not be decrypted: they never reach
// the pipeline, so they are neither received nor failed, yet they are lost to the bot.
func (c *Counters) Undecryptable(n int) { c.add(&c.undecryptable, n, &c.totalUndecryptable) }

// Sent counts outbound messages.
func (c *Counters) Sent(n int) { c.add(&c.sent, n, &c.totSent) }

func (c *Counters) add(w *window, n int, total *int64) {
	c.mu.Lock()
	w.add(c.now(), int64(n))
	if total != nil {
		*total += int64(n)
	}
	c.mu.Unlock()
}

// Values returns the per-minute rates and the error rate: (failed + undecryptable) ÷
// (received + undecryptable) over the last minute; 0 without traffic.
func (c *Counters) Values() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	recv, proc, fail, sent := c.received.sum(now), c.processed.sum(now), c.failed.sum(now), c.sent.sum(now)
	undec := c.undecryptable.sum(now)
	rate := 0.0
	if recv+undec > 0 {
		rate = min(1, float64(fail+undec)/float64(recv+undec))
	}
	return map[string]float64{
		"msgs_received_per_min": float64(recv), "msgs_processed_per_min": float64(proc),
		"msgs_failed_per_min": float64(fail), "msgs_sent_per_min": float64(sent), "error_rate": rate,
		"msgs_undecryptable_per_min": float64(undec),
	}
}
