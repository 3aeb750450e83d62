package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/remedy-run/remedy/internal/config"
)

// A reload follows the same rules as the start: the operator's files over the embedded
// defaults. Switching a default off, then replacing it, reaches the running engine.
func TestReloadKeepsTheDefaults(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) { c.DefaultPolicies = true })
	policiesByName := func() map[string]map[string]any {
		_, body := r.do("GET", "/api/v1/policies", "")
		var ps []map[string]any
		if err := json.Unmarshal([]byte(body), &ps); err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]any{}
		for _, p := range ps {
			out[p["name"].(string)] = p
		}
		return out
	}
	before := policiesByName()
	if before["wa-reconnect"] == nil || before["custom-fault"] == nil || before["cpu-high"]["enabled"] != true {
		t.Fatalf("the defaults and the operator's policies together at start: %d policies", len(before))
	}
	mine := filepath.Join(r.dir, "policies", "mine.yaml")
	os.WriteFile(mine, []byte("policies:\n  - name: cpu-high\n    enabled: false\n"), 0o644)
	if st := r.d.Reload(context.Background()); !st.OK {
		t.Fatalf("reload: %+v", st)
	}
	after := policiesByName()
	if len(after) != len(before) || after["cpu-high"]["enabled"] != false || after["wa-reconnect"] == nil {
		t.Fatalf("after switching cpu-high off: %d policies (was %d), cpu-high %v", len(after), len(before), after["cpu-high"])
	}
	os.WriteFile(mine, []byte("policies:\n  - name: cpu-high\n    on: [sample]\n    when: 'metrics.cpu_percent > 99'\n"), 0o644)
	if st := r.d.Reload(context.Background()); !st.OK || len(st.Changed) != 1 || st.Changed[0] != "cpu-high" {
		t.Fatalf("reload: %+v", st)
	}
	if p := policiesByName()["cpu-high"]; p["when"] != "metrics.cpu_percent > 99" || p["enabled"] != true {
		t.Fatalf("cpu-high not replaced: %v", p)
	}
}
