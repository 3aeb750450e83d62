package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/remedy-run/remedy/conditions"

	"gopkg.in/yaml.v3"
)

// checkShape validates combinations of keys within one policy.
func (d *decoder) checkShape(p *Policy, n *yaml.Node) {
	at := func(key string) *yaml.Node {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i]
			}
		}
		return n
	}
	hasSample := contains(p.On, SampleCode)
	if hasSample && len(p.On) > 1 {
		d.errorf(at("on"), "on: sample cannot be mixed with event codes; write two policies")
	}
	if hasSample && len(p.GroupBy) > 0 {
		d.errorf(at("group_by"), "group_by needs event labels; a sample policy has one instance")
	}
	if hasSample && len(p.ResolveOn) > 0 {
		d.errorf(at("resolve_on"), "resolve_on is for event policies; a sample policy resolves when its condition is false")
	}
	if p.Escalate != nil && p.Escalate.Severity.Rank() > 0 && p.Escalate.Severity.Rank() <= p.Severity.Rank() {
		d.warnf(at("escalate"), "escalate.severity %s is not above severity %s", p.Escalate.Severity, p.Severity)
	}
	if len(p.RetryOn) > 0 && len(p.Actions) == 0 {
		d.errorf(at("retry_on"), "retry_on hurries recovery attempts, but the policy has no actions")
	}
	if p.Rearm != nil && len(p.RetryOn) == 0 {
		d.errorf(at("rearm"), "rearm restarts an exhausted ladder on a retry_on event, but the policy has no retry_on")
	}
	if p.Escalate != nil && len(p.Actions) == 0 {
		d.errorf(at("escalate"), "escalate counts failed actions, but the policy has no actions")
	}
	if p.Breaker != nil && len(p.Actions) == 0 {
		d.errorf(at("breaker"), "breaker counts failed actions, but the policy has no actions")
	}
	for _, c := range p.ResolveOn {
		if contains(p.On, c) {
			d.errorf(at("resolve_on"), "resolve_on: %s is also in on:, so the policy would resolve as it fires", c)
		}
	}
}

// hashPolicy fingerprints what decides behaviour; a reload keeps the state of a policy
// whose fingerprint is unchanged.
func hashPolicy(p *Policy) string {
	def := struct {
		On, GroupBy, ResolveOn, RetryOn []string
		When                            string
		For, KeepFiring, Stable         int64
		Severity                        Severity
		Actions                         []Step
		Escalate                        *Escalate
		Breaker                         *Breaker
		Rearm                           *Rearm
		Alert                           Alert
		Labels                          map[string]string
		Mode                            Mode
		Enabled                         bool
		MaxInstances                    int
		Inhibits                        []Inhibit
	}{p.On, p.GroupBy, p.ResolveOn, p.RetryOn, p.When, int64(p.For), int64(p.KeepFiringFor), int64(p.StableFor),
		p.Severity, stripPos(p.Actions), p.Escalate, p.Breaker, p.Rearm, p.Alert, p.Labels, p.Mode, p.Enabled, p.MaxInstances, p.Inhibits}
	b, _ := json.Marshal(def)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func stripPos(steps []Step) []Step {
	out := make([]Step, len(steps))
	for i, s := range steps {
		s.Pos = Pos{}
		out[i] = s
	}
	return out
}

// checkNames: a name is defined once across the files.
func checkNames(ps []*Policy, diags *[]Diagnostic) {
	first := map[string]*Policy{}
	for _, p := range ps {
		if f, dup := first[p.Name]; dup {
			*diags = append(*diags, Diagnostic{Pos: p.Pos, Policy: p.Name,
				Message: fmt.Sprintf("duplicate name (first defined at %s)", f.Pos)})
			continue
		}
		first[p.Name] = p
	}
}

// checkFiring: every firing() names a policy of the set (the merged set: an operator's
// policy may name a default), and every inhibits: pattern some other policy.
func checkFiring(ps []*Policy, diags *[]Diagnostic) {
	checkInhibits(ps, diags)
	first := map[string]*Policy{}
	for _, p := range ps {
		first[p.Name] = p
	}
	for _, p := range ps {
		if p.Cond == nil {
			continue
		}
		for _, target := range p.Cond.Uses().Firing {
			if first[target] == nil {
				*diags = append(*diags, Diagnostic{Pos: p.WhenPos, Policy: p.Name,
					Message: fmt.Sprintf("when: firing(%q) names no policy", target)})
			}
		}
		// firing("p", "label"): p's instances carry only its group_by and labels; any
		// other label reads "" on them, so only an event without it would match.
		for _, s := range p.Cond.Sites() {
			t := first[s.Name]
			if s.Func != conditions.FuncFiring || t == nil {
				continue
			}
			for _, l := range s.Equal {
				if _, ok := t.Labels[l]; !ok && !slices.Contains(t.GroupBy, l) {
					*diags = append(*diags, Diagnostic{Pos: p.WhenPos, Policy: p.Name, Warning: true,
						Message: fmt.Sprintf("when: %s: the instances of %s have no label %q (not in its group_by or labels), so only an event without %s matches", s.Text, t.Name, l, l)})
				}
			}
		}
	}
}

// lint finds what is legal but probably wrong; `remedy check --strict` fails on these.
func lint(p *Policy, declared []DeclaredCode) []Diagnostic {
	var out []Diagnostic
	warn := func(pos Pos, format string, args ...any) {
		out = append(out, Diagnostic{Pos: pos, Policy: p.Name, Message: fmt.Sprintf(format, args...), Warning: true})
	}
	for _, code := range append(append(append([]string{}, p.On...), p.ResolveOn...), p.RetryOn...) {
		if code != SampleCode && !KnownCode(code) && !codeIn(declared, code) {
			warn(p.Pos, "unknown event code %q (see remedy codes; declare your own under codes:)", code)
		}
	}
	// Escalation and the breaker count failures across incidents of an instance (they
	// survive a resolution shorter than stable_for), so a threshold above one ladder's
	// attempts is legitimate and not warned about.
	for i, s := range p.Actions {
		if !s.timeoutSet {
			warn(s.Pos, "actions[%d] (%s) has no timeout; %v is used", i, s.Do, DefaultTimeout)
		}
		if p.Mode == DryRun && (i > 0 || s.Attempts > 1) {
			warn(s.Pos, "actions[%d] (%s): in dry_run only the first attempt is recorded (no result comes back), so this is never reached", i, s.Do)
		}
	}
	if p.Cond != nil {
		for _, k := range p.Cond.Uses().Keys {
			if p.IsSample() && strings.HasPrefix(k, "event.") {
				warn(p.WhenPos, "can never fire: a sample policy has no event, but when reads %s", k)
			}
			if name, ok := strings.CutPrefix(k, "metrics."); ok && !KnownMetric(name) {
				warn(p.WhenPos, "unknown metric %q (see remedy codes)", name)
			}
		}
		for m := range p.Cond.Uses().Metrics {
			if !KnownMetric(m) {
				warn(p.WhenPos, "unknown metric %q (see remedy codes)", m)
			}
		}
		lintHistory(p, declared, warn)
		if strings.TrimSpace(p.When) == "false" {
			warn(p.WhenPos, "can never fire: when is false")
		}
	}
	if !p.Enabled && p.Origin != OriginOff {
		warn(p.Pos, "disabled")
	}
	return dedupe(out)
}

func dedupe(ds []Diagnostic) []Diagnostic {
	seen := map[string]bool{}
	out := ds[:0]
	for _, d := range ds {
		if s := d.String(); !seen[s] {
			seen[s] = true
			out = append(out, d)
		}
	}
	return out
}

// lintHistory warns about a count() or since() that reads a label its code does not
// carry (the catalogue or the codes: declaration says which it does): with the policy's
// group_by, every event of such a code falls in the group where that label is "", so
// the instances named by the label never see one — the policy can never fire for them,
// or counts the wrong thing.
func lintHistory(p *Policy, declared []DeclaredCode, warn func(Pos, string, ...any)) {
	for _, s := range p.Cond.Sites() {
		if s.Func != conditions.FuncCount && s.Func != conditions.FuncSince {
			continue
		}
		carried, known := codeLabels(s.Name, declared)
		if !known {
			continue
		}
		for _, l := range s.By {
			if !slices.Contains(carried, l) {
				warn(p.WhenPos, "%s: %s events carry no label %s (their labels: %s), so no instance of group_by %v sees its own; count across instances with by (), or group by a label the code has",
					s.Text, s.Name, l, labelList(carried), p.GroupBy)
			}
		}
		for _, m := range s.Match {
			if !slices.Contains(carried, m.Label) {
				warn(p.WhenPos, "%s: %s events carry no label %s (their labels: %s), so the matcher %s reads \"\" on every one",
					s.Text, s.Name, m.Label, labelList(carried), m)
			}
		}
	}
}

// codeLabels returns the labels a catalogued or declared code carries; known is false
// for a code neither lists.
func codeLabels(code string, declared []DeclaredCode) (labels []string, known bool) {
	split := func(list string) []string {
		var out []string
		for _, l := range strings.Split(list, ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	for _, c := range Codes {
		if c.Code == code {
			return split(c.Labels), true
		}
	}
	for _, c := range declared {
		if c.Code == code {
			return split(c.Labels), true
		}
	}
	return nil, false
}

func labelList(ls []string) string {
	if len(ls) == 0 {
		return "none"
	}
	return strings.Join(ls, ", ")
}
