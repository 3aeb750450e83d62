package policies

import (
	"slices"
	"strings"
	"testing"
)

// A step says which of its parameters are templates (event data), so an action can
// check them again before use (WEBHOOK's url against webhook_hosts, issue 26 A16).
func TestStepNamesItsTemplatedParams(t *testing.T) {
	ps, diags := Parse("p.yaml", []byte(`policies:
  - name: forward-to-shop
    on: [SHOP_ALERT]
    group_by: [shop]
    actions:
      - do: WEBHOOK
        with: {url: 'http://{{ .labels.shop }}.hooks.example.com/notify', secret_env: HOOK_SECRET}
      - do: WEBHOOK
        with: {url: 'https://hooks.example.com/fixed'}
`))
	// remedy check tells the author where a templated url may go (a warning, so
	// --strict asks for a decision).
	if len(diags) != 1 || !strings.Contains(diags[0].String(), "p.yaml:7:16: warning") || !strings.Contains(diags[0].String(), "webhook_hosts") || len(ps) != 1 {
		t.Fatalf("%v", diags)
	}
	if got := ps[0].Actions[0].TemplatedParams(); !slices.Equal(got, []string{"url"}) {
		t.Fatalf("templated step: %v", got)
	}
	if got := ps[0].Actions[1].TemplatedParams(); len(got) != 0 {
		t.Fatalf("literal step: %v", got)
	}
}
