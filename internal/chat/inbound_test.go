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
	"unicode"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/webhook"
)

// pipelineEnv is a Pipeline on a real SQLite file with a connected phone; run inside a
// synctest bubble.
type pipelineEnv struct {
	p      *Pipeline
	ph     *phone
	db     *store.DB
	b      *fakeBackend
	mu     sync.Mutex
	events []engine.Event
}

func newPipelineEnv(t *testing.T, ctx context.Context, h Handler, tune func(*queue.Options)) *pipelineEnv {
	t.Helper()
	db, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "remedy.db"), Schema: store.RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &pipelineEnv{ph: &phone{connected: true}, db: db, b: &fakeBackend{}}
	// The send rate limit is the outbound side's (deliver.go); here it must not pace.
	limits := SendLimits{PerMinute: 1e6, Burst: 1000, ChatPerMinute: 1e6, ChatBurst: 1000}
	e.p, err = NewPipeline(ctx, PipelineOptions{DB: db, Sender: e.ph, Handler: h, Tune: tune, Limits: limits,
		Commands: &Commands{Admins: []string{"+6281100000001"}, Backend: e.b},
		Events:   func(ev engine.Event) { e.mu.Lock(); e.events = append(e.events, ev); e.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *pipelineEnv) count(code string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Code == code {
			n++
		}
	}
	return n
}

// The routing rule (b2-02, b2-05), over seeded random messages: a message is remedy's
// only if it is one of remedy's command names after the prefix and comes from an admin;
// remedy's answer goes to that admin privately. Everything else reaches the bot —
// customers' "!menu", admins' unknown "!commands", remedy's command names from
// strangers — and the bot's reply goes to the chat as received (a group's JID for a
// group message), never to an address made from a group's id. Nothing is lost: every
// message is answered exactly once.
func TestEveryMessageIsRemedysOrTheBots(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	n := 200
	if testing.Short() || raceEnabled {
		n = 40
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	prefixes := []string{"", "!", "/", "#r-"}
	if testing.Short() || raceEnabled {
		prefixes = []string{"", "#r-"}
	}
	for _, prefix := range prefixes {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			bot := map[string]bool{}
			e := newPipelineEnv(t, ctx, HandlerFunc(func(ctx context.Context, m Message) (string, error) {
				mu.Lock()
				bot[m.ID] = true
				mu.Unlock()
				return "bot:" + m.ID, nil
			}), nil)
			e.p.commands.Prefix = prefix
			p := prefix
			if p == "" {
				p = "!"
			}
			go e.p.Run(ctx)
			type sent struct {
				m      Message
				remedy bool
			}
			var all []sent
			senders := []string{"6281100000001", "+62 811-0000-0001", "6289999999999", "6282200000002"}
			words := []string{"status", "STATUS", "help", "menu", "price", "run RECONNECT_WA", "ack 3", "frobnicate", "", " status", "statusx", "status\u00a0now"}
			for i := range n {
				from := senders[rng.IntN(len(senders))]
				var text string
				switch rng.IntN(4) {
				case 0:
					text = "hello " + fmt.Sprint(i)
				case 1:
					text = "!" + words[rng.IntN(len(words))]
				default:
					text = p + words[rng.IntN(len(words))]
				}
				if rng.IntN(3) == 0 {
					text = "  " + text
				}
				m := Message{ID: fmt.Sprintf("m%d", i), From: Digits(from), Text: text, Kind: webhook.KindText}
				if rng.IntN(2) == 0 {
					m.Chat, m.Group = "120363000000000001@g.us", "120363000000000001@g.us"
				} else {
					m.Chat = Digits(from) + "@s.whatsapp.net"
				}
				admin := Digits(from) == "6281100000001"
				// remedy's: the prefix, then at once one of its names, then a space or the end.
				rest, ok := strings.CutPrefix(strings.TrimSpace(text), p)
				name := rest
				if i := strings.IndexFunc(rest, unicode.IsSpace); i >= 0 {
					name = rest[:i]
				}
				isCmd := ok && slices.Contains(Names, strings.ToLower(name))
				all = append(all, sent{m, admin && isCmd})
				if err := e.p.Receive(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			for range 20 { // until every message has its answer (at most 20 s)
				time.Sleep(250 * time.Millisecond)
				synctest.Wait()
				if len(e.ph.all()) >= len(all) {
					break
				}
			}
			time.Sleep(time.Second) // and a second for an answer too many
			synctest.Wait()
			out := e.ph.all()
			if len(out) != len(all) {
				t.Fatalf("prefix %q: %d replies for %d messages", prefix, len(out), len(all))
			}
			for _, s := range all {
				if s.remedy {
					if bot[s.m.ID] {
						t.Errorf("prefix %q: remedy's command %q from the admin reached the bot", prefix, s.m.Text)
					}
					continue
				}
				if !bot[s.m.ID] {
					t.Errorf("prefix %q: %q from %s never reached the bot", prefix, s.m.Text, s.m.From)
				}
				if want := s.m.Chat + ": bot:" + s.m.ID; !slices.Contains(out, want) {
					t.Errorf("prefix %q: the bot's reply to %s is not %q in %q", prefix, s.m.ID, want, out)
				}
			}
			for _, o := range out {
				if strings.HasPrefix(o, "120363000000000001@s.whatsapp.net") || strings.HasPrefix(o, "120363000000000001:") {
					t.Fatalf("a reply went to an address made from the group's id: %q", o)
				}
				if !strings.HasPrefix(o, "6281100000001: ") && !strings.Contains(o, ": bot:") {
					t.Fatalf("remedy answered someone else than the admin: %q", o)
				}
			}
		})
	}
}

// b2-03: a handler that takes 35 s gets the inbound queue's item timeout (2 minutes by
// default, the configured one otherwise) and is not handed the message again while it
// works; its answer is sent once.
func TestASlowHandlerIsNotRedelivered(t *testing.T) {
	t.Parallel()
	for _, timeout := range []time.Duration{0, 90 * time.Second} {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls []time.Duration
			var deadlines []time.Duration
			e := newPipelineEnv(t, ctx, HandlerFunc(func(ctx context.Context, m Message) (string, error) {
				dl, _ := ctx.Deadline()
				calls = append(calls, time.Duration(time.Now().Unix()))
				deadlines = append(deadlines, time.Until(dl))
				select {
				case <-time.After(35 * time.Second):
					return "here is your itinerary", nil
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}), func(o *queue.Options) {
				o.Workers = 1 // one message: one idle worker polling (cheaper)
				if timeout > 0 && o.Name == "inbound" {
					o.ItemTimeout = timeout
				}
			})
			go e.p.Run(ctx)
			go e.p.In.RunWatchdog(ctx, 15*time.Second)
			e.p.Receive(ctx, Message{ID: "m1", From: "6281100000077", Chat: "6281100000077@s.whatsapp.net", Text: "plan a trip"})
			// past the 30 s the handler used to get and the minute after which the queue was
			// called stuck
			time.Sleep(75 * time.Second)
			synctest.Wait()
			want := timeout
			if want == 0 {
				want = InboundItemTimeout
			}
			if len(calls) != 1 || deadlines[0] != want {
				t.Fatalf("item_timeout %v: %d calls, deadlines %v (want one call with %v)", timeout, len(calls), deadlines, want)
			}
			if got := e.ph.all(); len(got) != 1 || got[0] != "6281100000077@s.whatsapp.net: here is your itinerary" {
				t.Fatalf("sent %q", got)
			}
			if e.count("QUEUE_STUCK") != 0 {
				t.Fatal("a handler working within its time made the queue stuck")
			}
		})
	}
}

// b2-04: a handler that is down for a while (503, a deploy) gets the message once it is
// back, as long as it is back within the retry schedule (1 s doubling, 10 attempts:
// 511 s); one that never comes back has the message dead-lettered at the end of the
// schedule with QUEUE_DEAD_LETTER, the event the default policy queue-dead-letter alerts
// on. Seeded random outage lengths; a Retry-After the handler gives is honoured.
func TestHandlerOutagesWithinTheRetrySpanLoseNothing(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	outages := []time.Duration{25 * time.Second, 20 * time.Minute}
	random := 3
	// Each case of the real schedule is ~2,000 polls of the idle worker (seconds under
	// -race): there the 20-minute outage runs the same 10 attempts on a 10 ms schedule.
	scaled := testing.Short() || raceEnabled
	if scaled {
		random = 0
	} else {
		outages = append(outages, 510*time.Second)
	}
	for range random {
		outages = append(outages, time.Duration(rng.IntN(600))*time.Second)
	}
	for _, outage := range outages {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			var attempts []time.Duration
			delay := InboundRetryDelay
			scale := scaled && outage > 10*time.Minute
			if scale {
				delay = 10 * time.Millisecond
			}
			retryAfter := rng.IntN(2) == 0 && !scale
			e := newPipelineEnv(t, ctx, HandlerFunc(func(ctx context.Context, m Message) (string, error) {
				attempts = append(attempts, time.Since(start))
				if time.Since(start) < outage {
					err := errors.New("handler answered 503 Service Unavailable")
					if retryAfter {
						return "", &queue.RetryAfterError{Err: err, After: 3 * time.Second}
					}
					return "", err
				}
				return "hi", nil
			}), func(o *queue.Options) { o.Workers, o.RetryDelay = 1, delay }) // one message: one worker polls (cheaper)
			go e.p.Run(ctx)
			e.p.Receive(ctx, Message{ID: "m1", From: "6281100000077", Chat: "6281100000077@s.whatsapp.net", Text: "is my order shipped?"})
			// until it is delivered or dead-lettered, at most the end of the retry span and
			// a little more (each attempt at most 3 s late)
			var dead []queue.DeadLetter
			delivered := false
			for end := time.Now().Add(delay<<(InboundAttempts-1) + 3*InboundAttempts*time.Second); time.Now().Before(end); {
				time.Sleep(time.Second)
				synctest.Wait()
				dead, _ = queue.DeadLetters(ctx, e.db, "inbound", true)
				if delivered = len(e.ph.all()) == 1; delivered || len(dead) > 0 {
					break
				}
			}
			var span time.Duration // when the last attempt was made
			if len(attempts) > 0 {
				span = attempts[len(attempts)-1]
			}
			// the schedule: attempt k waits 2^(k-1) s (at least 3 s with Retry-After)
			var last time.Duration
			for k := 1; k < InboundAttempts; k++ {
				d := delay << (k - 1)
				if retryAfter {
					d = max(d, 3*time.Second)
				}
				last += d
			}
			switch {
			case outage <= last-time.Second || outage == 0:
				if !delivered || len(dead) != 0 {
					t.Fatalf("outage %v (retry span %v): delivered %v, dead letters %d, attempts at %v", outage, last, delivered, len(dead), attempts)
				}
			case outage > last+time.Second:
				late := span < last || span > last+time.Second // each retry is polled within 250 ms: the scaled schedule is all lateness
				if delivered || len(dead) != 1 || e.count("QUEUE_DEAD_LETTER") != 1 || len(attempts) != InboundAttempts || late && !scale {
					t.Fatalf("outage %v (retry span %v): delivered %v, dead letters %d, QUEUE_DEAD_LETTER %d, %d attempts at %v",
						outage, last, delivered, len(dead), e.count("QUEUE_DEAD_LETTER"), len(attempts), attempts)
				}
			}
			if delivered && len(dead) != 0 || !delivered && len(dead) == 0 && outage > 0 {
				t.Fatalf("outage %v: lost or duplicated: delivered %v, dead letters %d", outage, delivered, len(dead))
			}
		})
	}
}

// Deliveries that are not messages (receipts, the outbound side's send outcomes) go to
// a handler that takes events, durably, each with its delivery id (several workers:
// in any order).
func TestNotificationsReachAnEventHandler(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h := &eventRecorder{}
		e := newPipelineEnv(t, ctx, h, nil)
		go e.p.Run(ctx)
		r := webhook.Receipt{MessageIDs: []string{"3EB0AA"}, Chat: "6281100000077@s.whatsapp.net", From: "6281100000077", Status: "read"}
		ev, err := webhook.New(webhook.TypeReceipt, time.Now(), r)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.p.Notify(ctx, ev); err != nil {
			t.Fatal(err)
		}
		other, _ := webhook.New("message_status", time.Now(), map[string]string{"id": "42", "status": "failed"})
		if err := e.p.Notify(ctx, other); err != nil {
			t.Fatal(err)
		}
		if err := e.p.Notify(ctx, webhook.NewMessage(Message{ID: "x"})); err == nil {
			t.Fatal("Notify took a message")
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.got) == 2 && h.got[0].Type != webhook.TypeReceipt {
			h.got[0], h.got[1] = h.got[1], h.got[0]
		}
		if len(h.got) != 2 || h.got[0].Receipt == nil || h.got[0].Receipt.Status != "read" || h.got[1].Type != "message_status" ||
			string(h.got[1].Data) != `{"id":"42","status":"failed"}` || !strings.HasPrefix(h.ids[0], "q") {
			t.Fatalf("got %+v (delivery ids %v)", h.got, h.ids)
		}
	})
}

type eventRecorder struct {
	mu  sync.Mutex
	got []webhook.Event
	ids []string
}

func (h *eventRecorder) Handle(context.Context, Message) (string, error) { return "", nil }
func (h *eventRecorder) HandleEvent(ctx context.Context, e webhook.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, e)
	h.ids = append(h.ids, DeliveryID(ctx))
	return nil
}
