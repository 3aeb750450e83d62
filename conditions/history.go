package conditions

import (
	"math"
	"sort"
	"time"
)

// History keeps the windows that helper functions read: recent values of the metrics
// named in rate/increase/*_over, and recent times of the event codes named in
// count/since. It keeps only what the loaded expressions need, for as long as their
// longest window. Buffers are reused, so steady state does not allocate.
type History struct {
	metrics map[string]*series
	codes   map[string]*series
}

// series is a time-ordered buffer with its live part in [start:]. For metric series,
// sum and inc hold running totals (of values and of counter increases up to each entry),
// so avg_over, increase and rate cost a binary search instead of a scan.
type series struct {
	ts    []int64
	vs    []float64 // nil for event series
	sum   []float64
	inc   []float64
	start int
	keep  time.Duration
	last  int64
	seen  bool
}

func (s *series) add(t int64, v float64, withValue bool) {
	s.last, s.seen = t, true
	if s.keep <= 0 {
		return
	}
	s.ts = append(s.ts, t)
	if withValue {
		prevSum, prevInc := 0.0, 0.0
		if n := len(s.vs); n > 0 {
			prevSum, prevInc = s.sum[n-1], s.inc[n-1]
			if d := v - s.vs[n-1]; d >= 0 {
				prevInc += d
			} else {
				prevInc += v // a counter reset: count from zero, as Prometheus does
			}
		}
		s.vs = append(s.vs, v)
		s.sum = append(s.sum, prevSum+v)
		s.inc = append(s.inc, prevInc)
	}
	cutoff := t - int64(s.keep)
	for s.start < len(s.ts) && s.ts[s.start] < cutoff {
		s.start++
	}
	// Compact once half the buffer is dead; amortised O(1), no growth in steady state.
	if s.start > 0 && s.start >= len(s.ts)/2 {
		n := copy(s.ts, s.ts[s.start:])
		s.ts = s.ts[:n]
		if withValue {
			copy(s.vs, s.vs[s.start:])
			s.vs = s.vs[:n]
			// Rebase the running totals so they do not grow without bound.
			baseSum, baseInc := s.sum[s.start]-s.vs[0], s.inc[s.start]
			for k := 0; k < n; k++ {
				s.sum[k] = s.sum[s.start+k] - baseSum
				s.inc[k] = s.inc[s.start+k] - baseInc
			}
			s.sum, s.inc = s.sum[:n], s.inc[:n]
		}
		s.start = 0
	}
}

// window returns the index range of entries with now-w <= t <= now.
func (s *series) window(now int64, w time.Duration) (int, int) {
	live := s.ts[s.start:]
	from := now - int64(w)
	i := sort.Search(len(live), func(i int) bool { return live[i] >= from })
	j := sort.Search(len(live), func(i int) bool { return live[i] > now })
	return s.start + i, s.start + j
}

func (h *History) prepare(conds []*Condition) {
	metrics := map[string]time.Duration{}
	codes := map[string]time.Duration{}
	for _, c := range conds {
		for m, w := range c.uses.Metrics {
			metrics[m] = max(metrics[m], w)
		}
		for code, w := range c.uses.Codes {
			codes[code] = max(codes[code], w)
		}
	}
	h.metrics = keepSeries(h.metrics, metrics)
	h.codes = keepSeries(h.codes, codes)
}

// keepSeries carries over the series still needed (a reload must not forget the last
// ten minutes) and adjusts how long each is kept.
func keepSeries(old map[string]*series, want map[string]time.Duration) map[string]*series {
	out := make(map[string]*series, len(want))
	for name, keep := range want {
		s := old[name]
		if s == nil {
			s = &series{}
		}
		s.keep = keep
		out[name] = s
	}
	return out
}

func (h *History) observeEvent(t time.Time, code string) {
	if s := h.codes[code]; s != nil {
		s.add(t.UnixNano(), 0, false)
	}
}

func (h *History) observeSample(t time.Time, values map[string]float64) {
	ns := t.UnixNano()
	for name, s := range h.metrics {
		if v, ok := values[name]; ok {
			s.add(ns, v, true)
		}
	}
}

func (h *History) count(code string, now time.Time, w time.Duration) int {
	s := h.codes[code]
	if s == nil {
		return 0
	}
	i, j := s.window(now.UnixNano(), w)
	return j - i
}

func (h *History) since(code string, now time.Time) float64 {
	s := h.codes[code]
	if s == nil || !s.seen {
		return math.Inf(1)
	}
	return time.Duration(now.UnixNano() - s.last).Seconds()
}

func (h *History) aggregate(f Func, name string, now time.Time, w time.Duration) float64 {
	s := h.metrics[name]
	if s == nil {
		return math.NaN()
	}
	i, j := s.window(now.UnixNano(), w)
	if j <= i {
		return math.NaN()
	}
	vs := s.vs[i:j]
	switch f {
	case FuncAvgOver:
		return (s.sum[j-1] - s.sum[i] + s.vs[i]) / float64(j-i)
	case FuncMaxOver:
		m := vs[0]
		for _, v := range vs[1:] {
			m = math.Max(m, v)
		}
		return m
	case FuncMinOver:
		m := vs[0]
		for _, v := range vs[1:] {
			m = math.Min(m, v)
		}
		return m
	case FuncIncrease, FuncRate:
		if len(vs) < 2 {
			return math.NaN()
		}
		inc := s.inc[j-1] - s.inc[i]
		if f == FuncIncrease {
			return inc
		}
		span := time.Duration(s.ts[j-1] - s.ts[i]).Seconds()
		return inc / span
	}
	return math.NaN()
}

// longest is the longest window any series keeps.
func (h *History) longest() time.Duration {
	var m time.Duration
	for _, s := range h.metrics {
		m = max(m, s.keep)
	}
	for _, s := range h.codes {
		m = max(m, s.keep)
	}
	return m
}
