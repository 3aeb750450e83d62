package whatsapp

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// sockets tracks the TCP connections the client dials, so that a fire drill can cut
// them the way a network failure does: whatsmeow sees a read error, not a deliberate
// Disconnect, and the reconnect policies are what bring it back. Every write first
// passes beforeWrite (Options.BeforeWrite).
type sockets struct {
	mu          sync.Mutex
	conns       map[*trackedConn]struct{}
	beforeWrite func() error
	gated       bool // the client dials through the tracker (wrap)
}

type trackedConn struct {
	net.Conn
	s      *sockets
	once   sync.Once
	closed chan struct{} // closed by Close
}

// Write holds the bytes back until beforeWrite says that what they acknowledge is on
// disk; its failure breaks the connection rather than send them. Closing the connection
// ends the wait (the bytes are not sent): on a stalled disk the held write keeps the
// websocket's write lock, which whatsmeow's Disconnect (shutdown, a login, the watchdog)
// waits for; the sync itself goes on in the background.
func (c *trackedConn) Write(b []byte) (int, error) {
	if c.s.beforeWrite != nil {
		res := make(chan error, 1)
		go func() { res <- c.s.beforeWrite() }()
		select {
		case err := <-res:
			if err != nil {
				c.Close()
				return 0, fmt.Errorf("not sent to WhatsApp: what it acknowledges is not on disk: %w", err)
			}
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	return c.Conn.Write(b)
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		close(c.closed)
	})
	return c.Conn.Close()
}

// wrap returns a client whose transport dials through the tracker. A client whose
// transport is not an *http.Transport is returned as it is (nothing to cut).
func (s *sockets) wrap(h *http.Client) *http.Client {
	tr, ok := h.Transport.(*http.Transport)
	if !ok {
		return h
	}
	s.gated = true
	tr = tr.Clone()
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = s.track(dial)
	if tr.DialTLSContext != nil { // a test's in-memory transport
		tr.DialTLSContext = s.track(tr.DialTLSContext)
	}
	out := *h
	out.Transport = tr
	return &out
}

func (s *sockets) track(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: conn, s: s, closed: make(chan struct{})}
		s.mu.Lock()
		s.conns[tc] = struct{}{}
		s.mu.Unlock()
		return tc, nil
	}
}

// cut closes every open socket and says how many there were.
func (s *sockets) cut() int {
	s.mu.Lock()
	open := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close() // the client's read loop sees the error
	}
	return len(open)
}

// WritesWait says whether every write to WhatsApp passes Options.BeforeWrite: false
// when it is not set, or the HTTP client's transport is not an *http.Transport (a
// test's), which the connection cannot see into.
func (c *Conn) WritesWait() bool { return c.socks.beforeWrite != nil && c.socks.gated }

// DropSocket cuts the connection to WhatsApp under the client, as a network failure
// would (the fire drill "whatsapp"). It returns the number of sockets cut.
func (c *Conn) DropSocket() int { return c.socks.cut() }
