package policies

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Rearm lets a retry_on event restart an exhausted ladder from its first step: the cause
// of the failures may have gone away by itself (WA_REACHABLE: the network is back).
// At most Count re-arms per instance within any Per window, so a signal that flaps cannot
// turn the ladder into an endless loop. Without it, retry_on only cuts a waiting backoff
// short and an exhausted ladder stays used up.
type Rearm struct {
	Count int
	Per   time.Duration
}

// rearm decodes `rearm: {count: N, per: DURATION}`.
func (d *decoder) rearm(n *yaml.Node) *Rearm {
	r := &Rearm{}
	var per *yaml.Node // the value, set once it decoded: zero is its one remaining error
	seen := d.fields(n, "rearm", map[string]func(k, v *yaml.Node){
		"count": func(k, v *yaml.Node) { r.Count, _ = d.integer(v, "rearm.count", 1) },
		"per": func(k, v *yaml.Node) {
			var ok bool
			if r.Per, ok = d.dur(v, "rearm.per"); ok {
				per = v
			}
		},
	})
	if seen == nil {
		return nil
	}
	if seen["count"] == nil || seen["per"] == nil {
		d.errorf(n, "rearm needs count and per")
	} else if per != nil && r.Per == 0 {
		d.errorf(per, "rearm.per must be positive")
	}
	return r
}
