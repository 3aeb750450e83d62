package conditions

import (
	"slices"
	"time"
)

// A view is the history of the events one selector sees (selector.go): the events of a
// code whose labels pass the matchers, one series per value of the `by` labels. count()
// and since() read the series of the instance being evaluated, so each instance of a
// group_by policy counts its own events. Calls with the same code, `by` and matchers
// share one view.
type view struct {
	code  string
	by    []string
	match []Matcher
	keep  time.Duration
	since bool    // since() reads it: a group's latest time matters past keep
	all   *series // the only series when by is empty
	parts map[string]*series
	// sweepAt is the number of groups at which dead ones are dropped next.
	sweepAt int
}

// maxGroups bounds the groups past its window that a view read by since() keeps (the
// default max_instances is far below it).
const maxGroups = 4096

// codeHist lists the views of one event code: what an event of that code updates.
type codeHist struct{ views []*view }

// keepViews carries over the views still needed (a reload must not forget the last ten
// minutes), adjusts how long each keeps its events, and indexes them by code.
func keepViews(old map[string]*view, want map[string]*Site, keep map[string]time.Duration, since map[string]bool) (map[string]*view, map[string]*codeHist) {
	out := make(map[string]*view, len(want))
	codes := map[string]*codeHist{}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a fixed order of updates
	for _, k := range keys {
		s := want[k]
		v := old[k]
		if v == nil {
			v = &view{code: s.Name, by: s.By, match: s.Match, parts: map[string]*series{}, all: &series{}}
		}
		v.keep, v.since = keep[k], since[k]
		v.all.keep = v.keep
		for _, p := range v.parts {
			p.keep = v.keep
		}
		out[k] = v
		ch := codes[v.code]
		if ch == nil {
			ch = &codeHist{}
			codes[v.code] = ch
		}
		ch.views = append(ch.views, v)
	}
	return out, codes
}

// A group's key is the values of the by labels, each ended by a NUL (label values are
// text, so the key is unambiguous).

// observe records an event of the view's code at t (ns) if its labels pass the matchers.
// buf is scratch space for the group key; only a group seen for the first time allocates.
func (v *view) observe(t int64, labels map[string]string, buf *[]byte) {
	if len(v.by) == 0 && len(v.match) == 0 { // a policy without group_by: the common case
		v.all.add(t, 0, false)
		return
	}
	for i := range v.match {
		if !v.match[i].matches(labels) {
			return
		}
	}
	if len(v.by) == 0 {
		v.all.add(t, 0, false)
		return
	}
	b := (*buf)[:0]
	for _, l := range v.by {
		b = append(append(b, labels[l]...), 0)
	}
	*buf = b
	s := v.parts[string(*buf)]
	if s == nil {
		if len(v.parts) >= v.sweepAt {
			v.sweep(t)
		}
		s = &series{keep: v.keep}
		v.parts[string(*buf)] = s
	}
	s.add(t, 0, false)
}

// sweep drops the groups that no window reaches any more. since() needs a group's latest
// time past the window, so a view it reads keeps those; once the view holds maxGroups,
// they are cut to the maxGroups/2 seen most recently (since() reads +Inf for the others
// again). Groups
// inside a window are never dropped: their number is bounded by the events in the
// window, as is the series of a view without by. Called when the number of groups
// doubles, so it is amortised O(1).
func (v *view) sweep(now int64) {
	cutoff := now - int64(v.keep)
	if !v.since {
		for k, s := range v.parts {
			if s.last < cutoff {
				delete(v.parts, k)
			}
		}
	} else if len(v.parts) >= maxGroups {
		var old []int64
		for _, s := range v.parts {
			if s.last < cutoff {
				old = append(old, s.last)
			}
		}
		if drop := len(old) - maxGroups/2; drop > 0 {
			slices.Sort(old)
			last := old[drop-1]
			for k, s := range v.parts {
				if s.last <= last && s.last < cutoff {
					delete(v.parts, k)
				}
			}
		}
	}
	v.sweepAt = max(64, 2*len(v.parts))
}

// pick returns the series of the instance r evaluates, or nil (no event yet).
func (v *view) pick(r *Runtime) *series {
	if v == nil {
		return nil
	}
	if len(v.by) == 0 {
		return v.all
	}
	return v.group(r)
}

// group is pick for a view with by labels (kept apart so that pick inlines).
func (v *view) group(r *Runtime) *series {
	b := r.keyBuf[:0]
	for _, l := range v.by {
		b = append(append(b, r.groupValue(l)...), 0)
	}
	r.keyBuf = b
	return v.parts[string(b)]
}
