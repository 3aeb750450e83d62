package daemon

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/remedy-run/remedy/actions"
	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
)

// journalRow is one row of the journal: an event or a decision (one of the two).
type journalRow struct {
	Event    *engine.Event    `json:"event,omitempty"`
	Decision *engine.Decision `json:"decision,omitempty"`
}

// writers own remedy's tables; each is the only writer of its rows at run time:
//
//	journal  events and decisions (remedy.db)
//	audit    the actions audit (remedy.db)
//	samples  metric samples (the metrics database); shed first, counted
//
// The alert pipeline owns alerts and their outbox, the queues their items, the health
// check its state row. Every writer keeps what it could not write and retries in order;
// the journal and the audit spill past their memory limit into a spool file carved out of
// the reserve's space.
type writers struct {
	journal *store.Writer[journalRow]
	audit   *store.Writer[store.AuditEntry]
	samples *store.Writer[engine.Sample]
	spools  []interface{ Close() error }
}

// spoolFile is a writer's spool in the data directory.
func spoolFile(dir, name string) string { return filepath.Join(dir, ".remedy-spool-"+name) }

func newWriters(data *store.Data, log *slog.Logger, backlog func(string, int, error)) (*writers, error) {
	w := &writers{}
	jsp, jerr := store.OpenSpool[journalRow](spoolFile(data.Dir, "journal"), store.SpoolSize)
	asp, aerr := store.OpenSpool[store.AuditEntry](spoolFile(data.Dir, "audit"), store.SpoolSize)
	if err := errors.Join(jerr, aerr); err != nil {
		// A disk too full for the spools must not stop remedy: memory keeps the rows.
		log.Error("writer spool not made; rows past the memory limit would be lost", "error", err)
	}
	if jsp != nil {
		w.spools = append(w.spools, jsp)
	}
	if asp != nil {
		w.spools = append(w.spools, asp)
	}
	w.journal = store.NewWriter(store.WriterOptions[journalRow]{Name: "journal", Limit: 100_000, Spool: jsp,
		Backlog: backlog, Logger: log,
		Write: func(ctx context.Context, rows []journalRow) error {
			var evs []engine.Event
			var ds []engine.Decision
			for _, r := range rows {
				if r.Event != nil {
					evs = append(evs, *r.Event)
				}
				if r.Decision != nil {
					ds = append(ds, *r.Decision)
				}
			}
			return data.Main.InsertJournal(ctx, evs, ds)
		}})
	w.audit = store.NewWriter(store.WriterOptions[store.AuditEntry]{Name: "audit", Limit: 10_000, Spool: asp,
		Backlog: backlog, Logger: log, Write: data.Main.InsertAudit})
	// An hour of samples at one a second; past it the oldest are shed.
	w.samples = store.NewWriter(store.WriterOptions[engine.Sample]{Name: "samples", Limit: 3_600, Shed: true,
		MaxBatch: 100, Backlog: backlog, Logger: log,
		Write: func(ctx context.Context, ss []engine.Sample) error {
			var pts []store.Point
			for _, s := range ss {
				for name, v := range s.Values {
					pts = append(pts, store.Point{Time: s.Time, Name: name, Value: v})
				}
			}
			return data.Metrics.Insert(ctx, pts)
		}})
	return w, nil
}

// backlog is the rows waiting in every writer, by writer.
func (w *writers) backlog() map[string]int {
	return map[string]int{"journal": w.journal.Len(), "audit": w.audit.Len(), "samples": w.samples.Len()}
}

func (w *writers) close() {
	for _, s := range w.spools {
		s.Close()
	}
}

// auditSink is the executor's audit: attempts go to the audit writer.
type auditSink struct {
	w *store.Writer[store.AuditEntry]
}

var _ actions.AuditSink = auditSink{}

// RecordAttempt hands the attempt to the audit writer; it never fails (a failed write
// is kept and retried by the writer).
func (s auditSink) RecordAttempt(_ context.Context, a actions.Attempt) error {
	s.w.Add(store.AuditEntry{Time: a.Start, Policy: a.Policy, Instance: a.Instance, DecisionID: a.DecisionID,
		Action: a.Action, Step: a.Step, Attempt: a.Attempt, Params: a.Params, Duration: a.Duration,
		Outcome: a.Outcome, Error: a.Error, Output: a.Output})
	return nil
}

// storeBacklog reports a writer's backlog as STORE_BACKLOG (rows waiting after a failed
// write) and STORE_BACKLOG_CLEARED (all written).
func (d *Daemon) storeBacklog(name string, rows int, err error) {
	ev := engine.Event{Time: time.Now(), Code: "STORE_BACKLOG_CLEARED", Source: "store", Labels: map[string]string{"writer": name}}
	if err != nil {
		ev.Code, ev.Message, ev.Value = "STORE_BACKLOG", err.Error(), float64(rows)
		d.log.Error("store backlog: rows wait to be written", "writer", name, "rows", rows, "error", err)
	} else {
		d.log.Info("store backlog written", "writer", name)
	}
	d.emit(ev)
}
