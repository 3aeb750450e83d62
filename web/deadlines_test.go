package web

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// pipeListener hands the server the far ends of in-memory pipes: an HTTP server inside
// a synctest bubble, whose deadlines run on the bubble's clock.
type pipeListener struct{ conns chan net.Conn }

func (l pipeListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l pipeListener) Close() error   { return nil }
func (l pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// Issue 26, A5's deadline: a stream client that answers no ping (a half-open connection,
// or one that never reads) is dropped streamPongWait after its last pong, not kept
// forever. On synctest's clock: the drop comes at exactly 60 s.
func TestStreamDropsAClientThatAnswersNoPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := pipeListener{conns: make(chan net.Conn)}
		srv := &http.Server{Handler: NewServer(Options{Backend: &fake{}, Hub: NewHub(), ListenHost: "127.0.0.1"})}
		go srv.Serve(ln)
		client, server := net.Pipe()
		ln.conns <- server
		start := time.Now()
		_, err := io.WriteString(client, "GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(client)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		// Read the server's frames (pings) as raw bytes, never answering them; a bound
		// far past the wait, so a server that never drops the client fails the test.
		client.SetReadDeadline(start.Add(10 * streamPongWait))
		_, err = io.Copy(io.Discard, br)
		got := time.Since(start)
		client.Close()
		close(ln.conns)
		srv.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server kept a silent client for %v", got)
		}
		if got != streamPongWait {
			t.Fatalf("dropped after %v (%v), want %v", got, err, streamPongWait)
		}
	})
}

// Issue 26, A22's deadline: an ingest body that stops arriving is cut at
// ingestBodyTimeout plus 1 s per ingestBodyRate bytes it declared (10 s for the field
// case's 100,000 bytes), on synctest's clock; nothing is ingested.
func TestSlowIngestBodyIsCutAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &ingestBackend{}
		ln := pipeListener{conns: make(chan net.Conn)}
		srv := &http.Server{Handler: NewServer(Options{Backend: b, Hub: NewHub(), ListenHost: "127.0.0.1"})}
		go srv.Serve(ln)
		client, server := net.Pipe()
		ln.conns <- server
		start := time.Now()
		go io.Copy(io.Discard, client) // the answer, if any
		_, err := io.WriteString(client, "POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"+
			"Content-Length: 100000\r\n\r\n[{\"code\":")
		if err != nil {
			t.Fatal(err)
		}
		// Then nothing more: the next write fails once the server has closed the
		// connection (bounded far past the deadline).
		client.SetWriteDeadline(start.Add(10 * ingestBodyTimeout))
		for err == nil {
			time.Sleep(time.Second) // the slow client's pace, on the bubble's clock
			_, err = io.WriteString(client, " ")
		}
		got := time.Since(start)
		client.Close()
		close(ln.conns)
		srv.Close()
		want := ingestBodyTimeout // + 100000/ingestBodyRate = 0 s
		if got < want || got > want+time.Second || len(b.got) != 0 {
			t.Fatalf("slow body cut after %v (%v), want %v; ingested %d", got, err, want, len(b.got))
		}
	})
}
