package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
	"sync/atomic"

	"modernc.org/sqlite"
)

// StmtConnector opens SQLite connections (modernc.org/sqlite) that keep the statements
// they run prepared, by query text, for a database another library queries through
// database/sql with plain strings: whatsmeow's device store (go.mau.fi/util's dbutil
// passes every Exec and Query as text, and modernc's driver compiles each text anew).
// In the 1,000 messages/s benchmark, compiling whatsmeow's statements was about a
// fifth of the time whatsmeow took per message, in the one goroutine that handles
// WhatsApp's messages in turn.
//
// Each connection has its own cache (a prepared statement belongs to its connection),
// so the cache lives and dies with the connection: a pool that closes or replaces
// connections prepares again on the new ones. SQLite itself prepares a statement
// again when the schema changed under it. Use it with sql.OpenDB; it registers no
// driver name.
type StmtConnector struct {
	driver.Connector
	prepared, reused atomic.Int64
}

// maxConnStmts bounds each connection's cache (least recently used goes first): a
// query built with a variable number of placeholders is a new text each time.
const maxConnStmts = 128

// NewStmtConnector returns a connector for sql.OpenDB to the database dsn (the syntax
// of modernc's Driver.Open). Errors are those of sqlite.NewConnector: a dsn whose query
// does not parse.
func NewStmtConnector(dsn string) (*StmtConnector, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return &StmtConnector{Connector: c}, nil
}

// StmtStats count the statements the connector's connections compiled (Prepared) and
// the runs that used one compiled before (Reused).
type StmtStats struct{ Prepared, Reused int64 }

// Stats returns the counts since the connector was made.
func (c *StmtConnector) Stats() StmtStats {
	return StmtStats{Prepared: c.prepared.Load(), Reused: c.reused.Load()}
}

// Connect opens a connection with an empty statement cache.
func (c *StmtConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteConn)
	if !ok { // not modernc's connection: nothing to cache on
		return conn, nil
	}
	return &stmtConn{sqliteConn: inner, owner: c, stmts: map[string]*list.Element{}, lru: list.New()}, nil
}

// sqliteConn is what modernc's connections implement and stmtConn forwards, so that
// database/sql keeps its context-aware paths (see sqlite.NewConnector).
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// stmtConn is one connection and its prepared statements. database/sql never uses a
// connection from two goroutines at once, so it needs no lock.
type stmtConn struct {
	sqliteConn
	owner *StmtConnector
	stmts map[string]*list.Element // of *connStmt, most recently used at the front
	lru   *list.List
}

type connStmt struct {
	query string
	s     driver.Stmt
	busy  bool // its rows are open: another run of the same text prepares its own
	gone  bool // evicted while busy: closed when its rows close
}

var (
	_ sqliteConn = (*stmtConn)(nil)
	_ interface {
		Unwrap() driver.Conn
	} = (*stmtConn)(nil)
)

// Unwrap is the driver's own connection (sqlite.Limit looks through wrappers so).
func (c *stmtConn) Unwrap() driver.Conn { return c.sqliteConn }

// take returns the idle prepared statement for query, preparing it if needed; nil to
// run the text directly (several statements in one text, or its statement is busy).
func (c *stmtConn) take(ctx context.Context, query string) *connStmt {
	if e, ok := c.stmts[query]; ok {
		cs := e.Value.(*connStmt)
		if cs.busy {
			return nil
		}
		c.lru.MoveToFront(e)
		c.owner.reused.Add(1)
		return cs
	}
	if !cacheable(query) {
		return nil
	}
	s, err := c.sqliteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil // the direct run reports the error, word for word
	}
	c.owner.prepared.Add(1)
	cs := &connStmt{query: query, s: s}
	c.stmts[query] = c.lru.PushFront(cs)
	for c.lru.Len() > maxConnStmts {
		old := c.lru.Back()
		c.lru.Remove(old)
		o := old.Value.(*connStmt)
		delete(c.stmts, o.query)
		if o.busy {
			o.gone = true
		} else {
			o.s.Close()
		}
	}
	return cs
}

// ExecContext runs query on its prepared statement.
func (c *stmtConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs := c.take(ctx, query)
	if cs == nil {
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	return cs.s.(driver.StmtExecContext).ExecContext(ctx, args)
}

// QueryContext runs query on its prepared statement, which stays busy until the rows
// are closed.
func (c *stmtConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs := c.take(ctx, query)
	if cs == nil {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	r, err := cs.s.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &stmtRows{Rows: r, cs: cs}, nil
}

// Close closes the prepared statements, then the connection.
func (c *stmtConn) Close() error {
	var errs []error
	for _, e := range c.stmts {
		if cs := e.Value.(*connStmt); !cs.busy {
			errs = append(errs, cs.s.Close())
		}
	}
	c.stmts, c.lru = nil, list.New()
	errs = append(errs, c.sqliteConn.Close())
	return errors.Join(errs...)
}

// stmtRows frees its statement for the next run when closed.
type stmtRows struct {
	driver.Rows
	cs     *connStmt
	closed bool
}

func (r *stmtRows) Close() error {
	err := r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.cs.busy = false
		if r.cs.gone {
			err = errors.Join(err, r.cs.s.Close())
		}
	}
	return err
}

// The column type methods modernc's rows implement (database/sql's ColumnTypes).

func (r *stmtRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *stmtRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *stmtRows) ColumnTypeNullable(i int) (bool, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *stmtRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *stmtRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
