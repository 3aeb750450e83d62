package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// File names in the data directory.
const (
	RemedyFile  = "remedy.db"
	MetricsFile = "monitoring_metrics.sqlite"
	ReserveFile = ".remedy-reserve"
	// ReserveSize is the ballast kept for priority writes on a full disk. With the
	// spools (SpoolSize each: the journal's, the audit's, and the inbound WhatsApp
	// messages') remedy holds 16 MiB from its first second.
	ReserveSize = 10 << 20
	// SpoolSize is one spool: a writer's rows past its memory limit (see Writer), or the
	// incoming messages the inbound queue could not take.
	SpoolSize = 2 << 20
)

// Data is remedy's data directory: remedy.db, the metrics database and the reserve.
type Data struct {
	Main    *DB
	Metrics *Metrics
	Reserve *Reserve
	// reserveErr is why the reserve is missing (nil while it is held): a disk already full
	// at the first start, or one that has not had room since. See ReserveErr.
	reserveErr atomic.Pointer[error]
	Dir        string
	lock       *os.File
}

// OpenData opens (creating if needed) the databases in dir. events receives their DB_*
// events. A full disk releases the reserve for writes to remedy.db; metric writes are
// shed instead.
// tune, if given, adjusts both databases' options.
func OpenData(ctx context.Context, dir string, events func(engine.Event), tune ...func(*Options)) (*Data, error) {
	// The directory first: on a first run the reserve must be made before anything else
	// can fill the disk.
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	d := &Data{Dir: dir, lock: lock}
	var rerr error
	if d.Reserve, rerr = NewReserve(filepath.Join(dir, ReserveFile), ReserveSize); rerr != nil {
		d.setReserveErr(rerr)
		// A disk too full for the reserve must not stop remedy from starting; the
		// daemon shows it and tries again (RestoreReserve).
		d.Reserve = &Reserve{path: filepath.Join(dir, ReserveFile), size: ReserveSize}
	}
	onFull := func() bool { return d.Reserve.Release() }
	apply := func(o Options) Options {
		o.Repair = true // remedy must start over its own damaged database
		for _, f := range tune {
			f(&o)
		}
		return o
	}
	if d.Main, err = Open(ctx, apply(Options{Path: filepath.Join(dir, RemedyFile), Name: "remedy", Schema: RemedySchema,
		Events: events, OnFull: onFull, CreatePragmas: []string{retentionPragma}})); err != nil {
		lock.Close()
		return nil, err
	}
	if d.Metrics, err = OpenMetrics(ctx, apply(Options{Path: filepath.Join(dir, MetricsFile), Name: "metrics", Events: events})); err != nil {
		d.Main.Close()
		lock.Close()
		return nil, err
	}
	return d, nil
}

// RestoreReserve makes the reserve again when it is missing and the disk has room for
// it and as much again, so restoring it never fills the disk itself. It returns the
// reserve's state: nil when held.
func (d *Data) RestoreReserve() error {
	if d.Reserve.Held() {
		d.setReserveErr(nil)
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.Dir, &st); err == nil && int64(st.Bavail)*int64(st.Bsize) < 2*ReserveSize {
		err := fmt.Errorf("the disk is full or nearly: %d MiB free, the reserve waits for %d MiB", int64(st.Bavail)*int64(st.Bsize)>>20, 2*ReserveSize>>20)
		d.setReserveErr(err)
		return err
	}
	err := d.Reserve.Restore()
	d.setReserveErr(err)
	return err
}

// ReserveErr is why the reserve is missing (nil while it is held), as of its last
// attempt: made at open and again by RestoreReserve. Safe for concurrent use.
func (d *Data) ReserveErr() error {
	if p := d.reserveErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (d *Data) setReserveErr(err error) {
	if err == nil {
		d.reserveErr.Store(nil)
		return
	}
	d.reserveErr.Store(&err)
}

// Close closes both databases.
func (d *Data) Close() error {
	err := errors.Join(d.Metrics.Close(), d.Main.Close())
	if d.lock != nil {
		d.lock.Close() // releases the directory for the next remedy
	}
	return err
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
	if err == nil && !d.Reserve.Held() {
		if rerr := d.Reserve.Restore(); rerr != nil {
			msg += "; reserve not restored: " + rerr.Error()
		}
	}
	return msg, err
}
