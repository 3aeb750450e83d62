package policies

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/remedy-run/remedy/conditions"
)

// decoder walks yaml.Node trees, collecting every error instead of stopping at the
// first, each with the position of the offending node.
type decoder struct {
	file   string
	policy string
	diags  *[]Diagnostic
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	*d.diags = append(*d.diags, Diagnostic{Pos: d.pos(n), Policy: d.policy, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) warnf(n *yaml.Node, format string, args ...any) {
	*d.diags = append(*d.diags, Diagnostic{Pos: d.pos(n), Policy: d.policy, Message: fmt.Sprintf(format, args...), Warning: true})
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!null":
		return "empty"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	}
	return "a string"
}

// fields walks a mapping, calling the handler for each known key; unknown and repeated
// keys are errors.
// An empty what means the policy itself, which the message already names.
func (d *decoder) fields(n *yaml.Node, what string, handlers map[string]func(key, val *yaml.Node)) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		if what == "" {
			d.errorf(n, "a policy must be a mapping, got %s", kindName(n))
		} else {
			d.errorf(n, "%s must be a mapping, got %s", what, kindName(n))
		}
		return nil
	}
	prefix := ""
	if what != "" {
		prefix = what + ": "
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, "%skey %q repeated (first at line %d)", prefix, k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		h, ok := handlers[k.Value]
		if !ok {
			d.errorf(k, "%sunknown key %q (known: %s)", prefix, k.Value, knownKeys(handlers))
			continue
		}
		h(k, v)
	}
	return seen
}

func knownKeys[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func (d *decoder) scalar(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, "%s must be a value, got %s", key, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.errorf(n, "%s must be a string, got %s", key, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) dur(n *yaml.Node, key string) (time.Duration, bool) {
	s, ok := d.scalar(n, key)
	if !ok {
		return 0, false
	}
	if s == "0" {
		return 0, true
	}
	v, err := conditions.ParseDuration(s)
	if err != nil {
		d.errorf(n, "%s: %v", key, err)
		return 0, false
	}
	if v < 0 {
		d.errorf(n, "%s: must not be negative", key)
		return 0, false
	}
	return v, true
}

func (d *decoder) integer(n *yaml.Node, key string, min int) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, "%s must be a whole number, got %s", key, kindName(n))
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		d.errorf(n, "%s: %q is not a whole number", key, n.Value)
		return 0, false
	}
	if v < min {
		d.errorf(n, "%s must be at least %d, got %d", key, min, v)
		return 0, false
	}
	return v, true
}

func (d *decoder) float(n *yaml.Node, key string) (float64, bool) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		d.errorf(n, "%s must be a number, got %s", key, kindName(n))
		return 0, false
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		d.errorf(n, "%s: %q is not a number", key, n.Value)
		return 0, false
	}
	return v, true
}

func (d *decoder) boolean(n *yaml.Node, key string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errorf(n, "%s must be true or false, got %s", key, kindName(n))
		return false, false
	}
	return n.Value == "true", true
}

func (d *decoder) list(n *yaml.Node, key string) ([]string, []*yaml.Node, bool) {
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			hint = fmt.Sprintf(", e.g. [%s]", n.Value)
		}
		d.errorf(n, "%s must be a list%s, got %s", key, hint, kindName(n))
		return nil, nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for _, item := range n.Content {
		s, good := d.str(item, key+" item")
		ok = ok && good
		out = append(out, s)
	}
	return out, n.Content, ok
}

func (d *decoder) strMap(n *yaml.Node, key string) (map[string]string, map[string]*yaml.Node, bool) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping, got %s", key, kindName(n))
		return nil, nil, false
	}
	out := map[string]string{}
	nodes := map[string]*yaml.Node{}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := out[k.Value]; dup {
			d.errorf(k, "%s: key %q repeated", key, k.Value)
			ok = false
			continue
		}
		s, good := d.scalar(v, key+"."+k.Value)
		ok = ok && good
		out[k.Value] = s
		nodes[k.Value] = v
	}
	return out, nodes, ok
}
