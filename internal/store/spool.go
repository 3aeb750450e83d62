package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
)

// ErrSpoolFull is an Append that does not fit in the spool.
var ErrSpoolFull = errors.New("spool full")

// Spool is a file of rows a Writer could not keep in memory, one JSON document per line.
// Its blocks are written when it is made (like the reserve's), so appending never needs
// new space: it works on a full disk. The used part ends at the first zero byte. A spool
// found with rows at open (remedy stopped before writing them) hands them back first.
type Spool[T any] struct {
	mu   sync.Mutex
	f    *os.File
	size int64
	used int64
	n    int
}

// OpenSpool opens (creating and filling with zeros if needed) a spool of size bytes.
func OpenSpool[T any](path string, size int64) (*Spool[T], error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() < size {
		err = zero(f, st.Size(), size)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool[T]{f: f, size: size}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		s.used = int64(i + 1)
		s.n = bytes.Count(buf[:i+1], []byte{'\n'})
	}
	return s, nil
}

func zero(f *os.File, from, to int64) error {
	buf := make([]byte, 1<<20)
	for off := from; off < to; {
		n := min(int64(len(buf)), to-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += n
	}
	return f.Sync()
}

// Append adds a row; ErrSpoolFull if it does not fit.
func (s *Spool[T]) Append(v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used+int64(len(b)) >= s.size { // keep one zero byte: the end mark
		return ErrSpoolFull
	}
	if _, err := s.f.WriteAt(b, s.used); err != nil {
		return err
	}
	s.used += int64(len(b))
	s.n++
	return nil
}

// Len is the number of rows in the spool.
func (s *Spool[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Take returns the spool's rows, oldest first, and empties it.
func (s *Spool[T]) Take() ([]T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used == 0 {
		return nil, nil
	}
	buf := make([]byte, s.used)
	if _, err := s.f.ReadAt(buf, 0); err != nil {
		return nil, err
	}
	var out []T
	for line := range bytes.SplitSeq(bytes.TrimSuffix(buf, []byte{'\n'}), []byte{'\n'}) {
		var v T
		if json.Unmarshal(line, &v) == nil {
			out = append(out, v)
		}
	}
	if err := zero(s.f, 0, s.used); err != nil {
		return nil, err
	}
	s.used, s.n = 0, 0
	return out, nil
}

// Peek returns up to n rows from the front, oldest first, and leaves them in the spool:
// a caller that moves rows elsewhere drops them (Drop) only once they are stored there,
// so a crash in between finds them again (at least once, never zero times).
func (s *Spool[T]) Peek(n int) ([]T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf, err := s.read()
	if err != nil {
		return nil, err
	}
	var out []T
	for line := range bytes.SplitSeq(buf, []byte{'\n'}) {
		if len(out) == n || len(line) == 0 {
			break
		}
		var v T
		if json.Unmarshal(line, &v) == nil {
			out = append(out, v)
		}
	}
	return out, nil
}

// Drop removes the first n rows (those Peek returned). The rest moves to the front of
// the file before the freed tail is zeroed, so a kill in between leaves at worst a copy
// of rows already kept (unreadable fragments are skipped), never a gap.
func (s *Spool[T]) Drop(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf, err := s.read()
	if err != nil {
		return err
	}
	off := 0
	for range min(n, s.n) {
		off += bytes.IndexByte(buf[off:], '\n') + 1
	}
	rest := buf[off:]
	if len(rest) > 0 {
		if _, err := s.f.WriteAt(rest, 0); err != nil {
			return err
		}
	}
	if err := zero(s.f, int64(len(rest)), s.used); err != nil {
		return err
	}
	s.used = int64(len(rest))
	s.n = bytes.Count(rest, []byte{'\n'})
	return nil
}

// read returns the used part of the file (s.mu held).
func (s *Spool[T]) read() ([]byte, error) {
	buf := make([]byte, s.used)
	if _, err := s.f.ReadAt(buf, 0); err != nil {
		return nil, err
	}
	return buf, nil
}

// Close closes the file (its rows stay for the next start).
func (s *Spool[T]) Close() error { return s.f.Close() }
