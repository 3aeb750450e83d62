package web

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// Hub fans live updates out to the dashboard's WebSocket clients. Publish never blocks:
// a client whose buffer is full is dropped (it reconnects and reloads), so one slow
// browser cannot slow the engine.
type Hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	dropped atomic.Int64
}

type client struct {
	send chan []byte
	gone chan struct{}
	once sync.Once
}

func (c *client) close() { c.once.Do(func() { close(c.gone) }) }

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{clients: map[*client]struct{}{}} }

// Message is one live update: {"type": "decision"|"event"|"sample"|"reload"|"alert", "data": …}.
type Message struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// Publish sends a message to every client.
func (h *Hub) Publish(typ string, data any) {
	b, err := json.Marshal(Message{Type: typ, Data: data})
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c.send <- b:
		default:
			delete(h.clients, c)
			c.close()
			h.dropped.Add(1)
		}
	}
}

func (h *Hub) subscribe() *client {
	c := &client{send: make(chan []byte, 256), gone: make(chan struct{})}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	return c
}

func (h *Hub) unsubscribe(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	c.close()
}

// Clients is the number of connected dashboards.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Dropped counts clients dropped for being slow.
func (h *Hub) Dropped() int64 { return h.dropped.Load() }
