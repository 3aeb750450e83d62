package web

import (
	"strings"
	"testing"
)

func TestSlowClientsAreDroppedNotWaitedFor(t *testing.T) {
	h := NewHub()
	slow := h.subscribe()
	fast := h.subscribe()
	for i := 0; i < 300; i++ { // more than a client's buffer
		h.Publish("event", map[string]int{"n": i})
		select { // the fast client keeps up
		case <-fast.send:
		default:
		}
	}
	if h.Clients() != 1 || h.Dropped() != 1 {
		t.Fatalf("%d clients, %d dropped", h.Clients(), h.Dropped())
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("the slow client was not closed")
	}
	h.Publish("sample", 1)
	if msg := <-fast.send; !strings.Contains(string(msg), `"type":"sample"`) {
		t.Fatalf("%s", msg)
	}
}
