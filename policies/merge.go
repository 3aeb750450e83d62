package policies

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Origin says where a policy of a merged set came from.
type Origin string

// Origins, as `remedy check` and the start log count them.
const (
	OriginDefault    Origin = "default"    // an embedded default, kept as shipped
	OriginOverridden Origin = "overridden" // the operator's policy of a default's name
	OriginOff        Origin = "off"        // a default switched off (name + enabled: false)
	OriginYours      Origin = "yours"      // the operator's own
)

// LoadMerged is what `remedy run`, `check`, `replay` and a reload load: the embedded
// defaults (unless noDefaults, the configuration's default_policies: false) extended by
// the operator's files, as Prometheus and Falco rule files extend one another. A policy
// of the same name as a default replaces it; an entry with only its name and
// `enabled: false` switches the default off; every other policy is added. The engine
// gets one set; every policy says its Origin. Empty paths count as none. On any error it
// returns Errors with every problem (the defaults have none).
func LoadMerged(noDefaults bool, paths ...string) (*Set, error) {
	var given []string
	for _, p := range paths {
		if p != "" {
			given = append(given, p)
		}
	}
	if noDefaults {
		return Load(given...)
	}
	files, contents, diags := readPaths(given)
	dfiles, dcontents, err := DefaultFiles()
	if err != nil {
		return nil, err
	}
	return buildFrom(&defaultSource{files: dfiles, contents: dcontents}, files, contents, diags)
}

// defaultSource is the embedded defaults a merged set starts from.
type defaultSource struct {
	files    []string
	contents map[string][]byte
}

// merge puts the operator's policies over the defaults: defaults first in their order,
// replaced or switched off in place, then the operator's new ones in file order.
func merge(defaults, ops []*Policy, diags *[]Diagnostic) []*Policy {
	index := map[string]int{}
	out := make([]*Policy, 0, len(defaults)+len(ops))
	for _, p := range defaults {
		cp := *p
		cp.Origin = OriginDefault
		index[p.Name] = len(out)
		out = append(out, &cp)
	}
	for _, p := range ops {
		i, isDefault := index[p.Name]
		switch {
		case p.switchOff && !isDefault:
			*diags = append(*diags, Diagnostic{Pos: p.Pos, Policy: p.Name,
				Message: "enabled: false alone switches off a default policy, but no default has this name (see remedy check with no path)"})
		case p.switchOff:
			cp := *out[i]
			cp.Enabled, cp.Origin, cp.Pos = false, OriginOff, p.Pos
			cp.Hash = hashPolicy(&cp)
			out[i] = &cp
		case isDefault:
			cp := *p
			cp.Origin = OriginOverridden
			out[i] = &cp
		default:
			cp := *p
			cp.Origin = OriginYours
			out = append(out, &cp)
		}
	}
	return out
}

// isSwitchOff says whether a policy entry has only a name and enabled: false.
func isSwitchOff(seen map[string]*yaml.Node, p *Policy) bool {
	if p.Enabled || seen["name"] == nil {
		return false
	}
	for k := range seen {
		if k != "name" && k != "enabled" {
			return false
		}
	}
	return true
}

// Summary says what a set is made of, for `remedy check` and the start log: "30
// policies: 27 defaults kept, 1 overridden (wa-reconnect), 1 off (disk-low), 1 yours
// (payment-errors)". A set loaded without the defaults counts its policies only.
func (s *Set) Summary() string {
	groups := map[Origin][]string{}
	for _, p := range s.Policies {
		o := p.Origin
		if o == OriginOverridden && !p.Enabled {
			o = OriginOff // a replacement written out in full with enabled: false runs no more than the short form
		}
		groups[o] = append(groups[o], p.Name)
	}
	var parts []string
	if n := len(groups[OriginDefault]); n > 0 || len(groups[OriginOverridden])+len(groups[OriginOff]) > 0 {
		parts = append(parts, fmt.Sprintf("%d defaults kept", n))
	}
	for _, o := range []Origin{OriginOverridden, OriginOff, OriginYours} {
		if names := groups[o]; len(names) > 0 {
			parts = append(parts, fmt.Sprintf("%d %s (%s)", len(names), o, strings.Join(names, ", ")))
		}
	}
	if len(groups[""]) > 0 {
		parts = append(parts, fmt.Sprintf("%d from %s, without the defaults", len(groups[""]), strings.Join(s.Files, ", ")))
	}
	if len(parts) == 0 {
		return "none"
	}
	codes := ""
	if len(s.Codes) > 0 {
		codes = fmt.Sprintf("; %d declared event code(s)", len(s.Codes))
	}
	return fmt.Sprintf("%d policies: %s%s", len(s.Policies), strings.Join(parts, ", "), codes)
}
