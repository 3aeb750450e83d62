package web

import (
	"bytes"
	"errors"
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
