package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/web"
)

// ingestTimeout bounds how long an API request waits for its commit before it is
// answered 503 (the store's own retry of a lock is longer: a client is better told to
// come back than kept waiting).
const ingestTimeout = 5 * time.Second

// Ingest takes inputs from the API: it commits them to disk (events to the journal,
// samples to the metrics database, in the transaction the writer shares among the
// requests waiting: group commit) and only then queues them for the engine, marked as
// stored. It returns web.ErrOverloaded when the inbox or the writer is at its bound and
// web.ErrNotStored when the commit failed or took longer than ingestTimeout; in both
// cases nothing was stored (a commit that raced the deadline may be; a client that posts
// again then records it twice, never zero times).
//
// A time ahead of this machine's clock (the API accepts up to 5 minutes, for clients
// whose clocks drift) is taken as the arrival time, so no client moves the engine's
// timers (engine.NotAfter; field case b2-08).
func (d *Daemon) Ingest(ctx context.Context, ins []engine.Input) error {
	if !d.inbox.room(len(ins)) {
		return web.ErrOverloaded
	}
	now := time.Now()
	for i, in := range ins {
		ins[i] = engine.NotAfter(in, now)
	}
	var evs []journalRow
	var ss []engine.Sample
	for _, in := range ins {
		switch x := in.(type) {
		case engine.Event:
			evs = append(evs, journalRow{Event: &x})
		case engine.Sample:
			ss = append(ss, x)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, ingestTimeout)
	defer cancel()
	err := d.writers.journal.Commit(ctx, evs...)
	if err == nil {
		err = d.writers.samples.Commit(ctx, ss...)
	}
	switch {
	case errors.Is(err, store.ErrOverloaded):
		return web.ErrOverloaded
	case err != nil:
		return fmt.Errorf("%w: %v", web.ErrNotStored, err)
	}
	its := make([]item, len(ins))
	for i, in := range ins {
		its[i] = item{in: in, stored: true}
	}
	d.inbox.add(its...)
	return nil
}

// backlog is the rows waiting in every writer and the alert pipeline.
func (d *Daemon) backlog() int {
	n := d.pipeline.Backlog() + d.sessions.inboundWaiting()
	for _, v := range d.writers.backlog() {
		n += v
	}
	return n
}

// storeSource reports the writers' backlog and the disk's state as metrics
// (store_backlog_rows drives the default store-backlog policy).
func (d *Daemon) storeSource(ctx context.Context) map[string]float64 {
	v := map[string]float64{"store_backlog_rows": float64(d.backlog()),
		"store_rows_lost": float64(d.writers.journal.Lost() + d.writers.audit.Lost()),
		"samples_shed":    float64(d.writers.samples.Shed() + d.data.Metrics.Shed() + d.inbox.dropped.Load())}
	for name, n := range d.writers.backlog() {
		v["store_backlog_"+name] = float64(n)
	}
	v["store_backlog_alerts"] = float64(d.pipeline.Backlog())
	v["store_backlog_inbound"] = float64(d.sessions.inboundWaiting())
	v["store_reserve_held"] = 0
	if d.data.Reserve.Held() {
		v["store_reserve_held"] = 1
	}
	return v
}

// backlogHealth fails readiness while a writer holds rows after a failed write.
func (d *Daemon) backlogHealth(context.Context) error {
	var failing []string
	if d.writers.journal.Failing() {
		failing = append(failing, "journal")
	}
	if d.writers.audit.Failing() {
		failing = append(failing, "audit")
	}
	if d.pipeline.Backlog() > 0 {
		failing = append(failing, "alerts")
	}
	if d.sessions.inboundWaiting() > 0 {
		failing = append(failing, "inbound")
	}
	if len(failing) == 0 {
		return nil
	}
	return fmt.Errorf("%d rows wait to be written (%v)", d.backlog(), failing)
}

// disk describes the data directory's disk for the dashboard, !status and the API: "ok",
// "full: …" while writes fail for lack of space, "reserve missing: …".
func (d *Daemon) disk() string {
	if f := d.data.Main.Full(); f != "" {
		return "full: " + f
	}
	if f := d.data.Metrics.DB().Full(); f != "" {
		return "full (metrics shed): " + f
	}
	if !d.data.Reserve.Held() {
		if err := d.data.ReserveErr(); err != nil {
			return "reserve missing: " + err.Error()
		}
		return "reserve released (the disk was full)"
	}
	return "ok"
}

// keepReserve makes the reserve again once the disk has room (every check interval).
func (d *Daemon) keepReserve(ctx context.Context) {
	every(ctx, d.cfg.CheckInterval, func() {
		if !d.data.Reserve.Held() && d.data.RestoreReserve() == nil {
			d.log.Info("disk reserve made again")
		}
	})
}
