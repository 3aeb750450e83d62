package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// remedy run with WhatsApp on, against the fake server: connected, readiness, the
// dashboard's state, and a dropped connection healed by the default wa-reconnect policy
// through RECONNECT_WA.
func TestDaemonKeepsWhatsAppConnected(t *testing.T) {
	s, err := wafake.New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	store := filepath.Join(t.TempDir(), "whatsapp.db")
	if err := wafake.PairedStore(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	r := startDaemon(t, func(c *config.Config) {
		c.Policies = "" // the embedded defaults
		c.WhatsApp = config.WhatsApp{Enabled: true, Store: store, Admins: []string{"+6281100000001"}, SendPerMinute: 10}
	}, WithWhatsAppHTTP(s.HTTPClient()))
	r.eventually("connected", func() bool {
		_, b := r.do("GET", "/api/v1/status", "")
		return strings.Contains(b, `"whatsapp": "connected"`)
	})
	if code, b := r.do("GET", "/readyz", ""); code != 200 {
		t.Fatalf("readyz %d %s", code, b)
	}
	s.DropAll()
	r.eventually("the reconnect through the policy", func() bool {
		_, b := r.do("GET", "/api/v1/actions", "")
		return strings.Contains(b, `"action": "RECONNECT_WA"`) && strings.Contains(b, `"outcome": "succeeded"`)
	})
	r.eventually("connected again", func() bool {
		_, b := r.do("GET", "/api/v1/status", "")
		return strings.Contains(b, `"whatsapp": "connected"`) && s.Logins() == 2
	})
	_, b := r.do("GET", "/metrics", "")
	if !strings.Contains(b, `remedy_events_total{code="WA_DISCONNECTED"} 1`) {
		t.Fatalf("metrics: %s", b)
	}
}
