package wafake

import (
	"context"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// NewInMemory starts a server that the client reaches over in-memory connections
// (net.Pipe) instead of loopback sockets, and without TLS (the Noise handshake inside
// still runs in full). A goroutine blocked on a real socket is not "durably blocked" for
// testing/synctest, so the fake clock would stop; with pipes the real whatsmeow client,
// its keepalive and every timer of remedy run on the bubble's clock, and hours of
// faults take a moment. Create it inside the bubble; the same fault controls apply.
func NewInMemory() (*Server, error) {
	s, err := newCore()
	if err != nil {
		return nil, err
	}
	m := &memNet{s: s, conns: make(chan net.Conn), done: make(chan struct{})}
	m.hs = &http.Server{Handler: http.HandlerFunc(s.serve)}
	s.mem = m
	go m.hs.Serve(m)
	return s, nil
}

// memNet is the server's listener and the client's dialer.
type memNet struct {
	s     *Server
	hs    *http.Server
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

type memAddr struct{}

func (memAddr) Network() string { return "pipe" }
func (memAddr) String() string  { return "wafake" }

// Accept implements net.Listener.
func (m *memNet) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (m *memNet) Close() error {
	m.once.Do(func() { close(m.done) })
	return nil
}

// Addr implements net.Listener.
func (m *memNet) Addr() net.Addr { return memAddr{} }

func (m *memNet) close() {
	m.Close()
	m.hs.Close()
}

func (m *memNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	if m.s.down.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	cli, srv := net.Pipe()
	select {
	case m.conns <- srv:
		return cli, nil
	case <-m.done:
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// client dials the server for plain and "TLS" connections alike: the websocket URL is
// wss://, and the transport takes what DialTLSContext returns as already secured.
func (m *memNet) client() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: m.dial, DialTLSContext: m.dial}}
}
