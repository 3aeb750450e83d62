package actions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/child"
)

// The interfaces the built-in actions need; the subsystems satisfy them.
type (
	// Reconnector closes and reopens the WhatsApp connection (internal/whatsapp).
	Reconnector interface {
		Reconnect(ctx context.Context) error
	}
	// DBResetter reopens a database's pool (store.DB).
	DBResetter interface {
		Reopen(ctx context.Context) error
	}
	// QueueClearer moves a queue's stuck items to the dead-letter table and restarts its
	// workers, returning how many items it moved (internal/queue).
	QueueClearer interface {
		Clear(ctx context.Context, queue string, olderThan time.Duration, reason string) (int, error)
		// Has reports whether remedy has a queue of that name (CLEAR_QUEUE refuses one
		// it does not have before it runs).
		Has(queue string) bool
	}
	// ServiceRestarter stops a supervised service gracefully and starts it again
	// (internal/service).
	ServiceRestarter interface {
		Restart(ctx context.Context, name string, grace time.Duration) error
	}
	// StateResetter resets state that has not progressed within ttl, keeping a
	// before-image, and returns how much it reset.
	StateResetter interface {
		ResetState(ctx context.Context, scope string, ttl time.Duration) (int, error)
	}
	// DataCleaner repairs a database, prunes the metrics, or deletes the uploads no
	// message needs; it returns a report.
	DataCleaner interface {
		CleanDB(ctx context.Context) (string, error)
		PruneMetrics(ctx context.Context) (string, error)
		PruneMedia(ctx context.Context) (string, error)
	}
	// Notifier raises an alert with a custom text (the alert pipeline).
	Notifier interface {
		Notify(ctx context.Context, severity, text string, d engine.Decision) error
	}
)

// Deps are what the built-in actions act on. A missing dependency makes its action fail
// with a clear error rather than be unknown.
type Deps struct {
	// WhatsApp finds a session's connection by name (RECONNECT_WA's session); it returns
	// nil for a session remedy does not run. Nil: WhatsApp is not configured.
	WhatsApp func(session string) Reconnector
	DBs      map[string]DBResetter // by name: "remedy", "metrics", …
	Queues   QueueClearer
	Services ServiceRestarter
	State    []StateResetter
	Cleaner  DataCleaner
	Notifier Notifier
	HTTP     *http.Client // for WEBHOOK; a client with no timeout of its own is fine
	// WebhookHosts are the hosts a WEBHOOK may post to when its url is a template
	// (the configuration's webhook_hosts; ".example.com" allows its subdomains too).
	// None: a templated url is refused (ErrURLNotAllowed), as EXEC refuses templates.
	WebhookHosts []string
	Getenv       func(string) string // for WEBHOOK's secret_env; os.Getenv by default
	// ExecEnv is the whole environment EXEC commands get ("NAME=value"); by default
	// child.Env's clean base from remedy's environment, so no secret of remedy's passes.
	ExecEnv []string
}

// DefaultSession is the session RECONNECT_WA acts on when neither its session
// parameter nor the decision's session label names one.
const DefaultSession = "default"

// SingleSession is Deps.WhatsApp for one connection, the session "default".
func SingleSession(r Reconnector) func(string) Reconnector {
	return func(name string) Reconnector {
		if name != DefaultSession {
			return nil
		}
		return r
	}
}

// ErrNotConfigured is returned by an action whose subsystem is not set up.
var ErrNotConfigured = errors.New("not configured")

// Builtins returns a registry with every built-in action.
func Builtins(d Deps) *Registry {
	if d.HTTP == nil {
		d.HTTP = &http.Client{}
	}
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	if d.ExecEnv == nil {
		d.ExecEnv = child.Env(os.Environ(), nil, nil)
	}
	r := NewRegistry()
	must := func(name string, f ActionFunc) {
		if err := r.Register(name, f); err != nil {
			panic(err) // a built-in missing from the catalogue is a programming error
		}
	}
	mustChecked := func(name string, check, run ActionFunc) {
		if err := r.Register(name, checked{check: check, run: run}); err != nil {
			panic(err)
		}
	}
	mustChecked("RECONNECT_WA", func(ctx context.Context, p Params) error {
		if d.WhatsApp != nil && d.WhatsApp(p.get("session", DefaultSession)) == nil {
			return fmt.Errorf("remedy has no WhatsApp session %q: %w", p.get("session", DefaultSession), ErrNotApplicable)
		}
		return nil
	}, func(ctx context.Context, p Params) error {
		if d.WhatsApp == nil {
			return fmt.Errorf("WhatsApp %w", ErrNotConfigured)
		}
		r := d.WhatsApp(p.get("session", DefaultSession))
		if r == nil { // removed since the check (a reload)
			return fmt.Errorf("remedy has no WhatsApp session %q: %w", p.get("session", DefaultSession), ErrNotApplicable)
		}
		return r.Reconnect(ctx)
	})
	mustChecked("RESET_DB", func(ctx context.Context, p Params) error {
		if name := p.get("db", "remedy"); d.DBs[name] == nil {
			return fmt.Errorf("remedy has no database %q: %w", name, ErrNotApplicable)
		}
		return nil
	}, func(ctx context.Context, p Params) error {
		return d.DBs[p.get("db", "remedy")].Reopen(ctx)
	})
	mustChecked("CLEAR_QUEUE", func(ctx context.Context, p Params) error {
		if d.Queues == nil {
			return fmt.Errorf("queues %w", ErrNotConfigured)
		}
		if !d.Queues.Has(p["queue"]) {
			return fmt.Errorf("remedy has no queue named %q (a program's own queue is its own to clear): %w", p["queue"], ErrNotApplicable)
		}
		return nil
	}, func(ctx context.Context, p Params) error {
		older, err := p.duration("older_than", 0)
		if err != nil {
			return err
		}
		n, err := d.Queues.Clear(ctx, p["queue"], older, "cleared by policy "+policyOf(ctx))
		if err != nil {
			return err
		}
		fmt.Fprintf(Output(ctx), "moved %d item(s) of queue %s to the dead-letter table\n", n, p["queue"])
		return nil
	})
	must("RESTART_SERVICE", func(ctx context.Context, p Params) error {
		if d.Services == nil {
			return fmt.Errorf("services %w", ErrNotConfigured)
		}
		grace, err := p.duration("grace", 10*time.Second)
		if err != nil {
			return err
		}
		return d.Services.Restart(ctx, p["service"], grace)
	})
	must("RESET_STATE", func(ctx context.Context, p Params) error {
		if len(d.State) == 0 {
			return fmt.Errorf("state %w", ErrNotConfigured)
		}
		ttl, err := p.duration("ttl", time.Hour)
		if err != nil {
			return err
		}
		var errs []error
		for _, s := range d.State {
			n, err := s.ResetState(ctx, p.get("scope", "all"), ttl)
			fmt.Fprintf(Output(ctx), "reset %d stale state item(s)\n", n)
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	must("CLEAN_DATA", func(ctx context.Context, p Params) error {
		if d.Cleaner == nil {
			return fmt.Errorf("data cleaning %w", ErrNotConfigured)
		}
		var rep string
		var err error
		switch p.get("target", "db") {
		case "metrics":
			rep, err = d.Cleaner.PruneMetrics(ctx)
		case "media":
			rep, err = d.Cleaner.PruneMedia(ctx)
		default:
			rep, err = d.Cleaner.CleanDB(ctx)
		}
		fmt.Fprintln(Output(ctx), rep)
		return err
	})
	must("NOTIFY", func(ctx context.Context, p Params) error {
		if d.Notifier == nil {
			return fmt.Errorf("alerts %w", ErrNotConfigured)
		}
		dec, _ := DecisionFrom(ctx)
		return d.Notifier.Notify(ctx, p.get("severity", "warning"), p["text"], dec)
	})
	must("WEBHOOK", func(ctx context.Context, p Params) error { return webhook(ctx, d, p) })
	must("EXEC", func(ctx context.Context, p Params) error { return runCommand(ctx, p, d.ExecEnv) })
	return r
}

func (p Params) get(key, def string) string {
	if v, ok := p[key]; ok && v != "" {
		return v
	}
	return def
}

func (p Params) duration(key string, def time.Duration) (time.Duration, error) {
	v, ok := p[key]
	if !ok || v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}

func policyOf(ctx context.Context) string {
	if d, ok := DecisionFrom(ctx); ok {
		return d.Policy
	}
	return "(manual)"
}
