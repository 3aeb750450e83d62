package daemon

import (
	"encoding/json"
	"fmt"
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
	t.Parallel()
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

// Issue 14, items 2 and 3 through the API: an ack belongs to an open incident and can be
// withdrawn; a reload that changes a firing policy resolves its incident with the reason.
func TestAckAndReloadThroughTheAPI(t *testing.T) {
	t.Parallel()
	var pol string
	r := startDaemon(t, func(c *config.Config) {
		pol = filepath.Join(c.Policies, "held.yaml")
		os.WriteFile(pol, []byte("policies:\n  - name: held\n    on: [HOLD]\n    resolve_on: [HOLD_OK]\n    alert: {channels: [log]}\n"), 0o644)
	})
	r.do("POST", "/api/v1/events", `{"code":"HOLD"}`)
	var alerts []struct {
		ID            int64
		Policy, State string
		Reason        string
	}
	list := func() {
		_, b := r.do("GET", "/api/v1/alerts", "")
		alerts = nil
		json.Unmarshal([]byte(b), &alerts)
	}
	r.eventually("the firing alert", func() bool { list(); return len(alerts) > 0 && alerts[0].Policy == "held" })
	id := fmt.Sprint(alerts[0].ID)
	if code, b := r.do("POST", "/api/v1/alerts/"+id+"/ack", `{"by":"ops"}`); code != 200 {
		t.Fatalf("ack: %d %s", code, b)
	}
	if code, b := r.do("DELETE", "/api/v1/alerts/"+id+"/ack", ""); code != 200 {
		t.Fatalf("unack: %d %s", code, b)
	}
	if code, _ := r.do("DELETE", "/api/v1/alerts/"+id+"/ack", ""); code != 404 {
		t.Fatalf("a second unack: %d, want 404", code)
	}
	os.WriteFile(pol, []byte("policies:\n  - name: held\n    on: [HOLD]\n    resolve_on: [HOLD_OK]\n    severity: error\n    alert: {channels: [log]}\n"), 0o644)
	if code, b := r.do("POST", "/api/v1/reload", ""); code != 200 || !strings.Contains(b, `"held"`) {
		t.Fatalf("reload: %d %s", code, b)
	}
	r.eventually("the resolution by the reload", func() bool {
		list()
		return len(alerts) > 0 && alerts[0].State == "resolved" && strings.Contains(alerts[0].Reason, "policy changed by a reload")
	})
	if code, _ := r.do("POST", "/api/v1/alerts/"+id+"/ack", `{"by":"ops"}`); code == 200 {
		t.Fatal("an ack of a resolved incident was accepted")
	}
}
