package policies

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Inhibit is one rule of a policy's `inhibits:`: while the policy has a firing
// instance, notifications of the Policies it names are held back — for the target
// instances whose Equal labels have the same values as the firing one's (all of them
// when Equal is empty). A policy never inhibits itself. This is Alertmanager's
// inhibit_rules written where the cause is defined: a logged-out WhatsApp explains the
// reconnect and delivery alerts that follow it.
type Inhibit struct {
	Policies []string // names, or prefixes ending in *
	Equal    []string // label names
	Pos      Pos      `json:"-"`
}

// Matches reports whether the rule names the policy.
func (r Inhibit) Matches(policy string) bool {
	for _, pat := range r.Policies {
		if p, ok := strings.CutSuffix(pat, "*"); ok && strings.HasPrefix(policy, p) || pat == policy {
			return true
		}
	}
	return false
}

var policyPatternRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*\*?$|^\*$`)

// inhibits decodes `inhibits:`, a list of {policies: [...], equal: [...]}.
func (d *decoder) inhibits(n *yaml.Node) []Inhibit {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "inhibits must be a list of {policies: [...], equal: [...]}, got %s", kindName(n))
		return nil
	}
	var out []Inhibit
	for i, item := range n.Content {
		what := fmt.Sprintf("inhibits[%d]", i)
		r := Inhibit{Pos: d.pos(item)}
		seen := d.fields(item, what, map[string]func(k, v *yaml.Node){
			"policies": func(k, v *yaml.Node) {
				var items []*yaml.Node
				r.Policies, items, _ = d.list(v, what+".policies")
				for j, pat := range r.Policies {
					if !policyPatternRE.MatchString(pat) {
						d.errorf(items[j], "%s.policies: %q is not a policy name or a prefix ending in *", what, pat)
					}
				}
			},
			"equal": func(k, v *yaml.Node) {
				var items []*yaml.Node
				r.Equal, items, _ = d.list(v, what+".equal")
				for j, l := range r.Equal {
					if !labelRE.MatchString(l) {
						d.errorf(items[j], "%s.equal: %q is not a label name", what, l)
					}
				}
			},
		})
		if seen == nil {
			continue
		}
		if len(r.Policies) == 0 {
			d.errorf(item, "%s: policies: must name at least one policy", what)
			continue
		}
		out = append(out, r)
	}
	return out
}

// checkInhibits warns about inhibit rules that name no policy of the set.
func checkInhibits(ps []*Policy, diags *[]Diagnostic) {
	for _, p := range ps {
		for _, r := range p.Inhibits {
			for _, pat := range r.Policies {
				one := Inhibit{Policies: []string{pat}}
				found := false
				for _, q := range ps {
					found = found || (q != p && one.Matches(q.Name))
				}
				if !found {
					*diags = append(*diags, Diagnostic{Pos: r.Pos, Policy: p.Name, Warning: true,
						Message: fmt.Sprintf("inhibits: %q names no other policy", pat)})
				}
			}
		}
	}
}
