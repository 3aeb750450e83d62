package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// Group commit at the disk. A write answers only once its commit is on disk, as with
// SQLite's synchronous=FULL, but the sync is not made by SQLite inside the commit,
// where it held the one writer connection (and so every other writer) for the disk's
// time, one sync per transaction. The writer runs synchronous=NORMAL (in WAL mode a
// commit appends its frames to PATH-wal without a sync; checkpoints still sync the WAL
// before and the file after, and a reused WAL's header is synced), and after the commit
// the caller waits in walSync.wait for an fsync of PATH-wal that started after its
// commit returned. Callers that commit while a sync runs share the next one.
//
// Why this is as durable as FULL: frames are appended in commit order, so a sync covers
// every commit made before it started. A commit whose frames a checkpoint copied into
// the file before the sync is on disk already (a completed checkpoint syncs the file
// before the WAL is reused). SQLite never locks PATH-wal (its locks are on the file and
// PATH-shm), so a descriptor of remedy's own on it disturbs no lock. A -wal replaced
// under the pool is refused before any write (DB.writer, wal.go) and here.
//
// A failed sync is not tried again as a sync. Linux reports a failed write-back once: a
// second fsync returns success though the pages it could not write may never reach the
// disk (and WAL recovery after a power cut stops at the first frame missing, losing the
// commits after it too). Before FULL's rollback made the caller write its frames again;
// here the commit stands, so the next wait checkpoints instead (DB: PRAGMA
// wal_checkpoint(FULL) on the writer: every committed frame is copied into the file,
// which is then synced) and only a checkpoint that completes vouches for the commits
// made before it. DB.waitSynced tries again within the retry budget.
//
// In the 1,000 WhatsApp messages/s benchmark the inbound queue's enqueue (which must be
// on disk before whatsmeow sends the message's receipt) waited behind its workers'
// claims, each holding the writer through its own fsync: with the syncs outside the
// writer and shared, the enqueue waits for one sync and a few short commits.
type walSync struct {
	path  string
	wal   *walID        // the WAL the handles opened (wal.go)
	syncs *atomic.Int64 // the DB's count of syncs made (PoolStats.Syncs)

	mu      sync.Mutex
	cond    sync.Cond
	written uint64 // commits made
	synced  uint64 // commits known to be on disk
	running bool   // a sync is under way
	f       *os.File
	closed  bool
	failed  bool // the last sync or checkpoint failed: the next wait checkpoints

	// sync is the system call (fsync; a test's hook may stand in).
	sync func(*os.File) error
	// checkpoint copies every committed frame into the database file and syncs it
	// (handles.checkpointAll); an error if it could not, or not all of them.
	checkpoint func() error
}

// newWALSync starts owing one sync: the WAL may hold commits that no sync covered, made
// by the handles a reopen replaced (they close after the new ones open, so their close
// checkpoints nothing) or by a remedy killed before its receipts' Sync. The first wait
// or DB.Sync puts them on disk before anything is acknowledged on top of them.
func newWALSync(path string, wal *walID, syncs *atomic.Int64) *walSync {
	s := &walSync{path: path, wal: wal, syncs: syncs, sync: (*os.File).Sync, written: 1}
	s.cond.L = &s.mu
	return s
}

// committed records a commit that has returned and gives its ticket for wait.
func (s *walSync) committed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written++
	return s.written
}

// current is the ticket of the last commit made.
func (s *walSync) current() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// wait returns once the commit with ticket n is on disk: a sync that started after it
// covers it. One caller syncs at a time; those that commit meanwhile share the next
// sync. An error means the sync failed: the commit happened, but is not known to be
// on disk.
func (s *walSync) wait(n uint64) error {
	s.mu.Lock()
	for s.running && s.synced < n {
		s.cond.Wait()
	}
	if s.synced >= n {
		s.mu.Unlock()
		return nil
	}
	s.running = true
	upTo := s.written // every commit counted here returned before this sync starts
	viaCheckpoint := s.failed
	s.mu.Unlock()

	var err error
	if viaCheckpoint {
		err = s.checkpointWAL()
	} else {
		err = s.syncWAL()
	}

	s.mu.Lock()
	s.running = false
	s.failed = err != nil
	if err == nil {
		s.synced = max(s.synced, upTo)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	return err
}

// checkpointWAL stands in for the sync after one failed (see walSync).
func (s *walSync) checkpointWAL() error {
	if s.checkpoint == nil {
		return fmt.Errorf("%w: no checkpoint after a failed sync", errSync)
	}
	if err := s.checkpoint(); err != nil {
		return fmt.Errorf("%w: checkpoint after a failed sync: %v", errSync, err)
	}
	s.syncs.Add(1)
	return nil
}

// errSync marks a failed sync after a commit: the transaction is not run again (it was
// committed), and the caller must not report it as stored.
var errSync = errors.New("commit not synced to disk")

// syncWAL fsyncs PATH-wal through a descriptor kept open for the handles' life. It is
// called by one goroutine at a time.
func (s *walSync) syncWAL() error {
	if s.f == nil {
		f, err := os.Open(s.path + "-wal")
		if errors.Is(err, os.ErrNotExist) && s.wal.ino.Load() == 0 {
			// No WAL, and the handles never saw one: nothing was committed to one since
			// the last connection closed (which checkpoints and syncs the file).
			return nil
		}
		if errors.Is(err, os.ErrNotExist) {
			// Deleted under the handles: their commits are only in the unlinked file
			// (DB.writer refuses writes from then on; a reopen folds it in).
			return fmt.Errorf("%w: %s-wal was deleted", errSync, s.path)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errSync, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("%w: %v", errSync, err)
		}
		sys, _ := st.Sys().(*syscall.Stat_t)
		if sys == nil || !s.wal.is(uint64(sys.Dev), sys.Ino) {
			f.Close()
			return fmt.Errorf("%w: %s-wal is not the WAL the connections opened", errSync, s.path)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			f.Close()
			return nil // the handles closed: closing checkpointed and synced the file
		}
		s.f = f
		s.mu.Unlock()
	}
	if err := s.sync(s.f); err != nil {
		return fmt.Errorf("%w: %v", errSync, err)
	}
	s.syncs.Add(1)
	return nil
}

// close closes the descriptor, after the connections (DB handles.close); a sync under
// way finishes first.
func (s *walSync) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.running {
		s.cond.Wait()
	}
	s.closed = true
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
