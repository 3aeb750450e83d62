package actions

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// RECONNECT_WA reconnects the session its session parameter names, else the one the
// decision's session label names, else "default"; a session remedy does not run is
// refused as not applicable, and nothing is called.
func TestReconnectTargetsItsSession(t *testing.T) {
	fakes := map[string]*fake{"default": {mode: "ok"}, "sales": {mode: "ok"}, "support": {mode: "ok"}}
	deps := Deps{WhatsApp: func(name string) Reconnector {
		if f, ok := fakes[name]; ok {
			return f
		}
		return nil
	}}
	for _, c := range []struct {
		name   string
		params Params
		labels map[string]string
		want   string // the session called; "" refused
	}{
		{"the label", nil, map[string]string{"session": "sales"}, "sales"},
		{"the parameter over the label", Params{"session": "support"}, map[string]string{"session": "sales"}, "support"},
		{"neither", nil, nil, "default"},
		{"unknown", nil, map[string]string{"session": "billing"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, f := range fakes {
				f.calls = 0
			}
			results := make(chan engine.Event, 1)
			x := NewExecutor(ExecutorOptions{Registry: Builtins(deps), Results: func(ev engine.Event) { results <- ev }})
			d := decision(3, "RECONNECT_WA", c.params, time.Second)
			d.Labels = c.labels
			ev := runOne(t, x, results, d)
			x.Wait(context.Background())
			if c.want == "" {
				if ev.Labels[engine.LabelOutcome] != engine.OutcomeRefused || !strings.Contains(ev.Message, `no WhatsApp session "billing"`) {
					t.Fatalf("%s %v %q, want refused", ev.Code, ev.Labels, ev.Message)
				}
			} else if ev.Code != engine.CodeActionSucceeded || fakes[c.want].count() != 1 {
				t.Fatalf("%s %q; %s called %d times", ev.Code, ev.Message, c.want, fakes[c.want].count())
			}
			total := 0
			for _, f := range fakes {
				total += f.count()
			}
			if c.want != "" && total != 1 || c.want == "" && total != 0 {
				t.Fatalf("%d reconnects, want only %q's", total, c.want)
			}
		})
	}
}
