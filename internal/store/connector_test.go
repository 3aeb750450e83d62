package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

func openStmtDB(t *testing.T, path string) (*sql.DB, *StmtConnector) {
	t.Helper()
	c, err := NewStmtConnector(FileURI(path) + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db, c
}

func count(t *testing.T, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// A statement run again on the same connection is compiled once, and the answers stay
// right: across connections the pool closes and opens (each has its own cache), across
// a schema change made by another connection, and when the same text runs again while
// its rows are still being read.
func TestStmtConnectorCompilesOnceAndStaysCorrect(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wa.db")
	db, c := openStmtDB(t, path)
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	const insert, get = `INSERT INTO t (k, v) VALUES (?, ?)`, `SELECT count(*) FROM t WHERE k <= ?`
	before := c.Stats()
	for i := 1; i <= 100; i++ {
		if _, err := db.Exec(insert, i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, get, i); n != i {
			t.Fatalf("after %d inserts: count %d", i, n)
		}
	}
	st := c.Stats()
	if p, r := st.Prepared-before.Prepared, st.Reused-before.Reused; p != 2 || r != 198 {
		t.Fatalf("200 runs of 2 texts on one connection: %d compiled, %d reused; want 2 and 198", p, r)
	}

	// A pool that keeps no idle connection opens a new one for each use: each compiles
	// its own statement and none sees another's.
	db.SetMaxIdleConns(0)
	before = c.Stats()
	for i := 1; i <= 5; i++ {
		if n := count(t, db, get, i*10); n != i*10 {
			t.Fatalf("new connection %d: count %d, want %d", i, n, i*10)
		}
	}
	if p := c.Stats().Prepared - before.Prepared; p != 5 {
		t.Fatalf("5 connections compiled %d statements, want 5", p)
	}
	db.SetMaxIdleConns(1)

	// Another connection changes the schema: the statement compiled before is compiled
	// again by SQLite and reads the new column.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const all = `SELECT * FROM t WHERE k = ?`
	cols := func() []string {
		rows, err := conn.QueryContext(ctx, all, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cs, _ := rows.Columns()
		return cs
	}
	if got := cols(); len(got) != 2 {
		t.Fatalf("columns %v", got)
	}
	other, _ := openStmtDB(t, path)
	if _, err := other.Exec(`ALTER TABLE t ADD COLUMN w TEXT NOT NULL DEFAULT 'x'`); err != nil {
		t.Fatal(err)
	}
	if got := cols(); len(got) != 3 || got[2] != "w" {
		t.Fatalf("columns after ALTER TABLE: %v", got)
	}
	conn.Close() // the pool's one connection

	// The same text again while its rows are open (in a transaction, on the one
	// connection): the second run has its own statement, and both read every row.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const keys = `SELECT k FROM t WHERE k <= ? ORDER BY k`
	outer, err := tx.QueryContext(ctx, keys, 3)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	for outer.Next() {
		var k int
		outer.Scan(&k)
		inner, err := tx.QueryContext(ctx, keys, 2)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for inner.Next() {
			n++
		}
		inner.Close()
		if n != 2 {
			t.Fatalf("inner run while the outer's rows are open read %d rows, want 2", n)
		}
		seen = append(seen, k)
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[1 2 3]" {
		t.Fatalf("outer rows %v", seen)
	}
	if n := count(t, tx, `SELECT count(*) FROM (`+keys+`)`, 100); n != 100 {
		t.Fatalf("after the nested runs: %d", n)
	}
}

// The cache is bounded: texts past maxConnStmts push out the least recently used, and
// every run still answers right.
func TestStmtConnectorCacheIsBounded(t *testing.T) {
	db, c := openStmtDB(t, filepath.Join(t.TempDir(), "wa.db"))
	db.SetMaxOpenConns(1)
	for i := range 2 * maxConnStmts {
		q := fmt.Sprintf("SELECT %d + ?", i)
		if n := count(t, db, q, 1); n != i+1 {
			t.Fatalf("%s: %d", q, n)
		}
	}
	if n := count(t, db, "SELECT 0 + ?", 5); n != 5 { // evicted long ago: compiled again
		t.Fatalf("evicted text: %d", n)
	}
	if st := c.Stats(); st.Prepared != 2*maxConnStmts+1 || st.Reused != 0 {
		t.Fatalf("stats %+v", st)
	}
}
