package policies

import "testing"

func TestDefaultsLoadClean(t *testing.T) {
	set, err := Defaults()
	if err != nil {
		t.Fatalf("defaults do not load:\n%v", err)
	}
	for _, w := range set.Warnings {
		t.Errorf("warning in defaults: %s", w)
	}
	if len(set.Policies) < 20 {
		t.Errorf("only %d default policies", len(set.Policies))
	}
}
