package service

import (
	"bytes"
	"sync"
)

// Ring keeps the last lines written to it (a service's stdout and stderr), for the
// dashboard. It never blocks the writer and its memory is bounded.
type Ring struct {
	mu      sync.Mutex
	lines   []string
	next    int
	full    bool
	partial []byte
}

// NewRing keeps the last n lines.
func NewRing(n int) *Ring {
	if n <= 0 {
		n = 200
	}
	return &Ring{lines: make([]string, n)}
}

// Write splits p into lines; a line longer than 4 KiB is cut.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data := append(r.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		r.add(string(data[:min(i, 4096)]))
		data = data[i+1:]
	}
	if len(data) > 4096 {
		r.add(string(data[:4096]))
		data = data[:0]
	}
	r.partial = append([]byte(nil), data...)
	return len(p), nil
}

func (r *Ring) add(line string) {
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

// Lines returns the kept lines, oldest first.
func (r *Ring) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if r.full {
		out = append(out, r.lines[r.next:]...)
	}
	out = append(out, r.lines[:r.next]...)
	if len(r.partial) > 0 {
		out = append(out, string(r.partial))
	}
	return out
}
