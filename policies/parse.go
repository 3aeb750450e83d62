package policies

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/remedy-run/remedy/conditions"
	"github.com/remedy-run/remedy/internal/yamlerr"
)

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	codeRE  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*\*?$`)
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Parse reads one policy file's content. file names it in positions. It returns the
// policies that parsed and every problem found (errors and warnings); a file with any
// error must not be used.
func Parse(file string, data []byte) ([]*Policy, []Diagnostic) {
	ps, _, diags := parseFile(file, data)
	return ps, diags
}

// parseFile is Parse that also returns the event codes the file declares.
func parseFile(file string, data []byte) ([]*Policy, []DeclaredCode, []Diagnostic) {
	var diags []Diagnostic
	d := &decoder{file: file, diags: &diags}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		diags = append(diags, yamlSyntaxDiag(file, data, err))
		return nil, nil, diags
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		diags = append(diags, Diagnostic{Pos: Pos{File: file, Line: 1, Col: 1}, Message: "empty file: expected a top-level policies: list"})
		return nil, nil, diags
	}
	root := doc.Content[0]
	var list *yaml.Node
	var codes []DeclaredCode
	seen := d.fields(root, "file", map[string]func(k, v *yaml.Node){
		"policies": func(k, v *yaml.Node) { list = v },
		"codes":    func(k, v *yaml.Node) { codes = d.codes(v) },
	})
	if root.Kind == yaml.MappingNode && list == nil && seen != nil && seen["codes"] == nil {
		d.errorf(root, "missing top-level policies: list")
	}
	if list == nil {
		return nil, codes, diags
	}
	if list.Kind != yaml.SequenceNode {
		d.errorf(list, "policies must be a list, got %s", kindName(list))
		return nil, codes, diags
	}
	var out []*Policy
	for _, item := range list.Content {
		if p := parsePolicy(d, data, item); p != nil {
			out = append(out, p)
		}
	}
	return out, codes, diags
}

func yamlSyntaxDiag(file string, data []byte, err error) Diagnostic {
	line, col, msg := yamlerr.Locate(data, err)
	return Diagnostic{Pos: Pos{File: file, Line: line, Col: col}, Message: "invalid YAML: " + msg}
}

func parsePolicy(d0 *decoder, src []byte, n *yaml.Node) *Policy {
	p := &Policy{Severity: Warning, Mode: Enforce, Enabled: true, Pos: d0.pos(n),
		Alert: Alert{NotifyOn: DefaultNotifyOn, RateLimit: DefaultRateLimit, Flapping: DefaultFlapping}}
	d := &decoder{file: d0.file, diags: d0.diags}
	// Name first, so every other message can say which policy it is about.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
				d.policy = n.Content[i+1].Value
			}
		}
	}
	before := errCount(*d.diags)
	var whenNode, onNode *yaml.Node
	var onItems []*yaml.Node
	seen := d.fields(n, "", map[string]func(k, v *yaml.Node){
		"name": func(k, v *yaml.Node) {
			if s, ok := d.str(v, "name"); ok {
				if !nameRE.MatchString(s) {
					d.errorf(v, "name %q: use lower case letters, digits, '.', '_' and '-', starting with a letter or digit", s)
				}
				p.Name = s
			}
		},
		"description": func(k, v *yaml.Node) { p.Description, _ = d.scalar(v, "description") },
		"on": func(k, v *yaml.Node) {
			onNode = v
			p.On, onItems, _ = d.list(v, "on")
		},
		"when": func(k, v *yaml.Node) {
			if s, ok := d.scalar(v, "when"); ok {
				p.When, whenNode = s, v
				p.WhenPos = d.pos(v)
			}
		},
		"for":             func(k, v *yaml.Node) { p.For, _ = d.dur(v, "for") },
		"keep_firing_for": func(k, v *yaml.Node) { p.KeepFiringFor, _ = d.dur(v, "keep_firing_for") },
		"stable_for":      func(k, v *yaml.Node) { p.StableFor, _ = d.dur(v, "stable_for") },
		"group_by": func(k, v *yaml.Node) {
			var items []*yaml.Node
			p.GroupBy, items, _ = d.list(v, "group_by")
			for i, l := range p.GroupBy {
				if l != "" && !labelRE.MatchString(l) {
					d.errorf(items[i], "group_by: %q is not a label name", l)
				}
			}
		},
		"max_instances": func(k, v *yaml.Node) { p.MaxInstances, _ = d.integer(v, "max_instances", 1) },
		"severity":      func(k, v *yaml.Node) { p.Severity, _ = d.severity(v, "severity") },
		"resolve_on": func(k, v *yaml.Node) {
			var items []*yaml.Node
			p.ResolveOn, items, _ = d.list(v, "resolve_on")
			d.checkCodes(p.ResolveOn, items, "resolve_on", false)
		},
		"retry_on": func(k, v *yaml.Node) {
			var items []*yaml.Node
			p.RetryOn, items, _ = d.list(v, "retry_on")
			d.checkCodes(p.RetryOn, items, "retry_on", false)
		},
		"rearm":       func(k, v *yaml.Node) { p.Rearm = d.rearm(v) },
		"actions":     func(k, v *yaml.Node) { p.Actions = d.steps(v) },
		"escalate":    func(k, v *yaml.Node) { p.Escalate = d.escalate(v) },
		"breaker":     func(k, v *yaml.Node) { p.Breaker = d.breaker(v) },
		"alert":       func(k, v *yaml.Node) { d.alert(v, &p.Alert) },
		"inhibits":    func(k, v *yaml.Node) { p.Inhibits = d.inhibits(v) },
		"labels":      func(k, v *yaml.Node) { p.Labels = d.labels(v) },
		"annotations": func(k, v *yaml.Node) { p.Annotations, p.annotations = d.templates(v, "annotations") },
		"mode": func(k, v *yaml.Node) {
			if s, ok := d.str(v, "mode"); ok {
				switch Mode(s) {
				case Enforce, DryRun:
					p.Mode = Mode(s)
				default:
					d.errorf(v, "mode must be enforce or dry_run, got %q", s)
				}
			}
		},
		"enabled": func(k, v *yaml.Node) { p.Enabled, _ = d.boolean(v, "enabled") },
	})
	if seen == nil {
		return nil
	}
	if isSwitchOff(seen, p) {
		if errCount(*d.diags) > before {
			return nil
		}
		p.switchOff = true
		return p
	}
	if _, ok := seen["name"]; !ok {
		d.errorf(n, "policy without a name")
	}
	if _, ok := seen["on"]; !ok {
		d.errorf(n, "missing on: (event codes, or [sample])")
	} else if onNode != nil && onNode.Kind == yaml.SequenceNode {
		if len(p.On) == 0 {
			d.errorf(onNode, "on: must name at least one event code or sample")
		}
		d.checkCodes(p.On, onItems, "on", true)
	}
	if whenNode != nil {
		c, err := conditions.Compile(p.When, conditions.GroupBy(p.GroupBy))
		if err != nil {
			d.exprError(src, whenNode, err)
		} else {
			p.Cond = c
		}
	}
	d.checkShape(p, n)
	if errCount(*d.diags) > before {
		return nil
	}
	if p.MaxInstances == 0 && len(p.GroupBy) > 0 {
		p.MaxInstances = DefaultMaxInstances
	}
	p.Hash = hashPolicy(p)
	return p
}

func errCount(ds []Diagnostic) int {
	n := 0
	for _, d := range ds {
		if !d.Warning {
			n++
		}
	}
	return n
}

func (d *decoder) severity(n *yaml.Node, key string) (Severity, bool) {
	s, ok := d.str(n, key)
	if !ok {
		return "", false
	}
	if Severity(s).Rank() == 0 {
		d.errorf(n, "%s must be info, warning, error or critical, got %q", key, s)
		return "", false
	}
	return Severity(s), true
}

func (d *decoder) checkCodes(codes []string, nodes []*yaml.Node, key string, allowSample bool) {
	for i, c := range codes {
		if c == SampleCode {
			if !allowSample {
				d.errorf(nodes[i], "%s: sample is not an event code", key)
			}
			continue
		}
		if !codeRE.MatchString(c) {
			d.errorf(nodes[i], "%s: %q is not an event code or glob (upper case, digits and _, with an optional trailing *)", key, c)
		}
	}
}

// exprError maps a position inside the `when` text to the file.
func (d *decoder) exprError(src []byte, n *yaml.Node, err error) {
	var ce *conditions.Error
	if !errors.As(err, &ce) {
		d.errorf(n, "when: %v", err)
		return
	}
	pos := d.pos(n)
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The block's indentation is that of its first line; expr's columns count from it.
		pos.Line = n.Line + ce.Line
		pos.Col = indentOf(src, n.Line+1) + ce.Column + 1
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if ce.Line == 1 {
			pos.Col = n.Column + 1 + ce.Column
		} else {
			pos.Line = n.Line + ce.Line - 1
		}
	default:
		if ce.Line == 1 {
			pos.Col = n.Column + ce.Column
		} else {
			pos.Line = n.Line + ce.Line - 1
		}
	}
	*d.diags = append(*d.diags, Diagnostic{Pos: pos, Policy: d.policy, Message: "when: " + ce.Message, Snippet: ce.Snippet})
}

func indentOf(src []byte, line int) int {
	lines := bytes.Split(src, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 0
	}
	l := lines[line-1]
	return len(l) - len(bytes.TrimLeft(l, " "))
}

func (d *decoder) steps(n *yaml.Node) []Step {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "actions must be a list of steps, got %s", kindName(n))
		return nil
	}
	var out []Step
	for i, item := range n.Content {
		s := Step{Attempts: DefaultAttempts, Timeout: DefaultTimeout, Backoff: DefaultBackoff, Pos: d.pos(item)}
		what := fmt.Sprintf("actions[%d]", i)
		var withNode *yaml.Node
		seen := d.fields(item, what, map[string]func(k, v *yaml.Node){
			"do": func(k, v *yaml.Node) { s.Do, _ = d.str(v, what+".do") },
			"with": func(k, v *yaml.Node) {
				withNode = v
				s.With, _, _ = d.strMap(v, what+".with")
			},
			"timeout": func(k, v *yaml.Node) {
				if t, ok := d.dur(v, what+".timeout"); ok {
					if t == 0 {
						d.errorf(v, "%s.timeout must be positive", what)
					}
					s.Timeout, s.timeoutSet = t, true
				}
			},
			"attempts": func(k, v *yaml.Node) { s.Attempts, _ = d.integer(v, what+".attempts", 1) },
			"backoff":  func(k, v *yaml.Node) { d.backoff(v, what+".backoff", &s.Backoff) },
		})
		if seen == nil {
			continue
		}
		if _, ok := seen["do"]; !ok {
			d.errorf(item, "%s: missing do: (the action name)", what)
			continue
		}
		spec, ok := LookupAction(s.Do)
		if !ok {
			d.errorf(seen["do"], "%s: unknown action %q (known: %s)", what, s.Do, actionNames())
			continue
		}
		s.params = d.actionParams(spec, s.With, withNode, item, what)
		out = append(out, s)
	}
	return out
}

func actionNames() string {
	var names []string
	for _, s := range ActionSpecs() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func (d *decoder) actionParams(spec ActionSpec, with map[string]string, withNode, stepNode *yaml.Node, what string) map[string]*template.Template {
	tmpls := map[string]*template.Template{}
	nodes := map[string]*yaml.Node{}
	if withNode != nil && withNode.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(withNode.Content); i += 2 {
			nodes[withNode.Content[i].Value] = withNode.Content[i]
		}
	}
	for name, val := range with {
		ps, ok := spec.Param(name)
		if !ok {
			known := spec.ParamNames()
			if known == "" {
				known = "none"
			}
			d.errorf(nodes[name], "%s: %s has no parameter %q (known: %s)", what, spec.Name, name, known)
			continue
		}
		if strings.Contains(val, "{{") {
			if ps.Literal {
				d.errorf(nodes[name], "%s.with.%s: must be written out in the policy file; templates could put event data into it", what, name)
				continue
			}
			t, err := newTemplate(name, val)
			if err != nil {
				d.errorf(nodes[name], "%s.with.%s: %v", what, name, err)
				continue
			}
			tmpls[name] = t
			if spec.Name == "WEBHOOK" && name == "url" {
				d.warnf(nodes[name], "%s.with.url: a template: remedy posts it only to a host listed in webhook_hosts (remedy.yaml), and refuses any other before sending", what)
			}
			continue
		}
		if ps.Check != nil {
			if err := ps.Check(val); err != nil {
				d.errorf(nodes[name], "%s.with.%s: %v", what, name, err)
			}
		}
	}
	for _, ps := range spec.Params {
		if _, ok := with[ps.Name]; ps.Required && !ok {
			at := stepNode
			if withNode != nil {
				at = withNode
			}
			d.errorf(at, "%s: %s needs with.%s (%s)", what, spec.Name, ps.Name, ps.Description)
		}
	}
	return tmpls
}

var templateErrPrefix = regexp.MustCompile(`^template: [^:]*:\d+:\s*`)

func newTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("bad template: %s", templateErrPrefix.ReplaceAllString(err.Error(), ""))
	}
	return t, nil
}

func (d *decoder) backoff(n *yaml.Node, what string, b *Backoff) {
	var initialNode *yaml.Node
	d.fields(n, what, map[string]func(k, v *yaml.Node){
		"initial": func(k, v *yaml.Node) {
			initialNode = v
			if t, ok := d.dur(v, what+".initial"); ok {
				b.Initial = t
			}
		},
		"max": func(k, v *yaml.Node) { b.Max, _ = d.dur(v, what+".max") },
		"multiplier": func(k, v *yaml.Node) {
			if m, ok := d.float(v, what+".multiplier"); ok {
				if m < 1 {
					d.errorf(v, "%s.multiplier must be at least 1, got %v", what, m)
				}
				b.Multiplier = m
			}
		},
		"jitter": func(k, v *yaml.Node) {
			if s, ok := d.str(v, what+".jitter"); ok {
				switch Jitter(s) {
				case JitterFull, JitterEqual, JitterNone:
					b.Jitter = Jitter(s)
				default:
					d.errorf(v, "%s.jitter must be full, equal or none, got %q", what, s)
				}
			}
		},
	})
	if b.Max < b.Initial {
		at := n
		if initialNode != nil {
			at = initialNode
		}
		d.errorf(at, "%s: max (%v) is less than initial (%v)", what, b.Max, b.Initial)
	}
}

func (d *decoder) escalate(n *yaml.Node) *Escalate {
	e := &Escalate{AfterFailures: 1, Severity: Critical}
	d.fields(n, "escalate", map[string]func(k, v *yaml.Node){
		"after_failures": func(k, v *yaml.Node) { e.AfterFailures, _ = d.integer(v, "escalate.after_failures", 1) },
		"severity":       func(k, v *yaml.Node) { e.Severity, _ = d.severity(v, "escalate.severity") },
	})
	return e
}

func (d *decoder) breaker(n *yaml.Node) *Breaker {
	b := &Breaker{}
	seen := d.fields(n, "breaker", map[string]func(k, v *yaml.Node){
		"failures": func(k, v *yaml.Node) { b.Failures, _ = d.integer(v, "breaker.failures", 1) },
		"within":   func(k, v *yaml.Node) { b.Within, _ = d.dur(v, "breaker.within") },
		"open_for": func(k, v *yaml.Node) { b.OpenFor, _ = d.dur(v, "breaker.open_for") },
	})
	for _, key := range []string{"failures", "within", "open_for"} {
		if _, ok := seen[key]; seen != nil && !ok {
			d.errorf(n, "breaker: missing %s", key)
		}
	}
	return b
}

func (d *decoder) alert(n *yaml.Node, a *Alert) {
	d.fields(n, "alert", map[string]func(k, v *yaml.Node){
		"notify_on": func(k, v *yaml.Node) {
			states, items, ok := d.list(v, "alert.notify_on")
			if !ok {
				return
			}
			for i, s := range states {
				if s != "firing" && s != "escalated" && s != "resolved" {
					d.errorf(items[i], "alert.notify_on: %q is not firing, escalated or resolved", s)
				}
			}
			a.NotifyOn = states
		},
		"rate_limit": func(k, v *yaml.Node) {
			rl := RateLimit{}
			seen := d.fields(v, "alert.rate_limit", map[string]func(k, v *yaml.Node){
				"count": func(k, v *yaml.Node) { rl.Count, _ = d.integer(v, "alert.rate_limit.count", 1) },
				"per":   func(k, v *yaml.Node) { rl.Per, _ = d.dur(v, "alert.rate_limit.per") },
			})
			if seen != nil && (seen["count"] == nil || seen["per"] == nil) {
				d.errorf(v, "alert.rate_limit needs count and per")
			} else if seen != nil && rl.Per == 0 {
				d.errorf(seen["per"], "alert.rate_limit.per must be positive")
			}
			a.RateLimit = rl
		},
		"repeat":   func(k, v *yaml.Node) { a.Repeat, _ = d.dur(v, "alert.repeat") },
		"flapping": func(k, v *yaml.Node) { d.flapping(v, &a.Flapping) },
		"channels": func(k, v *yaml.Node) {
			chans, items, ok := d.list(v, "alert.channels")
			if !ok {
				return
			}
			for i, c := range chans {
				if !contains(knownChannels, c) {
					d.errorf(items[i], "alert.channels: unknown channel %q (known: %s)", c, strings.Join(knownChannels, ", "))
				}
			}
			a.Channels = chans
		},
	})
}

func (d *decoder) flapping(n *yaml.Node, f *Flapping) {
	seen := d.fields(n, "alert.flapping", map[string]func(k, v *yaml.Node){
		"window":    func(k, v *yaml.Node) { f.Window, _ = d.dur(v, "alert.flapping.window") },
		"threshold": func(k, v *yaml.Node) { f.Threshold, _ = d.integer(v, "alert.flapping.threshold", 0) },
		"settle":    func(k, v *yaml.Node) { f.Settle, _ = d.dur(v, "alert.flapping.settle") },
	})
	if w := seen["window"]; w != nil && f.Window <= 0 {
		d.errorf(w, "alert.flapping.window must be positive")
	}
	if f.Threshold == 1 {
		d.errorf(seen["threshold"], "alert.flapping.threshold must be 0 (off) or at least 2 state changes")
	}
}

func (d *decoder) labels(n *yaml.Node) map[string]string {
	m, nodes, _ := d.strMap(n, "labels")
	for k := range m {
		if !labelRE.MatchString(k) {
			d.errorf(nodes[k], "labels: %q is not a label name", k)
		}
	}
	return m
}

func (d *decoder) templates(n *yaml.Node, key string) (map[string]string, map[string]*template.Template) {
	m, nodes, _ := d.strMap(n, key)
	tmpls := map[string]*template.Template{}
	for k, v := range m {
		t, err := newTemplate(k, v)
		if err != nil {
			d.errorf(nodes[k], "%s.%s: %v", key, k, err)
			continue
		}
		tmpls[k] = t
	}
	return m, tmpls
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
