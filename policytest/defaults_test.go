package policytest

import (
	"path/filepath"
	"testing"

	"github.com/remedy-run/remedy/policies"
)

// TestDefaultPolicies runs the test files that live beside the default policies, and
// checks that every default policy is named by at least one expectation.
func TestDefaultPolicies(t *testing.T) {
	files, err := filepath.Glob("../policies/defaults/*_test.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no default test files: %v", err)
	}
	covered := map[string]bool{}
	for _, f := range files {
		tf, set, err := LoadTestFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range tf.Tests {
			for _, x := range append(append([]policies.Expectation{}, tc.Expect...), tc.ExpectNone...) {
				covered[x.Policy] = true
			}
		}
		for _, r := range RunFile(tf, set, Options{Seed: 1}) {
			t.Run(filepath.Base(f)+"/"+r.Name, func(t *testing.T) {
				for _, msg := range r.Failures {
					t.Error(msg)
				}
				if !r.Passed() {
					t.Log("timeline:\n" + FormatTimeline(r.Timeline, r.Start))
				}
			})
		}
	}
	set, err := policies.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range set.Policies {
		if !covered[p.Name] {
			t.Errorf("default policy %s is not named by any test expectation", p.Name)
		}
	}
}
