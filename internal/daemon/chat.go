package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/alert"
	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/session"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/policies"
)

// chatBackend answers the admin chat's commands.
type chatBackend struct{ d *Daemon }

func (b chatBackend) Status(ctx context.Context) string {
	o := b.d.Overview(ctx)
	wa := o.WhatsApp
	if ss := b.d.sessions.all(); len(ss) > 1 || len(ss) == 1 && ss[0].Name() != config.DefaultSession {
		// Every session by name: one number's outage is not hidden behind another's.
		var parts []string
		for _, x := range ss {
			parts = append(parts, x.Name()+" "+string(x.State()))
		}
		for name := range b.d.sessions.failedNames() {
			parts = append(parts, name+" not opened")
		}
		wa = "(" + strings.Join(parts, ", ") + ")"
	}
	s := fmt.Sprintf("WhatsApp %s, database %s, %d firing, %d policies", wa, o.Database, o.Firing, o.Policies)
	if !o.Reload.OK {
		s += ", LAST RELOAD FAILED"
	}
	if o.Outbox > 0 {
		s += fmt.Sprintf(", %d alerts waiting", o.Outbox)
	}
	if o.Disk != "ok" && o.Disk != "" && !strings.HasPrefix(o.Database, "full") {
		s += ", disk " + o.Disk
	}
	if o.StoreBacklog > 0 {
		s += fmt.Sprintf(", %d writes waiting (store backlog)", o.StoreBacklog)
	}
	if v, ok := o.Sample["cpu_percent"]; ok {
		s += fmt.Sprintf("\nCPU %.0f%%, memory %.0f%%, disk free %.0f%%", v, o.Sample["mem_percent"], o.Sample["disk_free_percent"])
	}
	return s
}

func (b chatBackend) Alerts(ctx context.Context) string {
	rows, err := b.d.data.Main.Alerts(ctx, 10)
	if err != nil {
		return "alerts unavailable: " + err.Error()
	}
	if len(rows) == 0 {
		return "no alerts"
	}
	var out []string
	for _, a := range rows {
		line := fmt.Sprintf("#%d %s %s %s: %s", a.ID, strings.ToUpper(a.Severity), a.Policy, a.State, a.Summary)
		if a.AckedBy != "" {
			line += " (acked)"
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func (b chatBackend) Ack(ctx context.Context, id int64, by string) error {
	return b.d.pipeline.Ack(ctx, id, by)
}

func (b chatBackend) Silence(ctx context.Context, d time.Duration, policy, by string) (int64, error) {
	now := time.Now()
	s, err := b.d.pipeline.Silence(ctx, alert.Silence{Matchers: map[string]string{"policy": policy}, Starts: now, Ends: now.Add(d),
		Author: by, Reason: "from the WhatsApp admin chat"})
	return s.ID, err
}

func (b chatBackend) Unsilence(ctx context.Context, id int64) error {
	return b.d.pipeline.Expire(ctx, id)
}

// Run starts an allowed action now, as the executor runs a policy's: one attempt, in the
// audit under the pseudo-policy "admin-chat".
func (b chatBackend) Run(ctx context.Context, from, action, target, by string) (string, error) {
	spec, ok := policies.LookupAction(action)
	if !ok {
		return "", fmt.Errorf("unknown action %s", action)
	}
	// An admin acts on the number written to; on another session (RECONNECT_WA's
	// session, CLEAR_QUEUE on its queues) only as that session's admin too.
	if spec.Target == session.Label && target == "" && from != "" {
		target = from
	}
	if on := b.d.sessionOfTarget(spec.Target, target); from != "" && on != "" && on != from && !b.d.adminOf(on, by) {
		return "", fmt.Errorf("%s is not an admin of session %s", by, on)
	}
	params := map[string]string{}
	if spec.Target != "" && target != "" {
		params[spec.Target] = target
	}
	for _, p := range spec.Params {
		if p.Required && params[p.Name] == "" {
			return "", fmt.Errorf("%s needs %s", action, p.Name)
		}
	}
	b.d.exec.Execute(context.WithoutCancel(ctx), engine.Decision{Time: time.Now(), Kind: engine.KindAction, Policy: "admin-chat",
		Instance: by, Action: &engine.ActionCall{Do: action, Params: params, Step: 1, Attempt: 1, Timeout: time.Minute}})
	return action + " started; its outcome will be in the actions audit (!alerts, the dashboard)", nil
}

func (b chatBackend) Report(ctx context.Context) string {
	now := time.Now()
	r, err := b.d.reporter.Build(ctx, b.d.reporter.Since(ctx, now), now)
	if err != nil {
		return "report unavailable: " + err.Error()
	}
	return r
}

func (b chatBackend) Policies(ctx context.Context) string {
	ps, err := b.d.Policies(ctx)
	if err != nil {
		return "policies unavailable: " + err.Error()
	}
	var firing []string
	for _, p := range ps {
		if p.Firing > 0 {
			firing = append(firing, fmt.Sprintf("%s (%d)", p.Name, p.Firing))
		}
	}
	s := fmt.Sprintf("%d policies, %d firing", len(ps), len(firing))
	if len(firing) > 0 {
		s += ": " + strings.Join(firing, ", ")
	}
	return s
}

// Refused records a command from a number that is not an admin.
func (b chatBackend) Refused(ctx context.Context, from, text string) {
	b.d.log.Warn("admin command from a number that is not an admin; not answered", "from", from)
	b.d.writers.audit.Add(store.AuditEntry{Time: time.Now(), Policy: "admin-chat", Instance: from, Action: "ADMIN_COMMAND",
		Outcome: "refused", Error: "not an admin number", Output: text})
}

// tuneQueue applies the configuration's queues section (zero values keep the defaults).
func (d *Daemon) tuneQueue(o *queue.Options) {
	o.Audit = func(e store.AuditEntry) { d.writers.audit.Add(e) }
	c, ok := d.cfg.Queues[o.Name]
	if !ok {
		// A session's queues (inbound_sales) follow queues.inbound and queues.outbound
		// unless they have their own entry.
		base, _, _ := strings.Cut(o.Name, "_")
		if c, ok = d.cfg.Queues[base]; !ok || base == o.Name {
			return
		}
	}
	if c.Capacity > 0 {
		o.Capacity = c.Capacity
	}
	if c.Workers > 0 {
		o.Workers = c.Workers
	}
	if c.ItemTimeout > 0 {
		o.ItemTimeout = c.ItemTimeout
	}
	if c.MaxAttempts > 0 {
		o.MaxAttempts = c.MaxAttempts
	}
	if c.StuckAfter > 0 {
		o.StuckAfter = c.StuckAfter
	}
}

// sessionOfTarget is the configured session an action's target belongs to: a session by
// name, or a session's queue ("inbound", "outbound_sales"); "" for anything host-wide.
func (d *Daemon) sessionOfTarget(kind, target string) string {
	for _, sc := range *d.sessionCfgs.Load() {
		in, out := session.Queues(sc.Name)
		switch {
		case kind == session.Label && target == sc.Name, kind == "queue" && (target == in || target == out):
			return sc.Name
		}
	}
	return ""
}

// adminOf says whether the number by is one of the configured session's admins.
func (d *Daemon) adminOf(name, by string) bool {
	for _, sc := range *d.sessionCfgs.Load() {
		if sc.Name == name {
			return slices.ContainsFunc(sc.Admins, func(a string) bool { return chat.Digits(a) == chat.Digits(by) })
		}
	}
	return false
}
