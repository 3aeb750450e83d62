package policies

import (
	"slices"
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
