package store

import "sync/atomic"

// walID is the identity (device, inode) of the PATH-wal file the pool opened. SQLite
// keeps writing to an unlinked WAL through its open descriptor, so a -wal deleted under
// load looks healthy while every commit since lands in a file no new connection and no
// restart will read: after a crash those acknowledged rows are gone (field case C4).
// Comparing the path's identity with the opened one notices it.
type walID struct {
	dev, ino atomic.Uint64 // zero until the WAL exists
}

// walGone reports whether the WAL the handles opened is no longer at PATH-wal (deleted
// or replaced). A WAL that did not exist yet when the handles opened is recorded the
// first time it is seen.
func (db *DB) walGone(h *handles) bool {
	d, i := fileID(db.opts.Path + "-wal")
	if h.wal.ino.Load() == 0 {
		if i != 0 {
			h.wal.dev.Store(d)
			h.wal.ino.Store(i)
		}
		return false
	}
	return d != h.wal.dev.Load() || i != h.wal.ino.Load()
}

// is reports whether (dev, ino) is the WAL the handles opened, recording it when none
// was seen yet (as walGone does).
func (w *walID) is(dev, ino uint64) bool {
	if w.ino.Load() == 0 {
		w.dev.Store(dev)
		w.ino.Store(ino)
		return true
	}
	return w.dev.Load() == dev && w.ino.Load() == ino
}
