package conditions

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSelectorErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"count(\"E\", \"5m\", `by (zone)`) > 1", "zone is not in the policy's group_by"},
		{"count(\"E\", \"5m\", `by (db, db)`) > 1", "db named twice"},
		{"count(\"E\", \"5m\", `by db`) > 1", "want (label, …) after by"},
		{"count(\"E\", \"5m\", `{db}`) > 1", "want =, !=, =~ or !~ after db"},
		{"count(\"E\", \"5m\", `{db=x}`) > 1", "wants a quoted value"},
		{"count(\"E\", \"5m\", `{db=~\"(\"}`) > 1", "missing closing )"},
		{"count(\"E\", \"5m\", `{db=\"a\"} extra`) > 1", "unexpected \"extra\""},
		{"count(\"E\", \"5m\", ``) > 1", "is empty"},
		{"since(\"E\", `by (zone)`) > 1", "zone is not in the policy's group_by"},
		{"rate(\"m\", \"5m\", `by ()`) > 1", "too many arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := Compile(tt.src, GroupBy([]string{"db"}))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want *Error", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// count() sees the instance's own events by default, all with `by ()`, the matched ones
// with {…}; regular expressions are anchored; a missing label reads "".
func TestSelectorCounts(t *testing.T) {
	gb := GroupBy([]string{"db", "host"})
	conds := map[string]*Condition{}
	for _, src := range []string{
		`count("E", "1m") == 0`,
		"count(\"E\", \"1m\", `by ()`) == 0",
		"count(\"E\", \"1m\", `by (host)`) == 0",
		"count(\"E\", \"1m\", `{reason=~\"time\"}`) == 0",
		"count(\"E\", \"1m\", `by () {reason!~'time.*', reason!=\"\"}`) == 0",
		"count(\"E\", \"1m\", `{}`) == 0",
	} {
		c, err := Compile(src, gb)
		if err != nil {
			t.Fatal(err)
		}
		conds[src] = c
	}
	var all []*Condition
	for _, c := range conds {
		all = append(all, c)
	}
	r := NewRuntime(nil, nil)
	r.Prepare(all)
	ev := func(db, host, reason string) {
		l := map[string]string{"db": db, "reason": reason}
		if host != "" {
			l["host"] = host
		}
		r.ObserveEvent(t0, "E", "", "", 0, l)
	}
	ev("main", "h1", "timeout")
	ev("main", "h1", "time")
	ev("main", "", "refused")
	ev("metrics", "h1", "busy")
	ev("metrics", "h2", "")
	count := func(src string, inst map[string]string) int {
		r.SetLabels(inst)
		vs := r.Explain(conds[src], t0.Add(time.Second))
		return vs[0].Value.(int)
	}
	main1 := map[string]string{"db": "main", "host": "h1"}
	for src, want := range map[string]int{
		`count("E", "1m") == 0`:                                               2,
		"count(\"E\", \"1m\", `by ()`) == 0":                                  5,
		"count(\"E\", \"1m\", `by (host)`) == 0":                              3,
		"count(\"E\", \"1m\", `{reason=~\"time\"}`) == 0":                     1,
		"count(\"E\", \"1m\", `by () {reason!~'time.*', reason!=\"\"}`) == 0": 2,
		"count(\"E\", \"1m\", `{}`) == 0":                                     2,
	} {
		if got := count(src, main1); got != want {
			t.Errorf("%s for db=main,host=h1: %d, want %d", src, got, want)
		}
	}
	// The instance without a host label is the group of events without one.
	if got := count(`count("E", "1m") == 0`, map[string]string{"db": "main"}); got != 1 {
		t.Errorf("db=main without host: %d, want 1", got)
	}
	// A new instance takes its group labels from the event.
	r.SetInstanceLabels(map[string]string{"db": "policy's"}, map[string]string{"db": "metrics", "host": "h2"}, []string{"db", "host"})
	if vs := r.Explain(conds[`count("E", "1m") == 0`], t0.Add(time.Second)); vs[0].Value.(int) != 1 {
		t.Errorf("new instance metrics/h2: %v, want 1", vs[0].Value)
	}
}

// Groups that no window reaches are dropped, so a label with many values does not grow
// the history without bound; a group seen again starts from its new events.
func TestSelectorGroupsAreSwept(t *testing.T) {
	c, err := Compile(`count("E", "10s") >= 1`, GroupBy([]string{"id"}))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	now := t0
	for i := range 100_000 {
		now = now.Add(time.Second)
		r.ObserveEvent(now, "E", "", "", 0, map[string]string{"id": string(rune('a'+i%26)) + strings.Repeat("x", i%1000)})
	}
	v := r.hist.views[c.sites[0].view]
	if n := len(v.parts); n > 1000 {
		t.Fatalf("%d groups kept for a 10 s window with one event a second", n)
	}
}

// Counting per instance does not allocate once the groups exist.
func TestSelectorEvalDoesNotAllocate(t *testing.T) {
	c, err := Compile("count(\"E\", \"10m\") >= 1 && since(\"E\", `{reason=\"x\"}`) < 60", GroupBy([]string{"db"}))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	a, b := map[string]string{"db": "a", "reason": "x"}, map[string]string{"db": "b", "reason": "x"}
	r.ObserveEvent(t0, "E", "", "", 0, a)
	r.ObserveEvent(t0, "E", "", "", 0, b)
	groupBy := []string{"db"}
	allocs := testing.AllocsPerRun(1000, func() {
		for _, l := range []map[string]string{a, b} {
			r.ObserveEvent(t0, "E", "", "", 0, l)
			r.SetInstanceLabels(nil, l, groupBy)
			if ok, err := r.Eval(c, t0); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per evaluation", allocs)
	}
}

// since() remembers a group past the window, up to maxGroups of them; the least
// recently seen are forgotten first. Groups inside a count() window are never dropped.
func TestSinceGroupsAreBounded(t *testing.T) {
	c, err := Compile(`since("E") < 5 || count("E", "1h") > 1`, GroupBy([]string{"id"}))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRuntime(nil, nil)
	r.Prepare([]*Condition{c})
	now := t0
	n := 3 * maxGroups
	for i := range n {
		now = now.Add(100 * time.Millisecond)
		r.ObserveEvent(now, "E", "", "", 0, map[string]string{"id": strconv.Itoa(i)})
	}
	// All inside the hour: every group kept, every count right.
	v := r.hist.views[c.sites[0].view]
	if len(v.parts) != n {
		t.Fatalf("%d groups kept, want all %d inside the window", len(v.parts), n)
	}
	now = now.Add(2 * time.Hour)
	for i := range n {
		now = now.Add(time.Millisecond)
		r.ObserveEvent(now, "E", "", "", 0, map[string]string{"id": "new" + strconv.Itoa(i)})
	}
	if len(v.parts) > n+maxGroups {
		t.Fatalf("%d groups kept; past the window at most %d should remain", len(v.parts), maxGroups)
	}
	r.SetLabels(map[string]string{"id": "new" + strconv.Itoa(n-1)})
	if ok, _ := r.Eval(c, now); !ok {
		t.Fatal("the latest group was forgotten")
	}
}
