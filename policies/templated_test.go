package policies

import (
	"slices"
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
	if len(diags) > 0 || len(ps) != 1 {
		t.Fatalf("%v", diags)
	}
	if got := ps[0].Actions[0].TemplatedParams(); !slices.Equal(got, []string{"url"}) {
		t.Fatalf("templated step: %v", got)
	}
	if got := ps[0].Actions[1].TemplatedParams(); len(got) != 0 {
		t.Fatalf("literal step: %v", got)
	}
}
