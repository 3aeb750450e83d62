package engine

import (
	"testing"
	"time"
)

func TestStatusDescribesInstances(t *testing.T) {
	h := newHarness(t, ladderSrc+`
  - name: cpu
    on: [sample]
    when: 'metrics.cpu_percent > 90'
    for: 5m
`)
	h.event(0, "SERVICE_DOWN", "service", "bot")
	h.sample(5*time.Second, "cpu_percent", 99.0) // before the attempt times out
	st := h.e.Status()
	if len(st) != 2 || st[0].Name != "svc" || st[0].Source != "test.yaml:3:5" || st[0].Firing != 1 {
		t.Fatalf("%+v", st)
	}
	bot := st[0].Instances[0]
	if bot.Key != "bot" || bot.State != Firing || !bot.InFlight || bot.Step != 1 || bot.Attempts != 1 {
		t.Fatalf("svc instance %+v", bot)
	}
	cpu := st[1].Instances[0]
	if cpu.State != Pending || cpu.PendingUntil == nil || !cpu.PendingUntil.Equal(t0.Add(5*time.Minute+5*time.Second)) {
		t.Fatalf("cpu instance %+v", cpu)
	}
}

func TestTryRunsOnePolicyInDryRun(t *testing.T) {
	set := loadSet(t, `
policies:
  - name: wa
    on: [WA_DISCONNECTED]
    when: 'event.labels.reason != "logged_out"'
    actions: [{do: RECONNECT_WA, timeout: 5s}]
`)
	p := set.Policies[0]
	res := Try(p, Event{Time: t0, Code: "WA_DISCONNECTED", Labels: map[string]string{"reason": "network"}}, nil)
	acts := pick(res.Decisions, KindAction)
	if !res.Matched || !res.Result || len(acts) != 1 || acts[0].Action.Skipped != "dry_run" {
		t.Fatalf("%+v", res)
	}
	res = Try(p, Event{Time: t0, Code: "WA_DISCONNECTED", Labels: map[string]string{"reason": "logged_out"}}, nil)
	if !res.Matched || res.Result || len(res.Decisions) != 0 || res.Values[0].String() != `event.labels.reason="logged_out"` {
		t.Fatalf("%+v", res)
	}
	if p.Mode != "enforce" {
		t.Fatal("Try changed the running policy")
	}
}
