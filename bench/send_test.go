package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/daemon"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// startSending runs a daemon with WhatsApp connected to a fake server in this process,
// its send rate raised out of the way (the default, 30 a minute, would be the figure).
func startSending(b *testing.B) (*remedy, *wafake.Server) {
	b.Helper()
	s, err := wafake.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	store := filepath.Join(b.TempDir(), "whatsapp.db")
	if err := wafake.PairedStore(context.Background(), store); err != nil {
		b.Fatal(err)
	}
	r := start(b, func(c *config.Config) {
		c.WhatsApp = config.WhatsApp{Enabled: true, Store: store, SendPerMinute: 10,
			Send: config.Send{PerMinute: 6e6, Burst: 100000, ChatPerMinute: 6e6, ChatBurst: 100000}}
	}, daemon.WithWhatsAppHTTP(s.HTTPClient()))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		req, _ := http.NewRequest("GET", r.base+"/api/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var o struct{ WhatsApp string }
			json.NewDecoder(resp.Body).Decode(&o)
			resp.Body.Close()
			if o.WhatsApp == "connected" {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("WhatsApp did not connect")
		}
	}
	return r, s
}

// BenchmarkSendAPI posts text messages from 16 clients: each 202 is answered once the
// message and its queue item are committed. Ten chats, so the outbound queue sends
// beside the posting.
func BenchmarkSendAPI(b *testing.B) {
	r, _ := startSending(b)
	var n atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS (2 here) = 16 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			r.post(b, "/api/v1/messages", fmt.Appendf(nil, `{"to": "62811000000%02d", "text": "bench %d"}`, i%10, i))
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
}

// BenchmarkSendLatency measures one message at a time from the API call to the fake
// server's receipt of the encrypted message (before its ack): the commit, the queue's
// wake-up, the send rate's check, Signal encryption and the websocket. p50/p99/max.
func BenchmarkSendLatency(b *testing.B) {
	r, s := startSending(b)
	got := make(chan string, 1)
	s.OnMessage(func(m wafake.Message) { got <- m.ID })
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Appendf(nil, `{"to": "6281100000002", "text": "latency %d"}`, i)
		t0 := time.Now()
		req, _ := http.NewRequest("POST", r.base+"/api/v1/messages", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var a struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		select {
		case id := <-got:
			if id != a.ID {
				b.Fatalf("server got %s, sent %s", id, a.ID)
			}
		case <-time.After(30 * time.Second):
			b.Fatal("the message never reached the server")
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50_ms")
	b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99_ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max_ms")
}
