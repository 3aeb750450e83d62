package conditions

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// A selector says which events of a code count() and since() see, in PromQL's terms:
//
//	by (db)                      the events whose db label equals the instance's
//	by ()                        every event of the code, across instances
//	{reason="timeout"}           only events whose labels match (=, !=, =~, !~)
//	by () {reason=~"lock|busy"}  both
//
// Written as the last argument: count("DB_TIMEOUT", "5m", `by () {reason="lock"}`),
// since("SERVICE_UP", "by ()"). Without `by`, a policy's group_by labels tie the events
// to the instance (PromQL's `count by (db)` picks the same series per alert); a policy
// without group_by has one instance and sees every event. `by` names only group_by
// labels: the instance has no value for any other. A label an event lacks reads "", as
// in Prometheus, and regular expressions are anchored at both ends, as in PromQL.

// Matcher is one label matcher of a selector.
type Matcher struct {
	Label string
	Op    string // "=", "!=", "=~" or "!~"
	Value string
	re    *regexp.Regexp
}

func (m Matcher) String() string { return m.Label + m.Op + strconv.Quote(m.Value) }

// matches reports whether an event's labels satisfy m.
func (m *Matcher) matches(labels map[string]string) bool {
	v := labels[m.Label]
	switch m.Op {
	case "=":
		return v == m.Value
	case "!=":
		return v != m.Value
	case "=~":
		return m.re.MatchString(v)
	}
	return !m.re.MatchString(v)
}

// selector is a parsed selector argument.
type selector struct {
	by      []string
	byGiven bool
	match   []Matcher
}

// parseSelector reads `[by (l, …)] [{l op "v", …}]`; groupBy is the policy's.
func parseSelector(src string, groupBy []string) (selector, error) {
	var sel selector
	sc := &selScanner{s: src}
	if sc.word() == "by" {
		sel.byGiven = true
		if !sc.take('(') {
			return sel, fmt.Errorf("by: want (label, …) after by")
		}
		for !sc.take(')') {
			if len(sel.by) > 0 && !sc.take(',') {
				return sel, fmt.Errorf("by: want , or ) after %s", sel.by[len(sel.by)-1])
			}
			l := sc.word()
			if l == "" {
				return sel, fmt.Errorf("by: want a label name at %q", sc.rest())
			}
			if !slices.Contains(groupBy, l) {
				return sel, fmt.Errorf("by (%s): %s is not in the policy's group_by %v, so the instance has no value for it; match it with {%s=\"…\"} instead", l, l, groupBy, l)
			}
			if slices.Contains(sel.by, l) {
				return sel, fmt.Errorf("by: %s named twice", l)
			}
			sel.by = append(sel.by, l)
		}
	} else {
		sc.i = 0
	}
	if sc.take('{') {
		for !sc.take('}') {
			if len(sel.match) > 0 && !sc.take(',') {
				return sel, fmt.Errorf("matchers: want , or } at %q", sc.rest())
			}
			if sc.take('}') { // a trailing comma, as PromQL allows
				break
			}
			m, err := sc.matcher()
			if err != nil {
				return sel, err
			}
			sel.match = append(sel.match, m)
		}
	}
	if sc.skip(); sc.i < len(sc.s) {
		return sel, fmt.Errorf("selector: unexpected %q; write by (labels) and/or {label=\"value\", …}", sc.rest())
	}
	if !sel.byGiven && sel.match == nil && strings.TrimSpace(src) != "{}" {
		return sel, fmt.Errorf("selector %q is empty; write by (labels) and/or {label=\"value\", …}", src)
	}
	return sel, nil
}

// selScanner is the little lexer of selectors.
type selScanner struct {
	s string
	i int
}

func (sc *selScanner) skip() {
	for sc.i < len(sc.s) && unicode.IsSpace(rune(sc.s[sc.i])) {
		sc.i++
	}
}

func (sc *selScanner) rest() string { return sc.s[sc.i:] }

func (sc *selScanner) take(c byte) bool {
	sc.skip()
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// word reads a label name ([a-zA-Z_][a-zA-Z0-9_]*), or "".
func (sc *selScanner) word() string {
	sc.skip()
	j := sc.i
	for j < len(sc.s) {
		c := sc.s[j]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > sc.i && c >= '0' && c <= '9' {
			j++
			continue
		}
		break
	}
	w := sc.s[sc.i:j]
	sc.i = j
	return w
}

func (sc *selScanner) matcher() (Matcher, error) {
	var m Matcher
	if m.Label = sc.word(); m.Label == "" {
		return m, fmt.Errorf("matchers: want a label name at %q", sc.rest())
	}
	sc.skip()
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if strings.HasPrefix(sc.rest(), op) {
			m.Op = op
			sc.i += len(op)
			break
		}
	}
	if m.Op == "" {
		return m, fmt.Errorf("matchers: want =, !=, =~ or !~ after %s", m.Label)
	}
	sc.skip()
	q := sc.quoted()
	if q == "" {
		return m, fmt.Errorf("matchers: %s%s wants a quoted value (\"…\" or '…')", m.Label, m.Op)
	}
	if q[0] == '\'' {
		// Go reads '…' as one rune; PromQL allows single-quoted strings.
		q = `"` + strings.ReplaceAll(strings.ReplaceAll(q[1:len(q)-1], `\'`, `'`), `"`, `\"`) + `"`
	}
	var err error
	if m.Value, err = strconv.Unquote(q); err != nil {
		return m, fmt.Errorf("matchers: %s: %v", q, err)
	}
	if m.Op == "=~" || m.Op == "!~" {
		if m.re, err = regexp.Compile("^(?:" + m.Value + ")$"); err != nil {
			return m, fmt.Errorf("matchers: %s%s: %v", m.Label, m.Op, err)
		}
	}
	return m, nil
}

// quoted reads a "…" or '…' string with its quotes and backslash escapes, or "".
func (sc *selScanner) quoted() string {
	if sc.i >= len(sc.s) || sc.s[sc.i] != '"' && sc.s[sc.i] != '\'' {
		return ""
	}
	quote := sc.s[sc.i]
	for j := sc.i + 1; j < len(sc.s); j++ {
		switch sc.s[j] {
		case '\\':
			j++
		case quote:
			q := sc.s[sc.i : j+1]
			sc.i = j + 1
			return q
		}
	}
	return ""
}

// viewKey names the history a code, by-list and matchers share: two calls that select
// the same events read one series.
func viewKey(code string, by []string, match []Matcher) string {
	var b strings.Builder
	b.WriteString(code)
	b.WriteString("\x00")
	b.WriteString(strings.Join(by, ","))
	b.WriteString("\x00")
	ms := make([]string, len(match))
	for i, m := range match {
		ms[i] = m.String()
	}
	slices.Sort(ms)
	b.WriteString(strings.Join(ms, ","))
	return b.String()
}
