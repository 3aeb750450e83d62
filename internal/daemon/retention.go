package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/web"
)

// pruneEvery is how often remedy.db's retention runs: hourly, as the metrics' compaction.
const pruneEvery = time.Hour

// dataCleaner is CLEAN_DATA's subsystem: target db repairs remedy.db; target metrics
// (db-full, disk-low) prunes the samples and then remedy.db sooner than its retention
// (store.Pruner.Sooner, down to store.FloorKeep), so a full disk gets back what
// retention allows and not only the metrics' share; target media deletes the uploads
// no queued message needs.
type dataCleaner struct {
	*store.Data
	pruner *store.Pruner
	d      *Daemon
}

// PruneMetrics frees space: the metrics' samples, then remedy.db's history early.
func (c dataCleaner) PruneMetrics(ctx context.Context) (string, error) {
	rep, err := c.Data.PruneMetrics(ctx)
	more, perr := c.pruner.Sooner(ctx, time.Now())
	if perr != nil {
		more += ": " + perr.Error()
	}
	if err == nil {
		err = perr
	}
	return rep + "; " + more, err
}

// integrityView is the last full integrity check, read from memory.
func integrityView(st store.IntegrityStatus, now time.Time) web.Integrity {
	v := web.Integrity{Result: st.Result, Checked: st.Checked, TookMS: st.Took.Milliseconds(), Running: st.Running}
	if !st.Checked.IsZero() {
		v.AgeSeconds = now.Sub(st.Checked).Seconds()
	}
	return v
}

// retentionView is the pruner's last pass, read from memory.
func retentionView(st store.RetentionStatus, now time.Time) web.Retention {
	v := web.Retention{LastRun: st.At, Error: st.Err, FreeBytes: st.FreeBytes, Tables: []web.RetentionTable{}}
	for _, t := range st.Tables {
		rt := web.RetentionTable{Table: t.Table, KeepSeconds: t.Keep.Seconds(), Pruned: t.Pruned}
		if !t.Oldest.IsZero() {
			rt.OldestAgeSeconds = max(0, now.Sub(t.Oldest).Seconds())
		}
		v.Tables = append(v.Tables, rt)
	}
	return v
}

// retentionCollector exposes the pruner's figures on /metrics (read at scrape time
// from memory; the pruner computes them once a pass).
type retentionCollector struct{ p *store.Pruner }

var (
	retentionPrunedDesc = prometheus.NewDesc("remedy_retention_pruned_rows_total",
		"Rows of remedy.db deleted past their retention since remedy started, by table.", []string{"table"}, nil)
	retentionOldestDesc = prometheus.NewDesc("remedy_retention_oldest_row_age_seconds",
		"Age of the oldest row of a table under retention, as of the last pruning pass (0: empty).", []string{"table"}, nil)
	retentionKeepDesc = prometheus.NewDesc("remedy_retention_keep_seconds",
		"How long a table's rows are kept (retention: in the configuration).", []string{"table"}, nil)
	dbFreeDesc = prometheus.NewDesc("remedy_db_free_bytes",
		"Free pages in remedy.db as of the last pruning pass: space pruning freed that SQLite reuses; a file with auto_vacuum incremental gives it back to the disk.", nil, nil)
	retentionRunDesc = prometheus.NewDesc("remedy_retention_last_run_timestamp_seconds",
		"End of the last pruning pass (0: none yet).", nil, nil)
)

func (c retentionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- retentionPrunedDesc
	ch <- retentionOldestDesc
	ch <- retentionKeepDesc
	ch <- dbFreeDesc
	ch <- retentionRunDesc
}

func (c retentionCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Status()
	now := time.Now()
	for _, t := range st.Tables {
		ch <- prometheus.MustNewConstMetric(retentionPrunedDesc, prometheus.CounterValue, float64(t.Pruned), t.Table)
		age := 0.0
		if !t.Oldest.IsZero() {
			age = max(0, now.Sub(t.Oldest).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(retentionOldestDesc, prometheus.GaugeValue, age, t.Table)
		ch <- prometheus.MustNewConstMetric(retentionKeepDesc, prometheus.GaugeValue, t.Keep.Seconds(), t.Table)
	}
	ch <- prometheus.MustNewConstMetric(dbFreeDesc, prometheus.GaugeValue, float64(st.FreeBytes))
	last := 0.0
	if !st.At.IsZero() {
		last = float64(st.At.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(retentionRunDesc, prometheus.GaugeValue, last)
}

// prune runs remedy.db's retention until ctx ends (an actor of runMonitors).
func (d *Daemon) prune(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		if n, err := d.pruner.Prune(ctx, time.Now()); err != nil && ctx.Err() == nil {
			d.log.Warn("retention", "error", err)
		} else if total := sum(n); total > 0 {
			d.log.Info("retention pruned rows past their time", "rows", total)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}
