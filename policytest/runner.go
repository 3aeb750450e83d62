package policytest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

// EmbeddedDefaults in policy_files names the built-in default policies.
const EmbeddedDefaults = "embedded:defaults"

// DefaultSettle is how long a test runs on after its last input or expectation.
const DefaultSettle = time.Hour

// Options control a test run.
type Options struct {
	Run     *regexp.Regexp // only tests whose name matches
	Seed    uint64
	Verbose bool // print every test's timeline
}

// CaseResult is the outcome of one test.
type CaseResult struct {
	File     string
	Name     string
	Pos      policies.Pos
	Failures []string
	Timeline []engine.Decision
	Start    time.Time
	Duration time.Duration
}

// Passed reports whether every expectation held.
func (r CaseResult) Passed() bool { return len(r.Failures) == 0 }

// LoadTestFile reads a test file and the policies it names.
func LoadTestFile(path string) (*policies.TestFile, *policies.Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	tf, err := policies.ParseTestFile(path, data)
	if err != nil {
		return nil, nil, err
	}
	set, err := loadPolicyFiles(filepath.Dir(path), tf.PolicyFiles)
	if err != nil {
		return nil, nil, err
	}
	return tf, set, nil
}

func loadPolicyFiles(dir string, patterns []string) (*policies.Set, error) {
	var paths []string
	for _, p := range patterns {
		if p == EmbeddedDefaults {
			if len(patterns) > 1 {
				return nil, fmt.Errorf("policy_files: %s cannot be combined with files", EmbeddedDefaults)
			}
			return policies.Defaults()
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("policy_files: %v", err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("policy_files: %s matches no file", p)
		}
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && (st.IsDir() || policies.IsPolicyFile(filepath.Base(m))) {
				paths = append(paths, m)
			}
		}
	}
	return policies.Load(paths...)
}

// RunFile runs every selected test of a loaded test file.
func RunFile(tf *policies.TestFile, set *policies.Set, opts Options) []CaseResult {
	var loc *time.Location
	if tf.Timezone != "" {
		loc, _ = time.LoadLocation(tf.Timezone)
	}
	var out []CaseResult
	for _, tc := range tf.Tests {
		if opts.Run != nil && !opts.Run.MatchString(tc.Name) {
			continue
		}
		began := time.Now()
		r := runCase(tf.File, tc, set, loc, opts.Seed)
		r.Duration = time.Since(began)
		out = append(out, r)
	}
	return out
}

type evalNote struct {
	at     time.Time
	result bool
	text   string
}

func runCase(file string, tc policies.TestCase, set *policies.Set, loc *time.Location, seed uint64) CaseResult {
	res := CaseResult{File: file, Name: tc.Name, Pos: tc.Pos, Start: tc.Start}
	evals := map[string][]evalNote{}
	e := engine.New(set, engine.Options{Seed: seed, Location: loc, Trace: func(tr engine.Trace) {
		var vals []string
		for _, v := range tr.Values {
			vals = append(vals, v.String())
		}
		text := fmt.Sprintf("%s: when=%v", tr.Input, tr.Result)
		if tr.Err != nil {
			text += " (error: " + tr.Err.Error() + ")"
		}
		if len(vals) > 0 {
			text += " where " + strings.Join(vals, ", ")
		}
		evals[tr.Policy] = append(evals[tr.Policy], evalNote{tr.Time, tr.Result, text})
	}})
	outcomes := map[string][]policies.Outcome{}
	for k, v := range tc.Outcomes {
		outcomes[k] = append([]policies.Outcome(nil), v...)
	}
	inputs, last := expandInputs(tc)
	for _, x := range append(append([]policies.Expectation{}, tc.Expect...), tc.ExpectNone...) {
		if x.HasAt {
			last = max(last, x.To)
		}
	}
	end := tc.Start.Add(last + DefaultSettle)
	if tc.Until > 0 {
		end = tc.Start.Add(tc.Until)
	}
	sim := &Simulator{Engine: e, Outcomes: outcomes, Always: tc.Always}
	sim.Run(inputs, end)
	res.Timeline = sim.Timeline
	for _, x := range tc.Expect {
		matches := matching(sim.Timeline, x, tc.Start)
		if !x.Satisfied(len(matches)) {
			res.Failures = append(res.Failures, explainMissing(x, set, sim.Timeline, tc.Start, len(matches), evals))
		}
	}
	for _, x := range tc.ExpectNone {
		if matches := matching(sim.Timeline, x, tc.Start); len(matches) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "%s: expected no %s, but got:", x.Pos, x.Describe())
			for _, d := range matches {
				fmt.Fprintf(&b, "\n      %s", formatDecision(d, tc.Start))
			}
			res.Failures = append(res.Failures, b.String())
		}
	}
	return res
}

// expandInputs turns the test's inputs into engine inputs in time order, and returns the
// offset of the last one.
func expandInputs(tc policies.TestCase) ([]engine.Input, time.Duration) {
	type timed struct {
		at  time.Duration
		ord int
		in  engine.Input
	}
	var all []timed
	var last time.Duration
	for i, in := range tc.Inputs {
		for at := in.At; at <= in.Until || at == in.At; at += max(in.Every, 1) {
			t := tc.Start.Add(at)
			var x engine.Input
			if in.Event != nil {
				x = engine.Event{Time: t, Code: in.Event.Code, Source: policies.SourceOf(in.Event.Code, in.Event.Source, in.Event.Labels), Labels: in.Event.Labels,
					Message: in.Event.Message, Value: in.Event.Value}
			} else {
				x = engine.Sample{Time: t, Values: in.Sample}
			}
			all = append(all, timed{at, i, x})
			last = max(last, at)
			if in.Every == 0 {
				break
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at < all[j].at })
	out := make([]engine.Input, len(all))
	for i, t := range all {
		out[i] = t.in
	}
	return out, last
}

func matching(timeline []engine.Decision, x policies.Expectation, start time.Time) []engine.Decision {
	var out []engine.Decision
	for _, d := range timeline {
		if matches(d, x, start) {
			out = append(out, d)
		}
	}
	return out
}

func matches(d engine.Decision, x policies.Expectation, start time.Time) bool {
	if x.HasAt {
		off := d.Time.Sub(start)
		if off < x.From || off > x.To {
			return false
		}
	}
	if x.Policy != "" && d.Policy != x.Policy {
		return false
	}
	if x.Instance != "" && d.Instance != x.Instance {
		return false
	}
	switch x.Kind {
	case "action":
		if d.Kind != engine.KindAction || d.Action.Do != x.Action {
			return false
		}
		if x.Step > 0 && d.Action.Step != x.Step || x.Attempt > 0 && d.Action.Attempt != x.Attempt {
			return false
		}
		if x.Skipped != nil && (d.Action.Skipped != "") != *x.Skipped {
			return false
		}
		for k, v := range x.Params {
			if d.Action.Params[k] != v {
				return false
			}
		}
	case "alert":
		if d.Kind != engine.KindAlert {
			return false
		}
		if x.Severity != "" && d.Severity != x.Severity || x.State != "" && string(d.State) != x.State {
			return false
		}
		if held := d.Alert.Held != ""; held != (x.Held != nil && *x.Held) {
			return false // an inhibited alert is matched only by held: true
		}
	case "state":
		if d.Kind != engine.KindState || string(d.State) != x.State {
			return false
		}
	}
	return true
}

// explainMissing says what was expected, what happened nearby, and why the policy did or
// did not fire (its condition's values at the inputs that woke it).
func explainMissing(x policies.Expectation, set *policies.Set, timeline []engine.Decision, start time.Time, got int, evals map[string][]evalNote) string {
	var b strings.Builder
	if x.Count >= 0 || x.AtLeast >= 0 || x.AtMost >= 0 {
		fmt.Fprintf(&b, "%s: expected %s, got %d", x.Pos, x.Describe(), got)
	} else {
		fmt.Fprintf(&b, "%s: expected %s", x.Pos, x.Describe())
	}
	// Nearest decisions of the same kind (and policy, if given), by time.
	ref := start.Add(x.From)
	var near []engine.Decision
	for _, d := range timeline {
		if (x.Policy == "" || d.Policy == x.Policy) && string(d.Kind) == x.Kind {
			near = append(near, d)
		}
	}
	if len(near) == 0 {
		for _, d := range timeline {
			if x.Policy == "" || d.Policy == x.Policy {
				near = append(near, d)
			}
		}
	}
	sort.SliceStable(near, func(i, j int) bool { return absDur(near[i].Time.Sub(ref)) < absDur(near[j].Time.Sub(ref)) })
	if len(near) > 3 {
		near = near[:3]
	}
	sort.SliceStable(near, func(i, j int) bool { return near[i].Time.Before(near[j].Time) })
	if len(near) == 0 {
		b.WriteString("\n    no decisions of that kind")
		if x.Policy != "" {
			b.WriteString(" by " + x.Policy)
		}
	} else {
		b.WriteString("\n    nearest decisions:")
		for _, d := range near {
			fmt.Fprintf(&b, "\n      %s", formatDecision(d, start))
		}
	}
	if p := set.ByName(x.Policy); x.Policy != "" && p == nil {
		fmt.Fprintf(&b, "\n    no policy is named %s", x.Policy)
	} else if p != nil && p.Cond == nil {
		fmt.Fprintf(&b, "\n    %s has no when: it fires on every event in on: %v", x.Policy, p.On)
	} else if x.Policy != "" {
		notes := evals[x.Policy]
		if len(notes) == 0 {
			fmt.Fprintf(&b, "\n    %s was never evaluated: no input matched its on:", x.Policy)
		} else {
			fmt.Fprintf(&b, "\n    why %s did or did not fire:", x.Policy)
			from := 0
			if len(notes) > 5 {
				from = len(notes) - 5
				fmt.Fprintf(&b, "\n      (%d earlier evaluations not shown)", from)
			}
			for _, n := range notes[from:] {
				fmt.Fprintf(&b, "\n      %s %s", offset(n.at, start), n.text)
			}
		}
	}
	return b.String()
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func offset(t, start time.Time) string {
	d := t.Sub(start).Round(time.Millisecond)
	if d < 0 {
		return "-" + (-d).String()
	}
	return "+" + d.String()
}

func formatDecision(d engine.Decision, start time.Time) string {
	s := d.String()
	// Replace the absolute time with the offset from the test's start.
	if i := strings.IndexByte(s, ' '); i > 0 {
		s = s[i+1:]
	}
	return fmt.Sprintf("%-8s %s", offset(d.Time, start), s)
}

// FormatTimeline renders a timeline with offsets from start.
func FormatTimeline(timeline []engine.Decision, start time.Time) string {
	var b strings.Builder
	for _, d := range timeline {
		b.WriteString(formatDecision(d, start))
		b.WriteByte('\n')
	}
	return b.String()
}
