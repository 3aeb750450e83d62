package daemon

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/internal/config"
)

// Issue 14, item 1: "N firing" (status, badge, !status) is the engine's count. An
// instant policy fires and is over on each event; thirty of them leave nothing firing,
// while a policy with resolve_on counts until it resolves.
func TestStatusFiringIsTheEngines(t *testing.T) {
	r := startDaemon(t, func(c *config.Config) {
		os.WriteFile(filepath.Join(c.Policies, "instant.yaml"), []byte(`policies:
  - name: busy
    on: [BUSY]
    alert: {channels: [log]}
  - name: held
    on: [HOLD]
    resolve_on: [HOLD_OK]
    alert: {channels: [log]}
`), 0o644)
	})
	firing := func() float64 {
		_, b := r.do("GET", "/api/v1/status", "")
		var st map[string]any
		json.Unmarshal([]byte(b), &st)
		f, _ := st["firing"].(float64)
		return f
	}
	var batch []string
	for i := 0; i < 30; i++ {
		batch = append(batch, `{"code":"BUSY"}`)
	}
	if code, body := r.do("POST", "/api/v1/events", "["+strings.Join(batch, ",")+`,{"code":"HOLD"}]`); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	r.eventually("HOLD firing", func() bool {
		p := r.policy("held")
		return p != nil && p["firing"] == 1.0
	})
	if f := firing(); f != 1 {
		t.Fatalf("status firing %v after 30 instant firings and one held incident, want 1", f)
	}
	r.do("POST", "/api/v1/events", `{"code":"HOLD_OK"}`)
	r.eventually("nothing firing", func() bool { return firing() == 0 })
	_, m := r.do("GET", "/metrics", "")
	if !strings.Contains(m, `remedy_policy_firing_instances{policy="busy"} 0`) {
		t.Fatalf("metrics: busy firing not 0")
	}
}
