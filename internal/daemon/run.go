package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	oklog "github.com/oklog/run"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/web"
)

// actor is one named part of a running remedy. run works until its ctx ends, then
// finishes what it took and returns. Its ctx ends only after every actor named in after
// has returned, so shutdown is ordered: intake stops first, the engine finishes what it
// took, and the writers flush last, before the databases close.
type actor struct {
	name  string
	after []string
	run   func(ctx context.Context) error
}

// runActors runs the actors as one oklog/run group: when any returns (ctx's end, a
// failed listener), all are stopped in their order, and their errors are joined.
func runActors(actors []actor) error {
	done := map[string]chan struct{}{}
	for _, a := range actors {
		done[a.name] = make(chan struct{})
	}
	var (
		mu   sync.Mutex
		errs []error
		g    oklog.Group
	)
	for _, a := range actors {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			defer close(done[a.name])
			err := a.run(ctx)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", a.name, err))
				mu.Unlock()
			}
			return err
		}, func(error) {
			// The interrupt must not block (oklog/run calls them one after another): the
			// wait for the predecessors happens in a goroutine that ends with them.
			go func() {
				for _, dep := range a.after {
					<-done[dep]
				}
				cancel()
			}()
		})
	}
	_ = g.Run()
	return errors.Join(errs...)
}

// every runs f every interval until ctx ends (the monitors' periodic chores).
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// Addr is the address the HTTP server listens on (after Run started it).
func (d *Daemon) Addr() string {
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

// Listen opens the HTTP listener (before Run, so a caller can learn the port of ":0").
func (d *Daemon) Listen() error {
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", d.cfg.Listen, err)
	}
	d.ln = ln
	return nil
}

// Run runs remedy until ctx ends, then shuts down in order (each step waits for the ones
// before it): the HTTP server and the monitors stop taking input; the engine processes
// what its inbox holds, lets in-flight actions finish (up to stop_timeout, then abandons
// them as interrupted) and stops; the
// services, the drills, the message queues and the alert pipeline stop (the pipeline
// stores and delivers what it was given); WhatsApp disconnects; the writers write
// everything they hold; then the databases close. The errors of every step are joined.
func (d *Daemon) Run(ctx context.Context) error {
	if d.ln == nil {
		if err := d.Listen(); err != nil {
			return err
		}
	}
	if err := d.sup.StartAll(ctx); err != nil {
		d.log.Error("starting services", "error", err)
	}
	for _, s := range d.sessions.all() {
		// A restart in the middle of a reconnect ladder: its next attempt, restored with
		// the engine's state, makes the next login on the old schedule.
		s.Start(ctx, d.state.ladderOwns(s.Name()))
	}
	intake := []string{"signal", "http", "monitors"}
	actors := []actor{
		{name: "signal", run: func(actx context.Context) error {
			select {
			case <-ctx.Done():
				d.log.Info("shutting down")
				sdNotify("STOPPING=1")
			case <-actx.Done():
			}
			return nil
		}},
		{name: "http", run: d.serveHTTP()},
		{name: "monitors", run: d.runMonitors},
		{name: "engine", after: intake, run: func(actx context.Context) error {
			d.loop(actx) // returns after processing what the inbox held
			d.stopping.Store(true)
			err := d.stopActions() // in-flight attempts finish (or are interrupted at stop_timeout) and write their audit
			d.drain()              // their results are recorded (no new action starts)
			d.stopActs()
			return err
		}},
		{name: "engine state", after: []string{"engine"}, run: d.runStateWriter},
		{name: "services", after: []string{"engine"}, run: func(actx context.Context) error {
			<-actx.Done()
			return waitStep(d.log, "services", 20*time.Second, d.servicesUp, func(sctx context.Context) error {
				return d.sup.StopAll(sctx, 5*time.Second)
			})
		}},
		{name: "drills", after: []string{"engine"}, run: func(actx context.Context) error {
			<-actx.Done()
			d.drill.shutdown() // a database drill's lock is released and its writes finish
			return nil
		}},
		{name: "alerts", after: []string{"engine"}, run: func(actx context.Context) error {
			d.pipeline.Run(actx)
			what := func() string { return "the alert pipeline to store and deliver what it holds" }
			_ = waitStep(d.log, "alerts", 10*time.Second, what, func(fctx context.Context) error { d.pipeline.Flush(fctx); return nil })
			return nil
		}},
	}
	if len(*d.sessionCfgs.Load()) > 0 {
		// The sessions stop after the engine (no action touches them any more) and the
		// alerts (WhatsApp alerts still go out through them): each one's queues finish,
		// then its socket closes.
		actors = append(actors, actor{name: "sessions", after: []string{"engine", "alerts"}, run: d.runSessions})
	}
	var producers []string
	for _, a := range actors {
		producers = append(producers, a.name)
	}
	for _, w := range []struct {
		name string
		w    rowWriter
	}{{"journal", d.writers.journal}, {"audit", d.writers.audit}, {"samples", d.writers.samples}} {
		actors = append(actors, actor{name: "writer " + w.name, after: producers, run: func(actx context.Context) error {
			return runWriter(actx, d.log, w.name, w.w, writerDrain)
		}})
	}
	d.log.Info("remedy running", "listen", d.Addr(), "data", d.cfg.DataDir, "policies", len(d.set.Load().Policies), "dry_run", d.cfg.DryRun)
	sdNotify("READY=1")
	err := runActors(actors)
	d.writers.close()
	if cerr := d.data.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	d.log.Info("stopped")
	return err
}

// serveHTTP serves the API and the dashboard until stopped; it returns once the
// requests in flight have been answered (an ingest waits for its commit).
func (d *Daemon) serveHTTP() func(ctx context.Context) error {
	return func(ctx context.Context) error {
		wopts := d.webOptions()
		if len(*d.sessionCfgs.Load()) > 0 {
			// The sessions as they are at each call (a reload may restart one); web's
			// single-number routes act on the only one or ?session= through them.
			wopts.IncomingMedia = d.incomingMedia
			wopts.Sessions = webSessions{d}
		}
		srv := &http.Server{Handler: web.NewServer(wopts),
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		shut := make(chan error, 1)
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			shut <- srv.Shutdown(sctx)
		}()
		err := srv.Serve(d.ln)
		if errors.Is(err, http.ErrServerClosed) {
			return <-shut
		}
		return err // the listener failed: the group stops; the Shutdown goroutine ends with ctx
	}
}

// runMonitors runs the periodic sources until ctx ends and waits for them.
func (d *Daemon) runMonitors(ctx context.Context) error {
	var wg sync.WaitGroup
	goRun := func(f func(context.Context)) { wg.Go(func() { f(ctx) }) }
	goRun(func(ctx context.Context) { d.data.Main.RunHealth(ctx, d.cfg.CheckInterval) })
	goRun(func(ctx context.Context) { d.data.Metrics.DB().RunHealth(ctx, d.cfg.CheckInterval) })
	goRun(func(ctx context.Context) { d.sup.RunHealth(ctx, d.cfg.CheckInterval) })
	goRun(func(ctx context.Context) { d.health.RunScheduled(ctx, d.cfg.HealthInterval, d.emit) })
	goRun(func(ctx context.Context) { d.sampler.Run(ctx, func(s engine.Sample) { d.inbox.push(s) }) })
	goRun(d.compactMetrics)
	goRun(d.prune)
	goRun(d.keepReserve)
	goRun(func(ctx context.Context) {
		if err := d.reporter.Schedule(ctx, d.cfg.ReportSchedule, d.cfg.Location()); err != nil {
			d.log.Error("daily report", "error", err)
		}
	})
	if d.cfg.WatchPolicies && d.cfg.Policies != "" {
		goRun(d.watchPolicies)
	}
	goRun(d.watchdog)
	<-ctx.Done()
	wg.Wait()
	return nil
}
