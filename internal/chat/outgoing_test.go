package chat

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
)

// wire is a WhatsApp connection for the send path: it goes down and up, and some chats
// refuse messages (a 4xx answer).
type wire struct {
	mu      sync.Mutex
	down    bool
	refuse  map[string]bool
	flaky   *rand.Rand // transient failures
	sent    []Outgoing
	perChat map[string][]string
}

func (w *wire) SendText(ctx context.Context, to, text string) error {
	return errors.New("texts only via SendMessage here")
}

func (w *wire) SendMessage(ctx context.Context, m Outgoing, media []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.down:
		return &SendError{Reason: ReasonNotConnected, Err: errors.New("websocket not connected")}
	case w.refuse[m.Chat]:
		return &SendError{Reason: ReasonRefused, Code: 463, Permanent: true, Err: errors.New("server returned error 463")}
	case w.flaky != nil && w.flaky.IntN(5) == 0:
		return &SendError{Reason: ReasonTimeout, Err: errors.New("timed out waiting for message send response")}
	}
	if m.Media != nil && len(media) != int(m.Media.Size) {
		return fmt.Errorf("media of %d bytes, want %d", len(media), m.Media.Size)
	}
	w.sent = append(w.sent, m)
	if w.perChat == nil {
		w.perChat = map[string][]string{}
	}
	w.perChat[m.Chat] = append(w.perChat[m.Chat], m.ID)
	return nil
}

type eventLog struct {
	mu  sync.Mutex
	evs []engine.Event
}

func (l *eventLog) add(e engine.Event) { l.mu.Lock(); l.evs = append(l.evs, e); l.mu.Unlock() }
func (l *eventLog) codes(code string) []engine.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []engine.Event
	for _, e := range l.evs {
		if e.Code == code {
			out = append(out, e)
		}
	}
	return out
}

func sendPipeline(t *testing.T, ctx context.Context, w *wire, ev *eventLog, limits SendLimits) (*Pipeline, *store.DB) {
	t.Helper()
	db, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "remedy.db"), Schema: store.RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// One inbound worker: its idle polling is most of the cost of a long synctest.
	p, err := NewPipeline(ctx, PipelineOptions{DB: db, Sender: w, MediaDir: t.TempDir(), Events: ev.add, Limits: limits,
		Tune: func(o *queue.Options) { o.Workers = 1 }})
	if err != nil {
		t.Fatal(err)
	}
	return p, db
}

// Seeded random sequences of sends to a few chats while the connection drops, some
// tries time out and one chat refuses everything. Invariants: every message ends sent
// or failed (none stuck, none lost), each is sent at most once, and each chat receives
// its messages in the order they were queued.
func TestSendSequencesKeepOrderAndEndEverywhere(t *testing.T) {
	t.Parallel()
	seeds := 4
	if testing.Short() || raceEnabled {
		seeds = 2
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				rng := rand.New(rand.NewPCG(uint64(seed), 17))
				chats := []string{"6281100000001", "6281100000002", "120363000000000001@g.us", "6281100000004"}
				w := &wire{refuse: map[string]bool{"6281100000004@s.whatsapp.net": true}, flaky: rand.New(rand.NewPCG(uint64(seed), 18))}
				ev := &eventLog{}
				p, _ := sendPipeline(t, ctx, w, ev, SendLimits{PerMinute: 600, Burst: 5, ChatPerMinute: 600})
				go p.Run(ctx)
				var ids []string
				want := map[string][]string{}
				for i := range 40 {
					if rng.IntN(8) == 0 {
						w.mu.Lock()
						w.down = !w.down
						w.mu.Unlock()
					}
					to := chats[rng.IntN(len(chats))]
					id, err := p.SendMessage(ctx, Outgoing{To: to, Text: fmt.Sprintf("m%d", i)})
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, id)
					jid, _ := ParseRecipient(to)
					want[jid.String()] = append(want[jid.String()], id)
					time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
				}
				w.mu.Lock()
				w.down = false
				w.mu.Unlock()
				p.Out.Wake() // as the daemon does on WA_CONNECTED
				// Until every message has ended (a try that times out after the wake waits
				// out its backoff, up to 5 minutes), at most half an hour.
				for range 30 {
					time.Sleep(time.Minute)
					synctest.Wait()
					ended := true
					for _, id := range ids {
						if st, err := p.MessageStatus(ctx, id); err != nil || st.Status == StatusQueued {
							ended = false
							break
						}
					}
					if ended {
						break
					}
				}
				sent, failed := 0, 0
				for _, id := range ids {
					st, err := p.MessageStatus(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					switch st.Status {
					case StatusSent:
						sent++
					case StatusFailed:
						failed++
						if !strings.Contains(st.Reason, ReasonRefused) && !strings.Contains(st.Reason, ReasonChatStopped) {
							t.Errorf("%s failed for %q", id, st.Reason)
						}
					default:
						t.Errorf("%s ended %s (%s)", id, st.Status, st.Reason)
					}
				}
				w.mu.Lock()
				defer w.mu.Unlock()
				if len(w.sent) != sent {
					t.Errorf("%d sends on the wire, %d messages sent", len(w.sent), sent)
				}
				for chat, got := range w.perChat {
					if chat == "6281100000004@s.whatsapp.net" {
						t.Errorf("a refusing chat got %v", got)
					}
					if !slices.Equal(got, want[chat]) {
						t.Errorf("%s: sent %v, queued %v", chat, got, want[chat])
					}
				}
				if refused := len(want["6281100000004@s.whatsapp.net"]); refused != failed {
					t.Errorf("%d failed, %d went to the refusing chat", failed, refused)
				}
				if n := len(ev.codes("WA_SEND_STOPPED")); failed >= 3 && n != 1 {
					t.Errorf("%d refusals, %d WA_SEND_STOPPED", failed, n)
				}
			})
		})
	}
}

// A chat that refuses three times in ten minutes is stopped: the next messages are
// dead-lettered without a try, the stop is reported once, and a replay after the stop
// (shortened to 2 minutes here) sends them.
func TestRefusingChatIsStoppedAndReplayable(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		bad := "6281100000004@s.whatsapp.net"
		w := &wire{refuse: map[string]bool{bad: true}}
		ev := &eventLog{}
		p, db := sendPipeline(t, ctx, w, ev, SendLimits{StopFor: 2 * time.Minute})
		go p.Run(ctx)
		var ids []string
		for i := range 6 {
			id, err := p.SendMessage(ctx, Outgoing{To: "+62 811-0000-0004", Text: fmt.Sprint("hello ", i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		tries := len(ev.codes("WA_SEND_FAILED"))
		if st := ev.codes("WA_SEND_STOPPED"); len(st) != 1 || st[0].Labels["chat"] != bad {
			t.Fatalf("stops %v", st)
		}
		var reasons []string
		for _, e := range ev.codes("WA_SEND_FAILED") {
			reasons = append(reasons, e.Labels["reason"])
		}
		if want := []string{"refused", "refused", "refused", "chat_stopped", "chat_stopped", "chat_stopped"}; !slices.Equal(reasons, want) || tries != 6 {
			t.Fatalf("failures %v, want %v", reasons, want)
		}
		for _, id := range ids {
			if st, _ := p.MessageStatus(ctx, id); st.Status != StatusFailed {
				t.Fatalf("%s: %+v", id, st)
			}
		}
		dls, err := queue.DeadLetters(ctx, db, "outbound", true)
		if err != nil || len(dls) != 6 {
			t.Fatalf("dead letters %d %v", len(dls), err)
		}
		// A restart keeps the stop (rebuilt from the refusals among the dead letters).
		again, err := NewPipeline(ctx, PipelineOptions{DB: db, Sender: w, Limits: SendLimits{StopFor: 2 * time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		if until := again.guard.stopped(bad, time.Now()); until.IsZero() || until.After(time.Now().Add(2*time.Minute)) {
			t.Fatalf("after a restart the chat is stopped until %v", until)
		}
		// The chat is fixed (the bot was added back to it); after the stop, a replay sends all.
		w.mu.Lock()
		w.refuse = nil
		w.mu.Unlock()
		time.Sleep(2 * time.Minute)
		if n, err := queue.Replay(ctx, db, "outbound", nil); err != nil || n != 6 {
			t.Fatalf("replayed %d %v", n, err)
		}
		p.Out.Notify()
		time.Sleep(time.Minute)
		synctest.Wait()
		for _, id := range ids {
			if st, _ := p.MessageStatus(ctx, id); st.Status != StatusSent || !st.Replayed {
				t.Fatalf("%s after replay: %+v", id, st)
			}
		}
		if w.perChat[bad] == nil || !slices.Equal(w.perChat[bad], ids) {
			t.Fatalf("sent %v, want %v", w.perChat[bad], ids)
		}
	})
}

// The default send limits pace a burst: one chat gets its burst at once and then 20 a
// minute; the overall limit (30 a minute after a burst of 10) holds across chats.
func TestDefaultSendRate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &wire{}
		p, _ := sendPipeline(t, ctx, w, &eventLog{}, SendLimits{})
		stopped := make(chan struct{})
		go func() { p.Run(ctx); close(stopped) }()
		defer func() { cancel(); <-stopped }() // the worker is busy when the test ends
		for i := range 30 {
			if _, err := p.SendMessage(ctx, Outgoing{To: "6281100000001", Text: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 30 {
			if _, err := p.SendMessage(ctx, Outgoing{To: fmt.Sprintf("62811000001%02d", i), Text: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		count := func() (one, all int) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return len(w.perChat["6281100000001@s.whatsapp.net"]), len(w.sent)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if one, all := count(); one != DefaultSendLimits.ChatBurst || all != DefaultSendLimits.Burst {
			t.Fatalf("at once: %d to the chat, %d in all; want the bursts %d and %d", one, all, DefaultSendLimits.ChatBurst, DefaultSendLimits.Burst)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		// A minute later: the overall burst plus 30 a minute, give or take the one in flight.
		if one, all := count(); all < 39 || all > 41 || one > DefaultSendLimits.ChatBurst+21 {
			t.Fatalf("after a minute: %d to the chat, %d in all", one, all)
		}
	})
}
