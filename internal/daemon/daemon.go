// Package daemon is `remedy run`: it opens the components in order, runs the engine in
// one goroutine fed by every source, hands decisions to the executor, the alert pipeline,
// the recorder and the dashboard, reloads policies on request, and closes everything in
// reverse on shutdown.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedy-run/remedy/actions"
	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/alert"
	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/child"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/service"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/policies"
	"github.com/remedy-run/remedy/web"
)

// Version is set at build time (-ldflags "-X …daemon.Version=…").
var Version = "dev"

// Daemon is a running remedy: it wires the components (New), runs them as named actors
// (Run) and stops them in order. The engine and its inbox belong to the embedded runner;
// every table to one writer (writers, the alert pipeline, the queues).
type Daemon struct {
	runner
	cfg     *config.Config
	log     *slog.Logger
	started time.Time

	data     *store.Data
	pruner   *store.Pruner // remedy.db's retention (retention.go)
	dbProbe  probeMemo     // the last database probe, shared by /readyz and the status (probes.go)
	writers  *writers
	exec     *actions.Executor
	actCtx   context.Context // actions' parent; cancelled when the engine stops
	stopActs context.CancelFunc
	pipeline *alert.Pipeline
	reporter *alert.Reporter
	sup      *service.Supervisor
	counters *monitor.Counters
	sampler  *monitor.Sampler
	metrics  *monitor.Metrics
	registry *prometheus.Registry
	health   *monitor.Health
	hub      *web.Hub
	bot      chat.Handler // the in-process handler (WithHandler), or nil
	sessions sessionSet   // the WhatsApp numbers (none when WhatsApp is off)
	ln       net.Listener

	// The sessions as configured (config.Sessions, again at each reload) and their runs.
	sessionCfgs atomic.Pointer[[]config.Session]
	runs        sessionRuns
	reloading   sync.Mutex // one sessions reload at a time
	checks      []string   // the sessions' readiness checks' names
	opts        options

	set        atomic.Pointer[policies.Set]
	stamp      atomic.Pointer[string] // the policy files as last loaded, for the watch
	lastReload atomic.Pointer[web.ReloadStatus]
	drill      drillState
	firing     atomic.Int64 // engine.Firing() as of the last decisions, published by the loop
	state      engineState  // persisted engine state (state.go)
}

// Option adjusts a daemon (for tests and embedders).
type Option func(*options)

type options struct {
	handler   chat.Handler
	waHTTP    *http.Client
	host      monitor.Host
	storeTune []func(*store.Options)
}

// withoutSelfHealing turns the store's own recovery off: no retry, no rebuild of a file
// found damaged at open (the fault drills' recovery-off baseline, with dry_run: what a
// bot without remedy gets).
func withoutSelfHealing() Option {
	return func(o *options) {
		o.storeTune = append(o.storeTune, func(so *store.Options) {
			so.Retry = store.Retry{Off: true, Initial: time.Millisecond, Max: time.Millisecond}
			so.Repair = false
		})
	}
}

// WithHandler makes h the bot's handler, in process, instead of whatsapp.handler's
// webhook (package bot). If h is also a chat.EventHandler it gets receipts and send
// outcomes.
func WithHandler(h chat.Handler) Option { return func(o *options) { o.handler = h } }

// WithWhatsAppHTTP makes the WhatsApp client dial through h (tests: a fake server).
func WithWhatsAppHTTP(h *http.Client) Option { return func(o *options) { o.waHTTP = h } }

// WithHost makes the sampler read the host through h instead of gopsutil (tests: a
// fixed, healthy host, so that the machine's load raises no host alert of its own).
func WithHost(h monitor.Host) Option { return func(o *options) { o.host = h } }

// New opens the data directory and builds the components; nothing runs yet. A policy
// set with errors stops it here, with every error; so does a data directory that another
// remedy holds (store.ErrInUse). What was opened before a failure is closed again.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (_ *Daemon, err error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	d := &Daemon{cfg: cfg, log: log, started: time.Now(), hub: web.NewHub(), bot: o.handler, opts: o}
	stamp := policyStamp(cfg.Policies)
	d.stamp.Store(&stamp)
	set, err := cfg.LoadPolicies()
	if err != nil {
		return nil, err
	}
	log.Info("policies loaded", "policies", set.Summary())
	d.set.Store(set)
	d.lastReload.Store(&web.ReloadStatus{OK: true, Time: time.Now(), Files: set.Files})
	for _, w := range set.Warnings {
		log.Warn("policy warning", "warning", w.String())
	}
	d.runner = newRunner(engine.New(set, engine.Options{Seed: uint64(time.Now().UnixNano()), Location: cfg.Location()}))
	d.runner.effects, d.runner.reload = d.effects, d.reload
	tune := append([]func(*store.Options){func(so *store.Options) { so.Progress = rebuildProgress(log, so.Name) }}, o.storeTune...)
	if d.data, err = store.OpenData(ctx, cfg.DataDir, d.emit, tune...); err != nil {
		return nil, err
	}
	d.pruner = store.NewPruner(d.data.Main, cfg.Retention.Keep())
	undo = append(undo, func() { d.data.Close() })
	if err := d.data.ReserveErr(); err != nil {
		log.Error("the disk reserve could not be made; a full disk will refuse events and alerts until it is", "error", err)
	}
	// For `remedy replay --from DATA_DIR`: the time zone and policies this run uses.
	if err := cfg.WriteRunInfo(VersionString()); err != nil {
		log.Warn("the run information for remedy replay was not written", "error", err)
	}
	if d.writers, err = newWriters(d.data, log, d.storeBacklog); err != nil {
		return nil, err
	}
	undo = append(undo, d.writers.close)
	d.registry = prometheus.NewRegistry()
	d.counters = monitor.NewCounters()
	if err := d.openSessions(ctx, o); err != nil {
		return nil, err
	}
	undo = append(undo, func() {
		for _, s := range d.sessions.all() {
			s.Close()
		}
	})
	d.sup = service.NewSupervisor(d.emit, log)
	for _, s := range cfg.Services {
		if err := d.sup.Add(service.NewProcess(service.ProcessConfig{Name: s.Name, Command: s.Command, Dir: s.Dir,
			Env: s.Env, PassEnv: s.PassEnv, HealthURL: s.HealthURL, Grace: s.Grace, MaxMemoryMB: s.MaxMemoryMB})); err != nil {
			return nil, err
		}
	}
	d.sampler = monitor.NewSampler(monitor.SamplerOptions{Interval: cfg.SampleInterval, DataDir: cfg.DataDir, Host: o.host,
		Counters: d.counters, Sources: []monitor.Source{d.poolSource, d.stateSource, d.sessions.source, d.storeSource}, Logger: log})
	d.metrics = monitor.NewMetrics(d.registry, d.sampler.Last)
	d.registry.MustRegister(retentionCollector{d.pruner})
	perMinute := map[string]int{"whatsapp": cfg.WhatsApp.SendPerMinute}
	for k, v := range cfg.Alerts.PerMinute {
		perMinute[k] = v
	}
	if d.pipeline, err = alert.New(ctx, alert.Options{DB: d.data.Main, Channels: d.channels(), PerMinute: perMinute,
		Events: d.emit, Metrics: d.metrics, Logger: log, LabelNames: func() []string { return d.set.Load().LabelNames() }}); err != nil {
		return nil, err
	}
	d.reporter = &alert.Reporter{DB: d.data.Main, Metrics: d.data.Metrics, Pipeline: d.pipeline, Logger: log,
		OnReport: func(at time.Time, body string) { d.hub.Publish("report", map[string]any{"time": at, "report": body}) },
		Sessions: d.sessions.names}
	d.actCtx, d.stopActs = context.WithCancel(context.Background())
	d.exec = actions.NewExecutor(actions.ExecutorOptions{
		Registry: actions.Builtins(actions.Deps{
			WhatsApp:     d.reconnector(),
			Queues:       d.queues(),
			DBs:          map[string]actions.DBResetter{"remedy": d.data.Main, "metrics": d.data.Metrics.DB()},
			Services:     d.sup,
			State:        []actions.StateResetter{d.data.Main},
			Cleaner:      dataCleaner{d.data, d.pruner, d},
			Notifier:     notifier{d},
			ExecEnv:      child.Env(os.Environ(), cfg.ExecPassEnv, nil),
			WebhookHosts: cfg.WebhookHosts,
		}),
		Audit: auditSink{d.writers.audit}, Results: d.emit, DryRun: cfg.DryRun, Logger: log,
	})
	d.health = monitor.NewHealth()
	d.health.AddState("database_writable", d.databaseReady)
	d.health.Add("engine", func(ctx context.Context) error {
		if n := d.inbox.len(); n > 10_000 {
			return fmt.Errorf("%d inputs waiting", n)
		}
		// Responsiveness, not activity: an idle loop answers at once. The bound is the
		// probe's context (5 s, monitor.Health.Run).
		if err := d.query(ctx, func(*engine.Engine) {}); err != nil {
			return fmt.Errorf("the engine loop did not answer a ping: %w", err)
		}
		return nil
	})
	d.health.Add("store_backlog", d.backlogHealth)
	d.restoreState(ctx)
	d.addSessionChecks()
	d.registry.MustRegister(d.whatsAppStateSet())
	return d, nil
}

func (d *Daemon) channels() []alert.Channel {
	chans := []alert.Channel{alert.LogChannel{Logger: d.log}, alert.DashboardChannel{}}
	if w := d.cfg.Alerts.Webhook; w != nil {
		var secret []byte
		if w.SecretEnv != "" {
			secret = []byte(os.Getenv(w.SecretEnv))
		}
		chans = append(chans, alert.WebhookChannel{URL: w.URL, Secret: secret, Client: &http.Client{}})
	}
	if slices.ContainsFunc(d.cfg.Sessions(), func(s config.Session) bool { return len(s.Admins) > 0 }) {
		chans = append(chans, alert.WhatsAppChannel{Numbers: d.sessions.alertNumbers})
	}
	if am := d.cfg.Alerts.Alertmanager; am != nil {
		chans = append(chans, alert.AlertmanagerChannel{URL: am.URL, Client: &http.Client{}, Source: d.cfg.Alerts.InstanceLabel})
	}
	return chans
}

// emit is how every source reaches the engine; it never blocks.
func (d *Daemon) emit(ev engine.Event) { d.inbox.push(ev) }

// compactMetrics keeps the metrics database bounded: hourly rollup and retention.
func (d *Daemon) compactMetrics(ctx context.Context) {
	every(ctx, time.Hour, func() {
		if _, err := d.data.Metrics.Compact(ctx, time.Now(), store.DefaultRetention); err != nil {
			d.log.Warn("metrics compaction", "error", err)
		}
	})
}

// queues is CLEAR_QUEUE's target: every session's queues (nil with WhatsApp off: no queues).
func (d *Daemon) queues() actions.QueueClearer {
	var qs []*queue.Queue
	for _, s := range d.sessions.all() {
		qs = append(qs, s.QueueList()...)
	}
	if len(qs) == 0 {
		return nil
	}
	return queue.NewManager(qs...)
}

// reconnector is RECONNECT_WA's target: a running session by name (nil, and so "not
// configured", with WhatsApp off; a nil Reconnector for a session that does not run).
func (d *Daemon) reconnector() func(string) actions.Reconnector {
	if len(d.cfg.Sessions()) == 0 {
		return nil // WhatsApp off (whatsapp.enabled is not reloaded)
	}
	return func(name string) actions.Reconnector {
		if s := d.sessions.get(name); s != nil {
			return s
		}
		return nil
	}
}

// notifier is NOTIFY: a custom alert through the pipeline.
type notifier struct{ d *Daemon }

func (n notifier) Notify(ctx context.Context, severity, text string, dec engine.Decision) error {
	return n.d.pipeline.Handle(ctx, engine.Decision{Time: time.Now(), Kind: engine.KindAlert, Policy: dec.Policy,
		Instance: dec.Instance, Labels: dec.Labels, Severity: policies.Severity(severity), State: engine.Firing,
		Alert: &engine.AlertNote{Summary: text, Instant: true}, Reason: engine.Reason{Text: "NOTIFY action"}}) // a message, not an incident: never resolved
}
