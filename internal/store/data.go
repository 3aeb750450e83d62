package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/remedy-run/remedy/actions"
	"github.com/remedy-run/remedy/engine"
)

// File names in the data directory.
const (
	RemedyFile  = "remedy.db"
	MetricsFile = "monitoring_metrics.sqlite"
	ReserveFile = ".remedy-reserve"
	// ReserveSize is the ballast kept for priority writes on a full disk.
	ReserveSize = 16 << 20
)

// Data is remedy's data directory: remedy.db, the metrics database and the reserve.
type Data struct {
	Main    *DB
	Metrics *Metrics
	Reserve *Reserve
}

// OpenData opens (creating if needed) the databases in dir. events receives their DB_*
// events. A full disk releases the reserve for writes to remedy.db; metric writes are
// shed instead.
// tune, if given, adjusts both databases' options.
func OpenData(ctx context.Context, dir string, events func(engine.Event), tune ...func(*Options)) (*Data, error) {
	d := &Data{}
	var err error
	if d.Reserve, err = NewReserve(filepath.Join(dir, ReserveFile), ReserveSize); err != nil {
		// A disk too full for the reserve must not stop remedy from starting.
		d.Reserve = nil
	}
	onFull := func() bool { return d.Reserve != nil && d.Reserve.Release() }
	apply := func(o Options) Options {
		o.Repair = true // remedy must start over its own damaged database
		for _, f := range tune {
			f(&o)
		}
		return o
	}
	if d.Main, err = Open(ctx, apply(Options{Path: filepath.Join(dir, RemedyFile), Name: "remedy", Schema: RemedySchema,
		Events: events, OnFull: onFull})); err != nil {
		return nil, err
	}
	if d.Metrics, err = OpenMetrics(ctx, apply(Options{Path: filepath.Join(dir, MetricsFile), Name: "metrics", Events: events})); err != nil {
		d.Main.Close()
		return nil, err
	}
	return d, nil
}

var _ actions.DataCleaner = (*Data)(nil)

// Close closes both databases.
func (d *Data) Close() error {
	return errors.Join(d.Metrics.Close(), d.Main.Close())
}

// CleanDB is CLEAN_DATA with target db: repair remedy.db (rebuild if corrupt, otherwise
// quarantine unparseable rows).
func (d *Data) CleanDB(ctx context.Context) (string, error) {
	rep, err := d.Main.Clean(ctx)
	return rep.String(), err
}

// PruneMetrics is CLEAN_DATA with target metrics: roll up and prune samples, then put the
// reserve back if there is room.
func (d *Data) PruneMetrics(ctx context.Context) (string, error) {
	rep, err := d.Metrics.Prune(ctx, time.Now(), DefaultRetention)
	msg := fmt.Sprintf("rolled up %d, deleted %d raw samples and %d old rollups", rep.RolledUp, rep.RawDeleted, rep.RollupsDeleted)
	if err == nil && d.Reserve != nil && !d.Reserve.Held() {
		if rerr := d.Reserve.Restore(); rerr != nil {
			msg += "; reserve not restored: " + rerr.Error()
		}
	}
	return msg, err
}
