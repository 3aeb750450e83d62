package policies

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestPoliciesDocCoversCatalogue keeps POLICIES.md true: every event code, metric,
// action, function and policy key must appear in it.
func TestPoliciesDocCoversCatalogue(t *testing.T) {
	b, err := os.ReadFile("../POLICIES.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var want []string
	for _, c := range Codes {
		want = append(want, "`"+c.Code+"`")
	}
	for _, m := range Metrics {
		want = append(want, "`"+m.Name+"`")
	}
	for _, s := range ActionSpecs() {
		want = append(want, "`"+s.Name+"`")
		for _, p := range s.Params {
			want = append(want, "`"+p.Name+"`")
		}
	}
	for _, f := range []string{"rate(", "increase(", "avg_over(", "max_over(", "min_over(", "count(", "since(", "firing(", "hour()", "weekday()"} {
		want = append(want, "`"+f)
	}
	for _, k := range []string{"name", "description", "on", "when", "for", "keep_firing_for", "group_by", "max_instances", "severity", "resolve_on",
		"retry_on", "rearm", "stable_for", "actions", "escalate.after_failures", "escalate.severity", "alert.notify_on", "alert.rate_limit", "alert.repeat",
		"alert.channels", "labels", "annotations", "mode", "enabled"} {
		want = append(want, "| `"+k)
	}
	set, err := Defaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range set.Policies {
		want = append(want, "`"+p.Name+"`")
	}
	for _, w := range want {
		if !strings.Contains(doc, w) {
			t.Errorf("POLICIES.md does not mention %s", w)
		}
	}
}

// TestRunbooksExist checks that every runbook a default policy points to is a heading
// in MONITORING_GUIDE.md.
func TestRunbooksExist(t *testing.T) {
	b, err := os.ReadFile("../MONITORING_GUIDE.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			anchors[githubAnchor(h)] = true
		} else if h, ok := strings.CutPrefix(line, "## "); ok {
			anchors[githubAnchor(h)] = true
		}
	}
	set, err := Defaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range set.Policies {
		rb := p.Annotations["runbook"]
		if rb == "" {
			continue
		}
		file, anchor, _ := strings.Cut(rb, "#")
		if file != "MONITORING_GUIDE.md" || !anchors[anchor] {
			t.Errorf("policy %s: runbook %s has no heading in MONITORING_GUIDE.md", p.Name, rb)
		}
	}
}

var anchorDrop = regexp.MustCompile(`[^a-z0-9 -]`)

func githubAnchor(h string) string {
	return strings.ReplaceAll(anchorDrop.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-")
}
