package conditions

import (
	"math"
	"sort"
	"time"
)

// History keeps the windows that helper functions read: recent values of the metrics
// named in rate/increase/*_over, and recent times of the events that count/since select
// (views.go). It keeps only what the loaded expressions need, for as long as their
// longest window. Buffers are reused, so steady state does not allocate.
type History struct {
	metrics map[string]*series
	codes   map[string]*codeHist
	views   map[string]*view
	// byID and viewID hold the same series and views by slot number (seriesID), for the
	// fast path.
	byID   []*series
	viewID []*view
}

// seriesID numbers a metric's series or an event view in the process-wide key space of
// fast.go; the prefixes keep them apart from environment keys.
func seriesID(s *Site) int {
	switch s.Func {
	case FuncCount, FuncSince:
		return keyID("\x00view:" + s.view)
	}
	return keyID("\x00metric:" + s.Name)
}

// get returns the series of a slot number, or nil.
func (h *History) get(id int) *series {
	if id < len(h.byID) {
		return h.byID[id]
	}
	return nil
}

// getView returns the view of a slot number, or nil.
func (h *History) getView(id int) *view {
	if id < len(h.viewID) {
		return h.viewID[id]
	}
	return nil
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
// Times only grow, and the window usually ends at the latest entry and starts at the
// oldest kept one, so both ends are checked before searching.
func (s *series) window(now int64, w time.Duration) (int, int) {
	from := now - int64(w)
	i, j := s.start, len(s.ts)
	if j > i && s.ts[j-1] > now {
		live := s.ts[i:j]
		j = i + sort.Search(len(live), func(k int) bool { return live[k] > now })
	}
	if j > i && s.ts[i] < from {
		live := s.ts[i:j]
		i += sort.Search(len(live), func(k int) bool { return live[k] >= from })
	}
	return i, j
}

func (h *History) prepare(conds []*Condition) {
	metrics := map[string]time.Duration{}
	views := map[string]*Site{}
	keep := map[string]time.Duration{}
	since := map[string]bool{}
	for _, c := range conds {
		for m, w := range c.uses.Metrics {
			metrics[m] = max(metrics[m], w)
		}
		for _, s := range c.sites {
			if s.Func == FuncCount || s.Func == FuncSince {
				views[s.view] = s
				keep[s.view] = max(keep[s.view], s.Window)
				since[s.view] = since[s.view] || s.Func == FuncSince
			}
		}
	}
	h.metrics = keepSeries(h.metrics, metrics)
	h.views, h.codes = keepViews(h.views, views, keep, since)
	h.byID, h.viewID = h.byID[:0], h.viewID[:0]
	for name, s := range h.metrics {
		id := keyID("\x00metric:" + name)
		for len(h.byID) <= id {
			h.byID = append(h.byID, nil)
		}
		h.byID[id] = s
	}
	for _, s := range views {
		id := seriesID(s)
		for len(h.viewID) <= id {
			h.viewID = append(h.viewID, nil)
		}
		h.viewID[id] = h.views[s.view]
	}
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

func (h *History) aggregate(f Func, name string, now time.Time, w time.Duration) float64 {
	return h.metrics[name].aggregate(f, now, w)
}

// count is the number of events in the window; s may be nil (none).
func (s *series) count(now time.Time, w time.Duration) int {
	if s == nil {
		return 0
	}
	i, j := s.window(now.UnixNano(), w)
	return j - i
}

// since is the time since the latest event, in seconds; +Inf if none.
func (s *series) since(now time.Time) float64 {
	if s == nil || !s.seen {
		return math.Inf(1)
	}
	return time.Duration(now.UnixNano() - s.last).Seconds()
}

// aggregate is f over the window; NaN if there are no values (s may be nil).
func (s *series) aggregate(f Func, now time.Time, w time.Duration) float64 {
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
	for _, v := range h.views {
		m = max(m, v.keep)
	}
	return m
}
