package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// Point is one metric value at one time.
type Point struct {
	Time  time.Time
	Name  string
	Value float64
}

// Retention says how long samples are kept.
type Retention struct {
	Raw    time.Duration // raw samples (default 48 h)
	Minute time.Duration // 1-minute rollups (default 30 days)
}

// DefaultRetention keeps raw samples 48 hours and 1-minute averages 30 days.
var DefaultRetention = Retention{Raw: 48 * time.Hour, Minute: 30 * 24 * time.Hour}

// Metrics is the metric-samples database. Its writes have the lowest priority: when the
// disk is full they are shed (dropped and counted) so that events, alerts and queue items
// in remedy.db can still be written. It is safe for concurrent use.
type Metrics struct {
	db       *DB
	shedding atomic.Bool
	shed     atomic.Int64
}

// OpenMetrics opens the metrics database. auto_vacuum is incremental, so pruning can
// give space back to the file system without a full VACUUM.
func OpenMetrics(ctx context.Context, opts Options) (*Metrics, error) {
	opts.Schema = MetricsSchema
	if opts.Name == "" {
		opts.Name = "metrics"
	}
	opts.CreatePragmas = append(opts.CreatePragmas, "auto_vacuum(2)")
	db, err := Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Metrics{db: db}, nil
}

// DB is the underlying database (for health checks and reopening).
func (m *Metrics) DB() *DB { return m.db }

// Close closes the database.
func (m *Metrics) Close() error { return m.db.Close() }

// Shed is how many samples were dropped because the disk was full.
func (m *Metrics) Shed() int64 { return m.shed.Load() }

// Shedding reports whether metric writes are being dropped.
func (m *Metrics) Shedding() bool { return m.shedding.Load() }

// Insert writes points in one transaction. While the disk is full it drops them and
// returns ErrShed; the first SQLITE_FULL switches shedding on (Prune switches it off).
func (m *Metrics) Insert(ctx context.Context, pts []Point) error {
	if len(pts) == 0 {
		return nil
	}
	if m.shedding.Load() {
		m.shed.Add(int64(len(pts)))
		return ErrShed
	}
	err := m.db.WithTx(ctx, func(ctx context.Context, tx *Tx) error {
		st, err := tx.Prepare(ctx, `INSERT INTO samples(ts, name, value) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, p := range pts {
			if _, err := st.ExecContext(ctx, p.Time.UnixMilli(), p.Name, p.Value); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrFull) {
		m.shedding.Store(true)
		m.shed.Add(int64(len(pts)))
		return errors.Join(ErrShed, err)
	}
	return err
}

// InsertSample writes every value of a sample.
func (m *Metrics) InsertSample(ctx context.Context, s engine.Sample) error {
	pts := make([]Point, 0, len(s.Values))
	for name, v := range s.Values {
		pts = append(pts, Point{Time: s.Time, Name: name, Value: v})
	}
	return m.Insert(ctx, pts)
}

// Samples returns the raw samples in [since, until), grouped by time, for replay.
func (m *Metrics) Samples(ctx context.Context, since, until time.Time) ([]engine.Sample, error) {
	var rows []struct {
		TS    int64   `db:"ts"`
		Name  string  `db:"name"`
		Value float64 `db:"value"`
	}
	if err := m.db.Select(ctx, &rows, `SELECT ts, name, value FROM samples WHERE ts >= ? AND ts < ? ORDER BY ts`,
		since.UnixMilli(), until.UnixMilli()); err != nil {
		return nil, err
	}
	var out []engine.Sample
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].Time.UnixMilli() != r.TS {
			out = append(out, engine.Sample{Time: time.UnixMilli(r.TS).UTC(), Values: map[string]float64{}})
		}
		out[len(out)-1].Values[r.Name] = r.Value
	}
	return out, nil
}

// CompactReport counts what Compact did.
type CompactReport struct {
	RolledUp, RawDeleted, RollupsDeleted int64
}

// Compact folds raw samples older than ret.Raw into 1-minute rollups (average, min, max,
// count), deletes them, deletes rollups older than ret.Minute, and returns freed pages
// to the file system. The file stays bounded however long remedy runs.
func (m *Metrics) Compact(ctx context.Context, now time.Time, ret Retention) (CompactReport, error) {
	if ret.Raw <= 0 {
		ret.Raw = DefaultRetention.Raw
	}
	if ret.Minute <= 0 {
		ret.Minute = DefaultRetention.Minute
	}
	var rep CompactReport
	rawCut := now.Add(-ret.Raw).UnixMilli()
	minCut := now.Add(-ret.Minute).UnixMilli()
	err := m.db.WithTx(ctx, func(ctx context.Context, tx *Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO samples_1m(minute, name, avg, min, max, n)
			SELECT (ts / 60000) * 60000 AS m, name, avg(value), min(value), max(value), count(*)
			FROM samples WHERE ts < ? GROUP BY m, name
			ON CONFLICT(minute, name) DO UPDATE SET
			  avg = (avg * n + excluded.avg * excluded.n) / (n + excluded.n),
			  min = min(min, excluded.min), max = max(max, excluded.max), n = n + excluded.n`, rawCut)
		if err != nil {
			return err
		}
		rep.RolledUp, _ = res.RowsAffected()
		if res, err = tx.Exec(ctx, `DELETE FROM samples WHERE ts < ?`, rawCut); err != nil {
			return err
		}
		rep.RawDeleted, _ = res.RowsAffected()
		if res, err = tx.Exec(ctx, `DELETE FROM samples_1m WHERE minute < ?`, minCut); err != nil {
			return err
		}
		rep.RollupsDeleted, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("compact metrics: %w", err)
	}
	_, err = m.db.Exec(ctx, `PRAGMA incremental_vacuum`)
	return rep, err
}

// Prune is the CLEAN_DATA recovery with target metrics: compact with the retention, and
// if the database is still out of space, drop the oldest raw samples down to what the
// last hour needs. Shedding stops once a test write succeeds again.
func (m *Metrics) Prune(ctx context.Context, now time.Time, ret Retention) (CompactReport, error) {
	if ret.Raw <= 0 {
		ret.Raw = DefaultRetention.Raw
	}
	rep, err := m.compactOrDrop(ctx, now, ret)
	if err != nil {
		return rep, err
	}
	if err := m.probe(ctx, now); errors.Is(err, ErrFull) {
		// Still full: keep only the last hour of raw samples.
		short, err := m.compactOrDrop(ctx, now, Retention{Raw: time.Hour, Minute: ret.Minute})
		rep.RolledUp += short.RolledUp
		rep.RawDeleted += short.RawDeleted
		rep.RollupsDeleted += short.RollupsDeleted
		if err != nil {
			return rep, err
		}
		if err := m.probe(ctx, now); err != nil {
			return rep, err
		}
	} else if err != nil {
		return rep, err
	}
	m.shedding.Store(false)
	return rep, nil
}

// compactOrDrop compacts; when the file is too full for the rollups (they need pages
// before the raw rows are deleted), it drops the raw samples past the retention without
// rolling them up: losing old minute averages beats losing new samples.
func (m *Metrics) compactOrDrop(ctx context.Context, now time.Time, ret Retention) (CompactReport, error) {
	rep, err := m.Compact(ctx, now, ret)
	if !errors.Is(err, ErrFull) {
		return rep, err
	}
	res, err := m.db.Exec(ctx, `DELETE FROM samples WHERE ts < ?`, now.Add(-ret.Raw).UnixMilli())
	if err != nil {
		return rep, fmt.Errorf("drop old metric samples: %w", err)
	}
	n, _ := res.RowsAffected()
	rep.RawDeleted += n
	return rep, nil
}

// probe checks that a sample can be written (and removes it again).
func (m *Metrics) probe(ctx context.Context, now time.Time) error {
	return m.db.WithTx(ctx, func(ctx context.Context, tx *Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO samples(ts, name, value) VALUES (?, '__probe', 0)`, now.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM samples WHERE name = '__probe'`)
		return err
	})
}

// Count returns the number of raw samples and rollups (for tests and the dashboard).
func (m *Metrics) Count(ctx context.Context) (raw, rollups int64, err error) {
	if err = m.db.Get(ctx, &raw, `SELECT count(*) FROM samples`); err != nil {
		return
	}
	err = m.db.Get(ctx, &rollups, `SELECT count(*) FROM samples_1m`)
	return
}
