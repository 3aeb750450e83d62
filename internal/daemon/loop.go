package daemon

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/alert"
	"github.com/remedy-run/remedy/internal/service"
	"github.com/remedy-run/remedy/internal/session"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/policies"
	"github.com/remedy-run/remedy/web"
)

// effects hands one input's decisions to their owners, on the loop goroutine, without
// blocking: the journal writer records the input and the decisions, the executor starts
// actions, the alert pipeline takes alerts (Submit: stored off the loop), the hub and
// the metrics show them.
func (d *Daemon) effects(eng *engine.Engine, it item, decisions []engine.Decision) {
	d.state.dirty.Store(true)
	d.metrics.ObserveEngine(eng.Stats())
	switch x := it.in.(type) {
	case engine.Event:
		d.metrics.Events.WithLabelValues(x.Code).Inc()
		d.hub.Publish("event", x)
		if x.Code == "WA_CONNECTED" {
			d.pipeline.RetryNow("whatsapp") // alerts waiting for WhatsApp go out now, not after their backoff
			for _, s := range d.sessions.all() {
				if n := x.Labels[session.Label]; n == "" || n == s.Name() {
					s.Wake() // and so do the bot's replies
				}
			}
		}
		if x.Code == engine.CodeActionSucceeded || x.Code == engine.CodeActionFailed || x.Code == engine.CodeActionTimeout {
			outcome := map[string]string{engine.CodeActionSucceeded: "succeeded", engine.CodeActionFailed: "failed", engine.CodeActionTimeout: "timeout"}[x.Code]
			if x.Labels[engine.LabelOutcome] == engine.OutcomeRefused {
				outcome = engine.OutcomeRefused
			}
			d.metrics.ActionOutcomes.WithLabelValues(x.Labels[engine.LabelAction], outcome).Inc()
			d.metrics.ActionDuration.WithLabelValues(x.Labels[engine.LabelAction]).Observe(x.Value)
		}
		if !it.stored {
			d.writers.journal.Add(journalRow{Event: &x})
		}
	case engine.Sample:
		d.hub.Publish("sample", x)
		if !it.stored {
			d.writers.samples.Add(x)
		}
	}
	d.decide(eng, decisions)
}

// decide hands decisions to their owners (recorded by the journal writer) and publishes
// the engine's counts, the only source of "N firing" (the badge, /api/v1/status,
// !status, /metrics).
func (d *Daemon) decide(eng *engine.Engine, decisions []engine.Decision) {
	for i := range decisions {
		d.writers.journal.Add(journalRow{Decision: &decisions[i]})
	}
	for _, dec := range decisions {
		switch dec.Kind {
		case engine.KindAction:
			if !d.stopping.Load() {
				d.exec.Execute(d.actCtx, dec)
			}
		case engine.KindAlert:
			d.pipeline.Submit(dec)
		case engine.KindState:
			switch dec.State {
			case engine.NotHeld:
				if dec.Of == nil {
					break
				}
				// The attempt's audit row says "succeeded"; this row, with the same
				// decision ID, says that the success did not hold and why (the dashboard
				// folds the two into one).
				d.writers.audit.Add(store.AuditEntry{Time: dec.Time, Policy: dec.Policy, Instance: dec.Instance,
					DecisionID: dec.Of.ID, Action: dec.Of.Do, Step: dec.Of.Step, Attempt: dec.Of.Attempt,
					Outcome: web.OutcomeNotHeld, Error: dec.Reason.Text})
			case engine.InstanceLimit:
				d.inbox.push(engine.Event{Time: dec.Time, Code: "POLICY_INSTANCE_LIMIT", Source: "daemon",
					Labels: map[string]string{"policy": dec.Policy}, Message: dec.Reason.Text})
			case engine.EvalBudget:
				d.inbox.push(engine.Event{Time: dec.Time, Code: "POLICY_EVAL_BUDGET", Source: "daemon",
					Labels: map[string]string{"policy": dec.Policy}, Message: dec.Reason.Text})
			}
		}
		d.log.Info("decision", "decision", dec.String())
		d.hub.Publish("decision", map[string]any{"time": dec.Time, "policy": dec.Policy, "instance": dec.Instance,
			"kind": dec.Kind, "state": dec.State, "text": dec.String()})
	}
	if len(decisions) > 0 {
		for _, c := range eng.Counts() {
			d.metrics.PolicyFiring.WithLabelValues(c.Name).Set(float64(c.Firing))
			d.metrics.PolicyFlapping.WithLabelValues(c.Name).Set(float64(c.Flapping))
		}
		d.firing.Store(int64(eng.Firing()))
	}
}

// reload is the one reload path (SIGHUP, the API, the file watch): the whole new set is
// parsed and compiled on the side; on any error the old set keeps running and the errors
// are logged, shown and raised as POLICY_RELOAD_FAILED; on success the set is swapped
// with state carried over and the diff goes to the audit.
func (d *Daemon) reload(context.Context) web.ReloadStatus {
	st := web.ReloadStatus{Time: time.Now()}
	stamp := policyStamp(d.cfg.Policies)
	d.stamp.Store(&stamp) // a failed load is not retried until the files change again
	set, err := d.cfg.LoadPolicies()
	if err != nil {
		var errs policies.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				st.Errors = append(st.Errors, e.String())
			}
		} else {
			st.Errors = []string{err.Error()}
		}
		d.lastReload.Store(&st)
		d.metrics.ReloadSuccess.Set(0)
		d.log.Error("policy reload failed; the previous policies keep running", "errors", len(st.Errors))
		for _, e := range st.Errors {
			d.log.Error("policy error", "error", e)
		}
		msg := st.Errors[0]
		if len(st.Errors) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(st.Errors)-1)
		}
		d.inbox.push(engine.Event{Time: time.Now(), Code: "POLICY_RELOAD_FAILED", Source: "daemon", Message: msg, Value: float64(len(st.Errors))})
		d.hub.Publish("reload", st)
		return st
	}
	diff := d.eng.Swap(set)
	d.set.Store(set)
	d.decide(d.eng, diff.Decisions) // incidents that ended with the reload are resolved
	d.state.dirty.Store(true)
	st.OK, st.Added, st.Changed, st.Removed, st.Files = true, diff.Added, diff.Changed, diff.Removed, set.Files
	d.lastReload.Store(&st)
	d.metrics.ReloadSuccess.Set(1)
	d.metrics.ReloadTimestamp.SetToCurrentTime()
	out, _ := json.Marshal(diff)
	d.writers.audit.Add(store.AuditEntry{Time: time.Now(), Action: "RELOAD", Outcome: "reloaded", Output: string(out)})
	d.log.Info("policies reloaded", "policies", set.Summary(), "added", diff.Added, "changed", diff.Changed, "removed", diff.Removed)
	d.inbox.push(engine.Event{Time: time.Now(), Code: "POLICY_RELOADED", Source: "daemon"})
	d.hub.Publish("reload", st)
	return st
}

// policyStamp identifies the policy files' contents by name, size and time.
func policyStamp(path string) string {
	if path == "" {
		return ""
	}
	var s string
	filepath.WalkDir(path, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && policies.IsPolicyFile(e.Name()) {
			if info, err := e.Info(); err == nil {
				s += fmt.Sprintf("%s:%d:%d;", p, info.Size(), info.ModTime().UnixNano())
			}
		}
		return nil
	})
	return s
}

// watchPolicies reloads when the policy files differ from the ones last loaded (polled
// every 2 s, no dependency).
func (d *Daemon) watchPolicies(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if now := policyStamp(d.cfg.Policies); now != *d.stamp.Load() {
				d.Reload(ctx)
			}
		}
	}
}

// TryPolicy runs an input through one policy in dry run, away from the running engine.
func (d *Daemon) TryPolicy(name string, in engine.Input) (engine.TryResult, error) {
	p := d.set.Load().ByName(name)
	if p == nil {
		return engine.TryResult{}, fmt.Errorf("no policy named %q: %w", name, web.ErrNotFound)
	}
	return engine.Try(p, in, d.cfg.Location()), nil
}

// Overview sums up the state for the dashboard.
func (d *Daemon) Overview(ctx context.Context) web.Overview {
	o := web.Overview{Version: VersionString(), Started: d.started, Now: time.Now(), WhatsApp: d.whatsAppState(), Database: "ok",
		Sample: d.sampler.Last().Values, Firing: int(d.firing.Load()), Policies: len(d.set.Load().Policies),
		Reload: *d.lastReload.Load(), Clients: d.hub.Clients(), DryRun: d.cfg.DryRun,
		Services:    convert(d.sup.Status(), func(s service.Status) web.ServiceStatus { return web.ServiceStatus(s) }),
		InputsQueue: d.inbox.len(), StoreBacklog: d.backlog(), Disk: d.disk()}
	var notes []string
	for _, s := range d.sessions.all() {
		if n := s.Note(); n != "" {
			notes = append(notes, n)
		}
	}
	o.WhatsAppNote = strings.Join(append(notes, d.sessions.notes()...), "; ")
	o.ReportSchedule, o.Timezone = cmp.Or(d.cfg.ReportSchedule, alert.DefaultReportSchedule), d.cfg.Location().String()
	// The reporter's own answer (Daily, after the newest stored report), so the page
	// agrees with what Schedule does across clock changes and restarts.
	if next, err := d.reporter.Next(ctx, o.ReportSchedule, d.cfg.Location(), time.Now()); err == nil && !next.IsZero() {
		next = next.In(d.cfg.Location())
		o.ReportNext = &next
	}
	// The checks' last findings, from memory: the full integrity check reads every
	// page and runs on the health loop's schedule, never per request (B3).
	o.Integrity = integrityView(d.data.Main.Integrity(), o.Now)
	o.Retention = retentionView(d.pruner.Status(), o.Now)
	if s, ok := d.rebuilding(); ok {
		o.Database = s
	} else if h := d.data.Main.Health(); h != "ok" {
		o.Database = h
	} else if err := d.databaseHealth(ctx); err != nil {
		o.Database = err.Error() // the same probe as /readyz's database_writable: one row, no page scan
	}
	if p, err := d.pipeline.Pending(ctx); err == nil {
		o.Outbox = len(p)
	}
	return o
}

// poolSource reports the database pools.
func (d *Daemon) poolSource(ctx context.Context) map[string]float64 {
	st := d.data.Main.Stats()
	return map[string]float64{"db_open_conns": float64(st.Open), "db_in_use": float64(st.InUse), "db_wait_count": float64(st.WaitCount)}
}

// stateSource reports the services and the dashboard.
func (d *Daemon) stateSource(ctx context.Context) map[string]float64 {
	v := map[string]float64{"dashboard_clients": float64(d.hub.Clients())}
	// The sessions' wa_connected and logins are theirs (sessionsSource).
	for _, s := range d.sup.Status() {
		up := 0.0
		if s.Up {
			up = 1
		}
		v["service_"+metricName(s.Name)+"_up"] = up
	}
	return v
}

func metricName(s string) string {
	out := make([]byte, 0, len(s))
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			out = append(out, c)
		case c >= 'A' && c <= 'Z':
			out = append(out, c+32)
		default:
			out = append(out, '_')
		}
	}
	return string(out)
}
