package web

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Issue 26, A5: a viewer's WebSocket message is bounded. A frame larger than the read
// limit closes the connection with 1009 (message too big) instead of being read into
// memory; the 1 GiB frame of the field case is one of these. The bound on "never" is
// generous (30 s); the server answers as soon as the frame's header is read.
func TestStreamRefusesALargeMessage(t *testing.T) {
	_, srv := serve(t, Options{})
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/stream"
	for _, size := range []int{streamReadLimit + 1, 1 << 20, 64 << 20} {
		conn, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Streamed in parts, as the field case's client did: the server must not wait
		// for the end of the frame.
		go func() {
			w, err := conn.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := w.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
					return
				}
			}
			w.Close()
		}()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var err2 error
		for err2 == nil {
			_, _, err2 = conn.ReadMessage()
		}
		conn.Close()
		var ce *websocket.CloseError
		if !errors.As(err2, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("a %d-byte message: the connection ended with %v, want close 1009", size, err2)
		}
	}
}

// Issue 26, A22, as a kind: ingest slots are held only by requests whose body has
// arrived. A seeded random number of clients (40 in the field case) send the headers
// of a POST with a large Content-Length and then a part of the body, and stall; while
// they stall, complete posts to every ingest route are answered (never 429).
func TestSlowBodiesHoldNoIngestSlot(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	s := NewServer(Options{Backend: &ingestBackend{}, Hub: NewHub(), ListenHost: "127.0.0.1"})
	srv := httptest.NewServer(s)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	slow := maxIngestInFlight + 8 + rng.IntN(60)
	paths := []string{"/api/v1/events", "/api/v1/samples", "/api/v1/messages", "/api/v1/media"}
	for i := 0; i < slow; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		part := rng.IntN(1000)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n%s",
			paths[rng.IntN(len(paths))], strings.Repeat(" ", part))
	}
	// Every slow client is in the server's hands (reading its body) before the test posts.
	deadline := time.Now().Add(30 * time.Second)
	for s.reading.Load() < int64(slow) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d slow bodies being read after 30 s", s.reading.Load(), slow)
		}
		runtime.Gosched()
	}
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/events", strings.NewReader(`[{"code":"A"}]`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post %d with %d slow bodies open: %d, want 202", i, slow, resp.StatusCode)
		}
	}
}
