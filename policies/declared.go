package policies

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DeclaredCode is an event code a bot emits itself, declared in a policy file so that
// `remedy check --strict` knows it and `remedy codes` lists it:
//
//	codes:
//	  - code: PAYMENT_ERROR
//	    description: the payment provider refused a charge
//	    labels: [provider, status]
type DeclaredCode struct {
	CodeInfo
	Pos Pos
}

// codes decodes a top-level codes: list.
func (d *decoder) codes(n *yaml.Node) []DeclaredCode {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "codes must be a list of {code, description, labels}, got %s", kindName(n))
		return nil
	}
	var out []DeclaredCode
	for i, item := range n.Content {
		what := fmt.Sprintf("codes[%d]", i)
		c := DeclaredCode{CodeInfo: CodeInfo{Source: "declared in " + d.file}, Pos: d.pos(item)}
		var labels []string
		seen := d.fields(item, what, map[string]func(k, v *yaml.Node){
			"code": func(k, v *yaml.Node) {
				if s, ok := d.str(v, what+".code"); ok {
					c.Code = s
					if !codeRE.MatchString(s) || strings.HasSuffix(s, "*") {
						d.errorf(v, "%s.code: %q is not an event code (upper case, digits and _)", what, s)
					} else if KnownCode(s) {
						d.errorf(v, "%s.code: %s is a built-in code (see remedy codes); declare only your own", what, s)
					} else if owner := CodeOwner(s, nil); owner != "" && owner != "queue" {
						// The API refuses these prefixes from the bot (ingest), and tests and
						// replays would take the event for remedy's own: check would pass a
						// code that run never accepts.
						d.errorf(v, "%s.code: %s starts with a prefix of remedy's %s adapter, which the API refuses from other programs; give your code another prefix", what, s, owner)
					}
				}
			},
			"description": func(k, v *yaml.Node) { c.Description, _ = d.scalar(v, what+".description") },
			"labels": func(k, v *yaml.Node) {
				var items []*yaml.Node
				labels, items, _ = d.list(v, what+".labels")
				for j, l := range labels {
					if !labelRE.MatchString(l) {
						d.errorf(items[j], "%s.labels: %q is not a label name", what, l)
					}
				}
			},
		})
		if seen == nil {
			continue
		}
		if seen["code"] == nil {
			d.errorf(item, "%s: missing code:", what)
			continue
		}
		if seen["description"] == nil {
			d.errorf(item, "%s: %s needs a description (remedy codes shows it to the operator)", what, c.Code)
		}
		c.Labels = strings.Join(labels, ", ")
		out = append(out, c)
	}
	return out
}

// checkCodes: a code is declared once across the files.
func checkCodes(codes []DeclaredCode, diags *[]Diagnostic) {
	first := map[string]Pos{}
	for _, c := range codes {
		if at, dup := first[c.Code]; dup {
			*diags = append(*diags, Diagnostic{Pos: c.Pos, Message: fmt.Sprintf("codes: %s declared twice (first at %s)", c.Code, at)})
			continue
		}
		first[c.Code] = c.Pos
	}
}

// codeIn says whether code (or, for a glob, some code it matches) is declared.
func codeIn(declared []DeclaredCode, code string) bool {
	prefix, glob := strings.CutSuffix(code, "*")
	for _, c := range declared {
		if c.Code == code || (glob && strings.HasPrefix(c.Code, prefix)) {
			return true
		}
	}
	return false
}

// LabelNames are the label names an alert of this set can carry, sorted: those of the
// built-in and declared event codes, and the policies' labels and group_by.
func (s *Set) LabelNames() []string {
	seen := map[string]bool{}
	add := func(list string) {
		for _, l := range strings.Split(list, ",") {
			if l = strings.TrimSpace(l); l != "" {
				seen[l] = true
			}
		}
	}
	for _, c := range Codes {
		add(c.Labels)
	}
	for _, c := range s.Codes {
		add(c.Labels)
	}
	for _, p := range s.Policies {
		for k := range p.Labels {
			seen[k] = true
		}
		for _, g := range p.GroupBy {
			seen[g] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}
