package engine

import "time"

// bucket is a token bucket driven by input time: Burst tokens, one refilled every Every.
// It is kept as the single time at which it is full again (as in the generic cell rate
// algorithm), so its arithmetic is exact and its state is one serialisable value; it
// replaces golang.org/x/time/rate's Limiter here because the engine's state must survive
// a restart (Snapshot), and a Limiter's state is private.
type bucket struct {
	FullAt time.Time     `json:"full_at"`
	Burst  int           `json:"burst"`
	Every  time.Duration `json:"every"`
}

func newBucket(count int, per time.Duration) *bucket {
	return &bucket{Burst: count, Every: per / time.Duration(count)}
}

// debt is how long until the bucket is full again, seen at t.
func (b *bucket) debt(t time.Time) time.Duration {
	if b.FullAt.After(t) {
		return b.FullAt.Sub(t)
	}
	return 0
}

// take removes a token at t if there is one.
func (b *bucket) take(t time.Time) bool {
	d := b.debt(t)
	if d+b.Every > time.Duration(b.Burst)*b.Every {
		return false
	}
	b.FullAt = t.Add(d + b.Every)
	return true
}

// hasToken reports whether a token is available at t.
func (b *bucket) hasToken(t time.Time) bool {
	return b.debt(t)+b.Every <= time.Duration(b.Burst)*b.Every
}

// tokenAt is the earliest time at or after t when a token is available.
func (b *bucket) tokenAt(t time.Time) time.Time {
	if at := b.FullAt.Add(-time.Duration(b.Burst-1) * b.Every); at.After(t) {
		return at
	}
	return t
}

// fullAt is the earliest time at or after t when the bucket is full.
func (b *bucket) fullAt(t time.Time) time.Time {
	if b.FullAt.After(t) {
		return b.FullAt
	}
	return t
}

// full reports whether the bucket is full at t.
func (b *bucket) full(t time.Time) bool { return !b.FullAt.After(t) }
