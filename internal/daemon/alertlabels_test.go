package daemon

import (
	"encoding/json"
	"testing"
)

// An alert on the API carries its labels (issue 22: the dashboard filters alerts by
// labels.session, as it filters events).
func TestAlertsCarryTheirLabels(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	r.do("POST", "/api/v1/events", `{"code":"CUSTOM_FAULT","labels":{"part":"cache","session":"sales"}}`)
	var rows []struct {
		Policy string
		Labels map[string]string
	}
	r.eventually("the alert", func() bool {
		_, b := r.do("GET", "/api/v1/alerts", "")
		rows = nil
		json.Unmarshal([]byte(b), &rows)
		return len(rows) > 0
	})
	if rows[0].Policy != "custom-fault" || rows[0].Labels["part"] != "cache" {
		t.Fatalf("alert %+v", rows[0])
	}
}
