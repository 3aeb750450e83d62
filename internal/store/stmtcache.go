package store

import (
	"context"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"
)

// The writer connection keeps its statements prepared. SQLite compiles a statement into
// its bytecode on every prepare, and modernc's driver prepares every query it is given:
// in the 1,000 messages/s benchmark, compiling the queue's three statements per message
// was a quarter of the daemon's CPU (bench.BenchmarkMemory with
// REMEDY_BENCH_DAEMON_CPUPROFILE). A transaction reuses the statement prepared on its
// connection (database/sql's Tx.StmtContext), so each query text is compiled once per
// writer connection.

// maxCachedStmts bounds the cache: a query built with a variable number of
// placeholders is a new text each time, and those beyond the bound run unprepared.
const maxCachedStmts = 256

type stmtCache struct {
	mu      sync.Mutex
	m       map[string]*sqlx.Stmt
	pending map[string]bool // met in a transaction, to prepare once it ends
	closed  bool
}

func cacheable(query string) bool {
	return !strings.Contains(strings.TrimRight(strings.TrimSpace(query), ";"), ";")
}

// cached returns the writer's prepared statement for query, or nil. Inside a
// transaction the writer's one connection is taken, so a statement not prepared yet is
// noted and prepared after the transaction (preparePending).
func (h *handles) cached(query string) *sqlx.Stmt {
	c := &h.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[query]; ok {
		return s
	}
	if len(c.m)+len(c.pending) < maxCachedStmts && cacheable(query) {
		if c.pending == nil {
			c.pending = map[string]bool{}
		}
		c.pending[query] = true
	}
	return nil
}

// stmt returns the prepared statement for query, preparing it now; nil to run it
// directly (the cache is full, the text holds several statements, or preparing failed:
// the direct run reports the error). It must not be called inside a transaction.
func (h *handles) stmt(ctx context.Context, query string) *sqlx.Stmt {
	if s := h.cached(query); s != nil {
		return s
	}
	h.preparePending(ctx)
	h.stmts.mu.Lock()
	defer h.stmts.mu.Unlock()
	return h.stmts.m[query]
}

// preparePending prepares the statements noted during transactions. The cache's lock is
// not held while preparing: a transaction holding the connection may be looking up.
func (h *handles) preparePending(ctx context.Context) {
	c := &h.stmts
	c.mu.Lock()
	var todo []string
	for q := range c.pending {
		if _, ok := c.m[q]; !ok {
			todo = append(todo, q)
		}
	}
	c.pending = nil
	c.mu.Unlock()
	for _, q := range todo {
		s, err := h.w.PreparexContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]*sqlx.Stmt{}
		}
		if _, ok := c.m[q]; ok || c.closed {
			s.Close()
		} else {
			c.m[q] = s
		}
		c.mu.Unlock()
	}
}

// closeStmts closes the cached statements (before the writer closes).
func (h *handles) closeStmts() {
	h.stmts.mu.Lock()
	defer h.stmts.mu.Unlock()
	for _, s := range h.stmts.m {
		s.Close()
	}
	h.stmts.m, h.stmts.pending, h.stmts.closed = nil, nil, true
}

// stmt is query's prepared statement bound to the transaction, or nil.
func (t *Tx) stmt(ctx context.Context, query string) *sqlx.Stmt {
	if t.h == nil {
		return nil
	}
	s := t.h.cached(query)
	if s == nil {
		return nil
	}
	return t.tx.StmtxContext(ctx, s)
}
