package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Keep is how long remedy.db keeps the rows of each table that grows with activity,
// measured from each row's own time (below). Rows still needed are kept past it: a
// pending outbox row, the alerts of an incident not yet resolved, a queued message's
// outgoing row, a dead letter not yet replayed. A zero field takes DefaultKeep's.
//
// In the spirit of Prometheus's --storage.tsdb.retention.time (15d) and Alertmanager's
// --data.retention (120h, for expired silences and its notification log).
type Keep struct {
	Events      time.Duration // events.ts
	Decisions   time.Duration // decisions.ts
	Audit       time.Duration // audit.ts
	Alerts      time.Duration // alerts.ts, once a later row of the same incident resolved it
	Outbox      time.Duration // alert_outbox.created, once delivered
	Silences    time.Duration // silences.ends: how long an expired silence stays listed
	DeadLetters time.Duration // dead_letters.replayed: when it was replayed; pending ones stay
	Outgoing    time.Duration // outgoing.updated, once sent (a queued message's row stays)
	Reports     time.Duration // reports.ts
	Quarantine  time.Duration // quarantine.ts
}

// DefaultKeep is the retention with no configuration: a month of events and decisions
// (what the dashboard, replay and an incident review read), half a year of what was done
// and told (audit, alerts), a year of daily reports, and Alertmanager's 5 days for
// expired silences.
var DefaultKeep = Keep{
	Events: 30 * day, Decisions: 30 * day, Audit: 180 * day, Alerts: 180 * day, Outbox: 30 * day,
	Silences: 5 * day, DeadLetters: 30 * day, Outgoing: 30 * day, Reports: 365 * day, Quarantine: 90 * day,
}

// FloorKeep is the least a disk-full CLEAN_DATA prunes down to (Pruner.Sooner): a day of
// history for the incident at hand, a week of audit and alerts, two days of outgoing rows
// (a client's retry with the same idempotency key within that is still recognised).
var FloorKeep = Keep{
	Events: day, Decisions: day, Audit: 7 * day, Alerts: 7 * day, Outbox: day,
	Silences: day, DeadLetters: 7 * day, Outgoing: 2 * day, Reports: 30 * day, Quarantine: 7 * day,
}

// retentionPragma makes a new remedy.db give pruned pages back to the disk
// (incremental_vacuum after each pass). It must be set before the first table is made;
// on an older file it changes nothing until a VACUUM run after setting it (see
// RetentionStatus.FreeBytes).
const retentionPragma = "auto_vacuum(2)"

// MinKeep is the shortest retention a configuration may set for any table.
const MinKeep = time.Hour

const day = 24 * time.Hour

// retained is one table under retention. pick selects the rowids of up to ? prunable
// rows older than ? (unix ms), oldest first; oldest gives the oldest row's time (unix ms,
// NULL when empty), read through an index or from a small table.
type retained struct {
	table  string
	keep   func(*Keep) *time.Duration
	pick   string
	oldest string
}

// retainedTables are pruned in this order: outbox rows before the alerts they refer to
// (alert_outbox.alert_id REFERENCES alerts).
var retainedTables = []retained{
	{"events", func(k *Keep) *time.Duration { return &k.Events },
		`SELECT rowid FROM events WHERE ts < ? ORDER BY ts LIMIT ?`, `SELECT min(ts) FROM events`},
	{"decisions", func(k *Keep) *time.Duration { return &k.Decisions },
		`SELECT rowid FROM decisions WHERE ts < ? ORDER BY ts LIMIT ?`, `SELECT min(ts) FROM decisions`},
	{"audit", func(k *Keep) *time.Duration { return &k.Audit },
		`SELECT rowid FROM audit WHERE ts < ? ORDER BY ts LIMIT ?`, `SELECT min(ts) FROM audit`},
	{"alert_outbox", func(k *Keep) *time.Duration { return &k.Outbox },
		`SELECT rowid FROM alert_outbox WHERE delivered != 0 AND created < ? ORDER BY id LIMIT ?`,
		`SELECT created FROM alert_outbox ORDER BY id LIMIT 1`},
	// An alert row goes once its incident was resolved by it or by a later row, and no
	// outbox row (delivered or not) refers to it.
	{"alerts", func(k *Keep) *time.Duration { return &k.Alerts },
		`SELECT a.rowid FROM alerts a WHERE a.ts < ?
		   AND EXISTS (SELECT 1 FROM alerts r WHERE r.fingerprint = a.fingerprint AND r.state = 'resolved' AND r.id >= a.id)
		   AND NOT EXISTS (SELECT 1 FROM alert_outbox o WHERE o.alert_id = a.id)
		 ORDER BY a.id LIMIT ?`,
		`SELECT ts FROM alerts ORDER BY id LIMIT 1`},
	{"silences", func(k *Keep) *time.Duration { return &k.Silences },
		`SELECT rowid FROM silences WHERE ends < ? ORDER BY ends LIMIT ?`, `SELECT min(ends) FROM silences`},
	{"dead_letters", func(k *Keep) *time.Duration { return &k.DeadLetters },
		`SELECT rowid FROM dead_letters WHERE replayed != 0 AND replayed < ? ORDER BY id LIMIT ?`,
		`SELECT min(dead_at) FROM dead_letters`},
	{"outgoing", func(k *Keep) *time.Duration { return &k.Outgoing },
		`SELECT rowid FROM outgoing WHERE status != 'queued' AND updated < ? LIMIT ?`, `SELECT min(created) FROM outgoing`},
	{"reports", func(k *Keep) *time.Duration { return &k.Reports },
		`SELECT rowid FROM reports WHERE ts < ? ORDER BY id LIMIT ?`, `SELECT ts FROM reports ORDER BY id LIMIT 1`},
	{"quarantine", func(k *Keep) *time.Duration { return &k.Quarantine },
		`SELECT rowid FROM quarantine WHERE ts < ? ORDER BY id LIMIT ?`, `SELECT ts FROM quarantine ORDER BY id LIMIT 1`},
}

// RetainedTables are the tables of remedy.db under retention, in pruning order.
func RetainedTables() []string {
	out := make([]string, len(retainedTables))
	for i, t := range retainedTables {
		out[i] = t.table
	}
	return out
}

// WithDefaults returns k with every zero field set to DefaultKeep's.
func (k Keep) WithDefaults() Keep {
	def := DefaultKeep
	for _, t := range retainedTables {
		if p := t.keep(&k); *p == 0 {
			*p = *t.keep(&def)
		}
	}
	return k
}

// Of returns the retention of table ("events", "alert_outbox", …; 0 if not retained).
func (k Keep) Of(table string) time.Duration {
	for _, t := range retainedTables {
		if t.table == table {
			return *t.keep(&k)
		}
	}
	return 0
}

// PruneBatch is the most rows one pruning transaction deletes: about 10 ms of the
// writer's time on these machines, so a commit waiting behind it waits that long at most.
const PruneBatch = 1000

// TableRetention is one table's retention as last seen by the Pruner.
type TableRetention struct {
	Table  string
	Keep   time.Duration // configured
	Pruned int64         // rows deleted since remedy started
	// Oldest is the oldest row's time (zero: the table is empty), as of the last pass.
	Oldest time.Time
}

// RetentionStatus is the Pruner's last pass: per table, when it ran, and the free space
// in the file.
type RetentionStatus struct {
	Tables []TableRetention
	At     time.Time // end of the last pass (zero: none yet)
	Err    string    // the last pass's error, "" if it completed
	// FreeBytes is the file's free pages (freelist_count × page_size): space pruning
	// freed that SQLite reuses for new rows. With auto_vacuum incremental (files created
	// since retention came) the pass gives it back to the file system, so it stays
	// near 0; older files keep it (converting needs a full VACUUM, which rewrites the
	// file under one write lock: run `sqlite3 remedy.db 'PRAGMA auto_vacuum=INCREMENTAL;
	// VACUUM;'` with remedy stopped; a plain VACUUM keeps the old setting).
	FreeBytes   int64
	Incremental bool // auto_vacuum is incremental: freed pages go back to the disk
}

// Pruner deletes remedy.db's rows past their retention, PruneBatch rows per
// transaction through the database's one writer connection, so no write waits long
// behind it. Build it with NewPruner, run it with Run (its owner cancels and waits);
// Status and Sooner are safe for concurrent use.
type Pruner struct {
	db   *DB
	keep Keep

	run    sync.Mutex // one pass at a time (Run's and Sooner's)
	mu     sync.Mutex
	status RetentionStatus
	pruned map[string]int64
	shrink int       // Sooner's halvings in force
	shrunk time.Time // when Sooner last halved
}

// NewPruner returns a pruner of db's tables with keep (zero fields: DefaultKeep).
func NewPruner(db *DB, keep Keep) *Pruner {
	return &Pruner{db: db, keep: keep.WithDefaults(), pruned: map[string]int64{}}
}

// Keep is the configured retention.
func (p *Pruner) Keep() Keep { return p.keep }

// Run prunes every interval (the first pass at once) until ctx ends.
func (p *Pruner) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_, _ = p.Prune(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Prune runs one pass at now: every table's rows past its retention (shortened by
// Sooner's halvings in force) go, oldest first, in transactions of PruneBatch rows; then
// freed pages go back to the disk where auto_vacuum is incremental. It returns the rows
// deleted per table. Errors: the database's (the pass stops; the next one resumes).
func (p *Pruner) Prune(ctx context.Context, now time.Time) (map[string]int64, error) {
	p.run.Lock()
	defer p.run.Unlock()
	keep := p.effective(now)
	done := map[string]int64{}
	var err error
	for _, t := range retainedTables {
		var n int64
		n, err = p.pruneTable(ctx, t, now.Add(-*t.keep(&keep)))
		done[t.table] = n
		p.mu.Lock()
		p.pruned[t.table] += n
		p.mu.Unlock()
		if err != nil {
			break
		}
	}
	if err == nil {
		err = p.vacuum(ctx)
	}
	p.observe(ctx, now, err)
	return done, err
}

func (p *Pruner) pruneTable(ctx context.Context, t retained, cut time.Time) (int64, error) {
	var total int64
	del := fmt.Sprintf(`DELETE FROM %s WHERE rowid IN (%s)`, t.table, t.pick)
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res, err := p.db.Exec(ctx, del, cut.UnixMilli(), PruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune %s: %w", t.table, err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < PruneBatch {
			return total, nil
		}
	}
}

// vacuumStep is the most pages one incremental_vacuum statement gives back (8 MiB at
// 4 KiB pages), so it holds the writer about as long as a pruning batch.
const vacuumStep = 2000

func (p *Pruner) vacuum(ctx context.Context) error {
	var mode int
	if err := p.db.Get(ctx, &mode, `PRAGMA auto_vacuum`); err != nil || mode != 2 {
		return err
	}
	for {
		var free int64
		if err := p.db.Get(ctx, &free, `PRAGMA freelist_count`); err != nil || free == 0 {
			return err
		}
		if _, err := p.db.Exec(ctx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, vacuumStep)); err != nil {
			return fmt.Errorf("incremental vacuum: %w", err)
		}
		if free <= vacuumStep {
			return nil
		}
	}
}

// observe records the pass's figures for Status: the oldest row per table (an index's
// first entry, or a small table's first row) and the free pages.
func (p *Pruner) observe(ctx context.Context, now time.Time, err error) {
	st := RetentionStatus{At: now}
	if err != nil {
		st.Err = err.Error()
	}
	for _, t := range retainedTables {
		tr := TableRetention{Table: t.table, Keep: *t.keep(&p.keep)}
		var ms *int64
		if p.db.Get(ctx, &ms, t.oldest) == nil && ms != nil {
			tr.Oldest = time.UnixMilli(*ms)
		}
		st.Tables = append(st.Tables, tr)
	}
	var free, size, mode int64
	_ = p.db.Get(ctx, &free, `PRAGMA freelist_count`)
	_ = p.db.Get(ctx, &size, `PRAGMA page_size`)
	_ = p.db.Get(ctx, &mode, `PRAGMA auto_vacuum`)
	st.FreeBytes, st.Incremental = free*size, mode == 2
	p.mu.Lock()
	for i := range st.Tables {
		st.Tables[i].Pruned = p.pruned[st.Tables[i].Table]
	}
	p.status = st
	p.mu.Unlock()
}

// Status is the last pass's figures (no database access).
func (p *Pruner) Status() RetentionStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.status
	st.Tables = slices.Clone(st.Tables)
	if st.Tables == nil { // before the first pass: the configuration at least
		for _, t := range retainedTables {
			st.Tables = append(st.Tables, TableRetention{Table: t.table, Keep: *t.keep(&p.keep), Pruned: p.pruned[t.table]})
		}
	}
	return st
}

// shrinkFor is how long a halving by Sooner stays in force: as long as disk-low's and
// db-full's ladders take, after which the configured retention holds again (rows
// already deleted stay deleted; newer ones are kept their full time).
const shrinkFor = time.Hour

// effective is the retention in force at now: the configured one halved once per
// Sooner call within shrinkFor of the last, each table down to its floor (or to its
// configured retention, if that is shorter than the floor).
func (p *Pruner) effective(now time.Time) Keep {
	p.mu.Lock()
	if p.shrink > 0 && now.Sub(p.shrunk) > shrinkFor {
		p.shrink = 0
	}
	n := p.shrink
	p.mu.Unlock()
	k, floor := p.keep, FloorKeep
	for _, t := range retainedTables {
		v, f := t.keep(&k), *t.keep(&floor)
		*v = max(*v>>n, min(f, *v))
	}
	return k
}

// Sooner prunes at once with every retention halved again (down to FloorKeep): the
// space part of CLEAN_DATA when the disk is full. It returns what it did, in words.
func (p *Pruner) Sooner(ctx context.Context, now time.Time) (string, error) {
	p.mu.Lock()
	if now.Sub(p.shrunk) > shrinkFor {
		p.shrink = 0
	}
	if p.shrink < 16 {
		p.shrink++
	}
	p.shrunk = now
	p.mu.Unlock()
	done, err := p.Prune(ctx, now)
	keep := p.effective(now)
	var total int64
	for _, n := range done {
		total += n
	}
	msg := fmt.Sprintf("retention shortened for %v (events %v, audit %v, floors %v and %v): deleted %d rows",
		shrinkFor, keep.Events, keep.Audit, FloorKeep.Events, FloorKeep.Audit, total)
	return msg, err
}
