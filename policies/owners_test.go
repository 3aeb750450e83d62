package policies

import (
	"slices"
	"strings"
	"testing"
)

// Every catalogued code is either owned by the adapter its catalogue entry names, or
// shared on purpose, or comes from outside remedy: the catalogue and the ownership
// table cannot drift apart.
func TestOwnersMatchTheCatalogue(t *testing.T) {
	for _, c := range Codes {
		labels := map[string]string{"queue": RemedyQueues[0]}
		owner := CodeOwner(c.Code, labels)
		switch {
		case slices.Contains(SharedCodes, c.Code):
			if owner != "" {
				t.Errorf("%s is shared but owned by %s", c.Code, owner)
			}
		case owner != c.Source:
			t.Errorf("%s: catalogued from %q, owned by %q (add its prefix to Owners, or to SharedCodes)", c.Code, c.Source, owner)
		}
	}
}

func TestCodeOwner(t *testing.T) {
	for _, tc := range []struct {
		code   string
		labels map[string]string
		want   string
	}{
		{"WA_LOGGED_OUT", nil, "whatsapp"},
		{"WA_SOMETHING_NEW", nil, "whatsapp"}, // uncatalogued, still in the adapter's namespace
		{"SERVICE_UP", map[string]string{"service": "bot"}, "service"},
		{"DB_OK", nil, "store"},
		{"DRILL_PROBE_OK", nil, "drill"},
		{"POLICY_RELOADED", nil, "daemon"},
		{"QUEUE_OK", map[string]string{"queue": "inbound"}, "queue"},
		{"QUEUE_OK", nil, "queue"},
		{"QUEUE_STUCK", map[string]string{"queue": "orders"}, ""},
		{"HANDLER_ERROR", map[string]string{"queue": "inbound"}, ""},
		{"BOT_WEDGED", nil, ""},
	} {
		if got := CodeOwner(tc.code, tc.labels); got != tc.want {
			t.Errorf("CodeOwner(%s, %v) = %q, want %q", tc.code, tc.labels, got, tc.want)
		}
	}
	for _, s := range []string{"whatsapp", "service", "Store", "remedy", "drill"} {
		if !InternalSource(s) {
			t.Errorf("%s is remedy's own source", s)
		}
	}
	if InternalSource("node-bot") || InternalSource("api") {
		t.Error("node-bot or api taken for an internal source")
	}
}

// The metrics remedy's sampler produces are its own; a bot's metrics, its own queues'
// included, are not.
func TestOwnMetric(t *testing.T) {
	for name, want := range map[string]bool{
		"cpu_percent": true, "disk_free_percent": true, "process_rss_mb": true, "wa_connected": true,
		"queue_inbound_depth": true, "queue_outbound_fill": true, "queue_inbound_oldest_seconds": true,
		"service_bot_up": true, "service_bot_rss_mb": true, "db_wait_count": true,
		"queue_jobs_depth": false, "queue_orders_oldest_seconds": false, "queue_inbound_x_depth": false,
		"bot_rss_mb": false, "cpu_percent_bot": false, "burn": false,
	} {
		if got := OwnMetric(name); got != want {
			t.Errorf("OwnMetric(%q) = %v, want %v", name, got, want)
		}
	}
	// Every catalogued metric without a placeholder is remedy's.
	for _, m := range Metrics {
		if !strings.Contains(m.Name, "<") && !OwnMetric(m.Name) {
			t.Errorf("%s is catalogued but not owned", m.Name)
		}
	}
}

// A running session's queues are remedy's own; a queue of the same shape that no
// session runs stays the poster's.
func TestSessionQueuesAreOwned(t *testing.T) {
	SetSessionQueues([]string{"inbound_sales", "outbound_sales"})
	t.Cleanup(func() { SetSessionQueues(nil) })
	if !OwnMetric("queue_inbound_sales_depth") || CodeOwner("QUEUE_STUCK", map[string]string{"queue": "outbound_sales"}) != "queue" {
		t.Error("the session sales's queues are not remedy's")
	}
	if OwnMetric("queue_inbound_x_depth") || CodeOwner("QUEUE_STUCK", map[string]string{"queue": "inbound_x"}) != "" {
		t.Error("a queue no session runs is taken for remedy's")
	}
}
