package policies

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/remedy-run/remedy/conditions"
)

// TestFile is a policy test file: which policies to load and the tests to run on them.
type TestFile struct {
	File        string
	PolicyFiles []string // as written, relative to the test file; "embedded:defaults" for the built-in set
	Timezone    string
	Tests       []TestCase
}

// TestCase is one scripted scenario.
type TestCase struct {
	Name  string
	Start time.Time
	// Until is how long the test runs from Start; zero means one hour after the last
	// input or expectation, so that retries and timeouts can play out.
	Until    time.Duration
	Inputs   []TestInput
	Outcomes map[string][]Outcome
	// Always holds the outcome for actions scripted with a single value, not a list.
	Always     map[string]Outcome
	Expect     []Expectation
	ExpectNone []Expectation
	Pos        Pos
}

// TestInput is an event or a sample at an offset, or repeated over a range.
type TestInput struct {
	At, Until, Every time.Duration // Until and Every are zero for a single input
	Event            *EventSpec
	Sample           map[string]float64
	Pos              Pos
}

// EventSpec is an event as written in a test or a JSON line.
type EventSpec struct {
	Code    string            `json:"code"`
	Source  string            `json:"source,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Message string            `json:"message,omitempty"`
	Value   float64           `json:"value,omitempty"`
}

// Outcome is a scripted result of one action attempt.
type Outcome struct {
	Result string        // ok, fail, timeout or none (no result is reported)
	After  time.Duration // when the result is reported, after the attempt (timeout: the step's timeout)
}

// Expectation matches decisions. Kind is action, alert or state.
type Expectation struct {
	HasAt    bool
	From, To time.Duration
	Kind     string
	Action   string
	Policy   string
	Instance string
	Severity Severity
	State    string
	Step     int
	Attempt  int
	Skipped  *bool
	Held     *bool // alerts: held (inhibited) rather than sent; nil matches only sent ones
	Params   map[string]string
	Count    int // exact number of matches; -1: not given
	AtLeast  int // -1: not given
	AtMost   int // -1: not given
	Pos      Pos
}

// Satisfied reports whether n matching decisions meet the expectation's count (at
// least one when no count is given).
func (x Expectation) Satisfied(n int) bool {
	switch {
	case x.Count >= 0:
		return n == x.Count
	case x.AtLeast >= 0 || x.AtMost >= 0:
		return (x.AtLeast < 0 || n >= x.AtLeast) && (x.AtMost < 0 || n <= x.AtMost)
	}
	return n > 0
}

// Describe is the expectation in words, for failure messages.
func (x Expectation) Describe() string {
	var b strings.Builder
	switch x.Kind {
	case "action":
		fmt.Fprintf(&b, "action %s", x.Action)
	case "alert":
		b.WriteString("alert")
		if x.State != "" {
			b.WriteString(" " + x.State)
		}
		if x.Severity != "" {
			b.WriteString(" " + string(x.Severity))
		}
	default:
		fmt.Fprintf(&b, "state %s", x.State)
	}
	if x.Policy != "" {
		fmt.Fprintf(&b, " by %s", x.Policy)
	}
	if x.Instance != "" {
		fmt.Fprintf(&b, "{%s}", x.Instance)
	}
	if x.Step > 0 {
		fmt.Fprintf(&b, " step %d", x.Step)
	}
	if x.Attempt > 0 {
		fmt.Fprintf(&b, " attempt %d", x.Attempt)
	}
	if len(x.Params) > 0 {
		fmt.Fprintf(&b, " with %v", x.Params)
	}
	if x.Held != nil {
		fmt.Fprintf(&b, " held=%v", *x.Held)
	}
	if x.Skipped != nil {
		fmt.Fprintf(&b, " skipped=%v", *x.Skipped)
	}
	if x.HasAt {
		if x.From == x.To {
			fmt.Fprintf(&b, " at %v", x.From)
		} else {
			fmt.Fprintf(&b, " at %v..%v", x.From, x.To)
		}
	}
	switch {
	case x.Count >= 0:
		fmt.Fprintf(&b, " (exactly %d)", x.Count)
	case x.AtLeast >= 0 && x.AtMost >= 0:
		fmt.Fprintf(&b, " (%d to %d times)", x.AtLeast, x.AtMost)
	case x.AtLeast >= 0:
		fmt.Fprintf(&b, " (at least %d)", x.AtLeast)
	case x.AtMost >= 0:
		fmt.Fprintf(&b, " (at most %d)", x.AtMost)
	}
	return b.String()
}

// DefaultTestStart is the start of a test without `start:` (a Monday, 09:00 UTC).
var DefaultTestStart = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// ParseTestFile reads a test file. Every problem is reported with its position.
func ParseTestFile(file string, data []byte) (*TestFile, error) {
	var diags []Diagnostic
	d := &decoder{file: file, diags: &diags}
	tf := &TestFile{File: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{yamlSyntaxDiag(file, data, err)}
	}
	if len(doc.Content) == 0 {
		return nil, Errors{{Pos: Pos{File: file, Line: 1, Col: 1}, Message: "empty test file"}}
	}
	root := doc.Content[0]
	seen := d.fields(root, "test file", map[string]func(k, v *yaml.Node){
		"policy_files": func(k, v *yaml.Node) { tf.PolicyFiles, _, _ = d.list(v, "policy_files") },
		"timezone": func(k, v *yaml.Node) {
			if s, ok := d.str(v, "timezone"); ok {
				if _, err := time.LoadLocation(s); err != nil {
					d.errorf(v, "timezone: %v", err)
				}
				tf.Timezone = s
			}
		},
		"tests": func(k, v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "tests must be a list, got %s", kindName(v))
				return
			}
			for _, item := range v.Content {
				tf.Tests = append(tf.Tests, d.testCase(item))
			}
		},
	})
	if seen != nil && seen["policy_files"] == nil {
		d.errorf(root, "missing policy_files: (the policies under test)")
	}
	if seen != nil && seen["tests"] == nil {
		d.errorf(root, "missing tests:")
	}
	if errCount(diags) > 0 {
		sortDiags(diags)
		return nil, Errors(diags)
	}
	return tf, nil
}

func (d *decoder) testCase(n *yaml.Node) TestCase {
	tc := TestCase{Start: DefaultTestStart, Outcomes: map[string][]Outcome{}, Always: map[string]Outcome{}, Pos: d.pos(n)}
	seen := d.fields(n, "test", map[string]func(k, v *yaml.Node){
		"name": func(k, v *yaml.Node) { tc.Name, _ = d.scalar(v, "name") },
		"start": func(k, v *yaml.Node) {
			if s, ok := d.scalar(v, "start"); ok {
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					d.errorf(v, "start: want a time like 2026-01-05T08:59:00Z, got %q", s)
				}
				tc.Start = t
			}
		},
		"input": func(k, v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "input must be a list, got %s", kindName(v))
				return
			}
			for _, item := range v.Content {
				if in, ok := d.testInput(item); ok {
					tc.Inputs = append(tc.Inputs, in)
				}
			}
		},
		"outcomes": func(k, v *yaml.Node) {
			if v.Kind != yaml.MappingNode {
				d.errorf(v, "outcomes must be a mapping of action name to a list, got %s", kindName(v))
				return
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				name := v.Content[i].Value
				if val := v.Content[i+1]; val.Kind == yaml.ScalarNode {
					// A single value: every attempt of this action has that outcome.
					o, err := parseOutcome(val.Value)
					if err != nil {
						d.errorf(val, "outcomes.%s: %v", name, err)
					}
					tc.Always[name] = o
					continue
				}
				list, items, ok := d.list(v.Content[i+1], "outcomes."+name)
				if !ok {
					continue
				}
				for j, s := range list {
					o, err := parseOutcome(s)
					if err != nil {
						d.errorf(items[j], "outcomes.%s: %v", name, err)
						continue
					}
					tc.Outcomes[name] = append(tc.Outcomes[name], o)
				}
			}
		},
		"until": func(k, v *yaml.Node) {
			if dur, ok := d.dur(v, "until"); ok {
				tc.Until = dur
			}
		},
		"expect":      func(k, v *yaml.Node) { tc.Expect = d.expectations(v, "expect") },
		"expect_none": func(k, v *yaml.Node) { tc.ExpectNone = d.expectations(v, "expect_none") },
	})
	if seen != nil && seen["name"] == nil {
		d.errorf(n, "test without a name")
	}
	return tc
}

func parseOutcome(s string) (Outcome, error) {
	res, after, hasAfter := strings.Cut(strings.TrimSpace(s), " after ")
	o := Outcome{Result: strings.TrimSpace(res)}
	switch o.Result {
	case "ok", "fail", "timeout", "none":
	default:
		return o, fmt.Errorf("%q: want ok, fail, timeout or none, optionally followed by 'after DURATION'", s)
	}
	if hasAfter {
		d, err := conditions.ParseDuration(after)
		if err != nil {
			return o, err
		}
		o.After = d
	}
	return o, nil
}

// parseAt reads "5s", "2m..20m" or "2m..20m every 30s".
func parseAt(s string) (from, to, every time.Duration, err error) {
	rng, ev, hasEvery := strings.Cut(s, " every ")
	a, b, isRange := strings.Cut(rng, "..")
	if from, err = conditions.ParseDuration(a); err != nil {
		return
	}
	to = from
	if isRange {
		if to, err = conditions.ParseDuration(b); err != nil {
			return
		}
		if to < from {
			err = fmt.Errorf("range %s ends before it starts", s)
			return
		}
	}
	if hasEvery {
		if !isRange {
			err = fmt.Errorf("every needs a range, e.g. 2m..20m every 30s")
			return
		}
		if every, err = conditions.ParseDuration(ev); err == nil && every <= 0 {
			err = fmt.Errorf("every must be positive")
		}
	}
	return
}

func (d *decoder) testInput(n *yaml.Node) (TestInput, bool) {
	in := TestInput{Pos: d.pos(n)}
	ok := true
	var atNode *yaml.Node
	seen := d.fields(n, "input", map[string]func(k, v *yaml.Node){
		"at": func(k, v *yaml.Node) {
			atNode = v
			s, good := d.scalar(v, "at")
			if !good {
				ok = false
				return
			}
			from, to, every, err := parseAt(s)
			if err != nil {
				d.errorf(v, "at: %v", err)
				ok = false
				return
			}
			in.At, in.Until, in.Every = from, to, every
		},
		"event": func(k, v *yaml.Node) { in.Event = d.eventSpec(v) },
		"sample": func(k, v *yaml.Node) {
			if v.Kind != yaml.MappingNode {
				d.errorf(v, "sample must be a mapping of metric to value, got %s", kindName(v))
				return
			}
			in.Sample = map[string]float64{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				if f, good := d.float(v.Content[i+1], "sample."+v.Content[i].Value); good {
					in.Sample[v.Content[i].Value] = f
				}
			}
		},
	})
	if seen == nil {
		return in, false
	}
	if atNode == nil {
		d.errorf(n, "input: missing at:")
		ok = false
	}
	if (in.Event == nil) == (in.Sample == nil) {
		d.errorf(n, "input: give exactly one of event: or sample:")
		ok = false
	}
	if in.Until > in.At && in.Every == 0 {
		d.errorf(atNode, "at: a range for an input needs 'every', e.g. 2m..20m every 30s")
		ok = false
	}
	return in, ok
}

func (d *decoder) eventSpec(n *yaml.Node) *EventSpec {
	ev := &EventSpec{}
	seen := d.fields(n, "event", map[string]func(k, v *yaml.Node){
		"code":    func(k, v *yaml.Node) { ev.Code, _ = d.str(v, "event.code") },
		"source":  func(k, v *yaml.Node) { ev.Source, _ = d.scalar(v, "event.source") },
		"labels":  func(k, v *yaml.Node) { ev.Labels, _, _ = d.strMap(v, "event.labels") },
		"message": func(k, v *yaml.Node) { ev.Message, _ = d.scalar(v, "event.message") },
		"value":   func(k, v *yaml.Node) { ev.Value, _ = d.float(v, "event.value") },
	})
	if seen != nil && seen["code"] == nil {
		d.errorf(n, "event: missing code:")
	}
	return ev
}

func (d *decoder) expectations(n *yaml.Node, key string) []Expectation {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s must be a list, got %s", key, kindName(n))
		return nil
	}
	var out []Expectation
	for _, item := range n.Content {
		x := Expectation{Count: -1, AtLeast: -1, AtMost: -1, Pos: d.pos(item)}
		kinds := 0
		seen := d.fields(item, key, map[string]func(k, v *yaml.Node){
			"at": func(k, v *yaml.Node) {
				s, ok := d.scalar(v, "at")
				if !ok {
					return
				}
				from, to, every, err := parseAt(s)
				if err == nil && every != 0 {
					err = fmt.Errorf("every is for inputs, not expectations")
				}
				if err != nil {
					d.errorf(v, "at: %v", err)
					return
				}
				x.HasAt, x.From, x.To = true, from, to
			},
			"action": func(k, v *yaml.Node) {
				kinds++
				x.Kind = "action"
				x.Action, _ = d.str(v, "action")
			},
			"alert": func(k, v *yaml.Node) {
				kinds++
				x.Kind = "alert"
				d.fields(v, "alert", map[string]func(k, v *yaml.Node){
					"policy":   func(k, v *yaml.Node) { x.Policy, _ = d.str(v, "alert.policy") },
					"severity": func(k, v *yaml.Node) { x.Severity, _ = d.severity(v, "alert.severity") },
					"held": func(k, v *yaml.Node) {
						if b, ok := d.boolean(v, "alert.held"); ok {
							x.Held = &b
						}
					},
					"state": func(k, v *yaml.Node) {
						if s, ok := d.str(v, "alert.state"); ok {
							if s != "firing" && s != "escalated" && s != "resolved" {
								d.errorf(v, "alert.state must be firing, escalated or resolved, got %q", s)
							}
							x.State = s
						}
					},
				})
			},
			"state": func(k, v *yaml.Node) {
				kinds++
				x.Kind = "state"
				x.State, _ = d.str(v, "state")
			},
			"policy":   func(k, v *yaml.Node) { x.Policy, _ = d.str(v, "policy") },
			"instance": func(k, v *yaml.Node) { x.Instance, _ = d.scalar(v, "instance") },
			"step":     func(k, v *yaml.Node) { x.Step, _ = d.integer(v, "step", 1) },
			"attempt":  func(k, v *yaml.Node) { x.Attempt, _ = d.integer(v, "attempt", 1) },
			"count":    func(k, v *yaml.Node) { x.Count, _ = d.integer(v, "count", 0) },
			"at_least": func(k, v *yaml.Node) { x.AtLeast, _ = d.integer(v, "at_least", 0) },
			"at_most":  func(k, v *yaml.Node) { x.AtMost, _ = d.integer(v, "at_most", 0) },
			"skipped": func(k, v *yaml.Node) {
				if b, ok := d.boolean(v, "skipped"); ok {
					x.Skipped = &b
				}
			},
			"params": func(k, v *yaml.Node) { x.Params, _, _ = d.strMap(v, "params") },
		})
		if seen == nil {
			continue
		}
		if kinds != 1 {
			d.errorf(item, "%s: give exactly one of action:, alert: or state:", key)
			continue
		}
		if x.Count >= 0 && (x.AtLeast >= 0 || x.AtMost >= 0) {
			d.errorf(item, "%s: count cannot be combined with at_least or at_most", key)
		}
		out = append(out, x)
	}
	return out
}
