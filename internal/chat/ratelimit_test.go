package chat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// clockWire records when each message leaves, and to which chat (API messages and
// the handler's replies alike).
type clockWire struct {
	mu   sync.Mutex
	sent []sentAt
}

type sentAt struct {
	chat string
	at   time.Time
}

func (w *clockWire) record(chat string) {
	w.mu.Lock()
	w.sent = append(w.sent, sentAt{chat, time.Now()})
	w.mu.Unlock()
}

func (w *clockWire) SendText(ctx context.Context, to, text string) error { w.record(to); return nil }
func (w *clockWire) SendMessage(ctx context.Context, m Outgoing, media []byte) error {
	w.record(m.Chat)
	return nil
}

// withinBucket checks a token bucket's promise on departure times: in any interval of
// length d, at most burst + rate×d messages (rate per second; 1e-6 absorbs the
// nanosecond rounding of the limiter's times).
func withinBucket(times []time.Time, rate float64, burst int) (int, int, bool) {
	for i := range times {
		for j := i; j < len(times); j++ {
			if n := j - i + 1; float64(n) > float64(burst)+rate*times[j].Sub(times[i]).Seconds()+1e-6 {
				return i, j, false
			}
		}
	}
	return 0, 0, true
}

// Seeded random limits and arrival patterns (floods, trickles, one chat or many, API
// messages mixed with the handler's replies): whatever arrives, no more than the
// configured rate leaves — overall and per chat, measured on the wire as a token
// bucket allows it — and every message leaves in the end.
func TestSendRateHoldsForAnyArrivalPattern(t *testing.T) {
	t.Parallel()
	seeds, messages := 6, 60
	if testing.Short() || raceEnabled {
		seeds, messages = 2, 30
	}
	for seed := 3; seed < 3+seeds; seed++ { // seed 3 caught the chat's token taken too early
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				rng := rand.New(rand.NewPCG(uint64(seed), 99))
				lim := SendLimits{PerMinute: float64(10 + rng.IntN(110)), Burst: 1 + rng.IntN(10),
					ChatPerMinute: float64(10 + rng.IntN(60)), ChatBurst: 1 + rng.IntN(5)}
				w := &clockWire{}
				p, _ := sendPipeline(t, ctx, &wire{}, &eventLog{}, lim)
				p.sender, p.messages = w, w
				stopped := make(chan struct{})
				go func() { p.Run(ctx); close(stopped) }()
				defer func() { cancel(); <-stopped }()
				chats := make([]string, 1+rng.IntN(5))
				for i := range chats {
					chats[i] = fmt.Sprintf("62811000000%02d@s.whatsapp.net", i)
				}
				total := 0
				for total < messages {
					n := 1 + rng.IntN(20) // a flood or a trickle
					for range n {
						to := chats[rng.IntN(len(chats))]
						var err error
						if rng.IntN(4) == 0 {
							_, err = p.Out.Enqueue(ctx, Reply{To: to, Text: "reply"}) // an item of an older remedy's queue
						} else {
							_, err = p.SendMessage(ctx, Outgoing{To: to, Text: "m"})
						}
						if err != nil {
							t.Fatal(err)
						}
						total++
					}
					time.Sleep(time.Duration(rng.IntN(20_000)) * time.Millisecond)
				}
				// Until everything has left (at the slowest rate, a few minutes; the
				// idle pollers of fake time are this test's cost under -race).
				for range 100 {
					time.Sleep(5 * time.Second)
					synctest.Wait()
					w.mu.Lock()
					n := len(w.sent)
					w.mu.Unlock()
					if n == total {
						break
					}
				}
				w.mu.Lock()
				defer w.mu.Unlock()
				if len(w.sent) != total {
					t.Fatalf("limits %+v: %d of %d messages left", lim, len(w.sent), total)
				}
				all := []time.Time{}
				perChat := map[string][]time.Time{}
				for _, s := range w.sent {
					all = append(all, s.at)
					perChat[s.chat] = append(perChat[s.chat], s.at)
				}
				if i, j, ok := withinBucket(all, lim.PerMinute/60, lim.Burst); !ok {
					t.Errorf("limits %+v: %d messages left between %v and %v", lim, j-i+1, all[i], all[j])
				}
				for chat, ts := range perChat {
					if i, j, ok := withinBucket(ts, lim.ChatPerMinute/60, lim.ChatBurst); !ok {
						t.Errorf("limits %+v: %d messages to %s between %v and %v", lim, j-i+1, chat, ts[i], ts[j])
					}
				}
			})
		})
	}
}
