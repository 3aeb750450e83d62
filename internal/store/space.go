package store

import (
	"fmt"
	"os"
	"sync"
)

// Reserve is a ballast file in the data directory. When a priority write (an event, an
// alert, a queue item) finds the disk full, releasing the reserve frees enough space for
// it to go through while metrics are shed and old samples pruned. Restore puts it back.
type Reserve struct {
	path string
	size int64
	mu   sync.Mutex
}

// NewReserve creates (or keeps) a reserve of size bytes at path. Its blocks are written,
// not sparse, so the space is really held.
func NewReserve(path string, size int64) (*Reserve, error) {
	r := &Reserve{path: path, size: size}
	if err := r.Restore(); err != nil {
		return nil, err
	}
	return r, nil
}

// Release deletes the reserve; it reports whether space was freed. It suits
// Options.OnFull.
func (r *Reserve) Release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return os.Remove(r.path) == nil
}

// Held reports whether the reserve file exists at its full size.
func (r *Reserve) Held() bool {
	st, err := os.Stat(r.path)
	return err == nil && st.Size() >= r.size
}

// Restore writes the reserve again if it is missing or short.
func (r *Reserve) Restore() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, err := os.Stat(r.path); err == nil && st.Size() >= r.size {
		return nil
	}
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("reserve: %w", err)
	}
	buf := make([]byte, 1<<20)
	for written := int64(0); written < r.size; {
		n := min(int64(len(buf)), r.size-written)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			os.Remove(r.path)
			return fmt.Errorf("reserve: %w", err)
		}
		written += n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("reserve: %w", err)
	}
	return f.Close()
}
