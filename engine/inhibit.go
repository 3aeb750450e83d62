package engine

import "github.com/remedy-run/remedy/policies"

// inhibitor is a policy whose firing instances hold back another policy's notifications
// (policies.Inhibit).
type inhibitor struct {
	src  *policyState
	rule policies.Inhibit
}

// buildInhibits indexes the set's inhibit rules by target and by source.
func (e *Engine) buildInhibits() {
	e.inhibitors, e.inhibits = map[string][]inhibitor{}, map[string][]*policyState{}
	for _, src := range e.pols {
		for _, r := range src.p.Inhibits {
			for _, t := range e.pols {
				if t != src && r.Matches(t.p.Name) {
					e.inhibitors[t.p.Name] = append(e.inhibitors[t.p.Name], inhibitor{src, r})
					e.inhibits[src.p.Name] = appendUnique(e.inhibits[src.p.Name], t)
				}
			}
		}
	}
}

// inhibitedBy names a policy that holds back the instance's notifications now: it has a
// firing instance whose Equal labels match the instance's ("" if none).
func (e *Engine) inhibitedBy(ps *policyState, inst *instance) string {
	for _, in := range e.inhibitors[ps.p.Name] {
		if in.src.firing == 0 || !in.src.p.Enabled {
			continue
		}
		if len(in.rule.Equal) == 0 {
			return in.src.p.Name
		}
		for _, key := range in.src.sortedKeys() {
			si := in.src.instances[key]
			if si.state != Firing {
				continue
			}
			same := true
			for _, l := range in.rule.Equal {
				same = same && si.labels[l] == inst.labels[l]
			}
			if same {
				return in.src.p.Name
			}
		}
	}
	return ""
}

// releaseInhibited notifies, now, every firing instance that src's rules held back and
// that nothing holds back any more — as Alertmanager does when an inhibiting alert
// resolves.
func (e *Engine) releaseInhibited(src string) {
	for _, t := range e.inhibits[src] {
		for _, key := range t.sortedKeys() {
			inst := t.instances[key]
			if inst.state != Firing || !inst.inhibited || e.inhibitedBy(t, inst) != "" {
				continue
			}
			e.notify(t, inst, inst.lastFiringState(), false, "no longer inhibited: "+src+" resolved")
		}
	}
}
