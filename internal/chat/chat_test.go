package chat

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/webhook"
)

type fakeBackend struct {
	mu      sync.Mutex
	refused []string
	acked   []int64
	ran     []string
	silence []string
}

func (b *fakeBackend) Status(context.Context) string {
	return "WhatsApp connected, database ok, 0 firing"
}
func (b *fakeBackend) Alerts(context.Context) string   { return "#7 queue-stuck (inbound) error firing" }
func (b *fakeBackend) Report(context.Context) string   { return "remedy daily report" }
func (b *fakeBackend) Policies(context.Context) string { return "30 policies, 0 firing" }
func (b *fakeBackend) Ack(_ context.Context, id int64, by string) error {
	if id == 404 {
		return errors.New("no alert #404")
	}
	b.acked = append(b.acked, id)
	return nil
}
func (b *fakeBackend) Silence(_ context.Context, d time.Duration, policy, by string) (int64, error) {
	b.silence = append(b.silence, policy+" "+d.String()+" "+by)
	return 3, nil
}
func (b *fakeBackend) Unsilence(context.Context, int64) error { return nil }
func (b *fakeBackend) Run(_ context.Context, _, action, target, by string) (string, error) {
	b.ran = append(b.ran, action+" "+target)
	return action + " started", nil
}
func (b *fakeBackend) Refused(_ context.Context, from, text string) {
	b.mu.Lock()
	b.refused = append(b.refused, from+": "+text)
	b.mu.Unlock()
}

func TestCommands(t *testing.T) {
	t.Parallel()
	b := &fakeBackend{}
	c := &Commands{Admins: []string{"+62 811-0000-0001"}, Allowed: []string{"RECONNECT_WA", "CLEAR_QUEUE"}, Backend: b}
	ctx := context.Background()
	admin := func(text string) string {
		r, handled := c.Handle(ctx, Message{From: "6281100000001", Text: text})
		if !handled {
			t.Fatalf("%q not handled", text)
		}
		return r
	}
	// In order: the backend's record of what ran is compared in order below.
	cases := [][2]string{
		{"!status", "WhatsApp connected"},
		{"!alerts", "#7 queue-stuck"},
		{"!ack 7", "alert #7 acknowledged"},
		{"!ack #404", "ack failed: no alert #404"},
		{"!ack", "usage: !ack ID"},
		{"!silence 2h wa-flapping", "silence #3: alerts of wa-flapping held for 2h0m0s"},
		{"!silence forever", "the duration is like 30m or 2h"},
		{"!unsilence 3", "silence #3 ended"},
		{"!run reconnect_wa", "RECONNECT_WA started"},
		{"!run CLEAR_QUEUE inbound", "CLEAR_QUEUE started"},
		{"!run EXEC rm", "EXEC is not allowed from the chat; allowed: CLEAR_QUEUE, RECONNECT_WA"},
		{"!report", "remedy daily report"},
		{"!policies", "30 policies"},
		{"!help", "!silence DURATION [policy]"},
	}
	for _, tc := range cases {
		text, want := tc[0], tc[1]
		if got := admin(text); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", text, got, want)
		}
	}
	if strings.Join(b.ran, ",") != "RECONNECT_WA ,CLEAR_QUEUE inbound" || b.silence[0] != "wa-flapping 2h0m0s +6281100000001" {
		t.Fatalf("ran %v silence %v", b.ran, b.silence)
	}
	// A stranger's use of remedy's command is recorded and left to the bot.
	if r, handled := c.Handle(ctx, Message{From: "6289999999999", Text: "!run RECONNECT_WA"}); handled || r != "" {
		t.Fatalf("stranger: %q %v", r, handled)
	}
	if len(b.refused) != 1 || !strings.Contains(b.refused[0], "6289999999999: !run RECONNECT_WA") || len(b.ran) != 2 {
		t.Fatalf("refused %v, ran %v", b.refused, b.ran)
	}
	// Plain messages are the bot's, from anyone.
	if _, handled := c.Handle(ctx, Message{From: "6281100000001", Text: "hello"}); handled {
		t.Fatal("a plain message was taken as a command")
	}
}

// phone is a WhatsApp sender that can be disconnected.
type phone struct {
	mu        sync.Mutex
	connected bool
	sent      []string
}

func (p *phone) SendText(ctx context.Context, to, text string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.connected {
		return errors.New("not connected")
	}
	p.sent = append(p.sent, to+": "+text)
	return nil
}

func (p *phone) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.sent...)
}

// Replies made while WhatsApp is down go out once it is back, once each.
func TestPipelineKeepsRepliesAcrossADisconnect(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		db, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "remedy.db"), Schema: store.RemedySchema})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		b := &fakeBackend{}
		ph := &phone{}
		p, err := NewPipeline(ctx, PipelineOptions{DB: db, Sender: ph,
			Commands: &Commands{Admins: []string{"+6281100000001"}, Backend: b},
			Handler: HandlerFunc(func(ctx context.Context, m Message) (string, error) {
				return "echo: " + m.Text, nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		go p.Run(ctx)
		p.Receive(ctx, Message{From: "6281100000001", Text: "!status"})
		p.Receive(ctx, Message{From: "6289999999999", Text: "!status"})
		p.Receive(ctx, Message{From: "6282200000002", Chat: "group-1", Text: "hi bot"})
		time.Sleep(10 * time.Second) // WhatsApp is down: the replies wait and are retried
		synctest.Wait()
		if len(ph.all()) != 0 {
			t.Fatal("sent while disconnected")
		}
		if v := p.counters.Values(); v["msgs_received_per_min"] != 3 || v["msgs_processed_per_min"] != 3 {
			t.Fatalf("counters %v", v)
		}
		ph.mu.Lock()
		ph.connected = true
		ph.mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		got := strings.Join(ph.all(), " | ")
		// The stranger's "!status" is the bot's (b2-05).
		if len(ph.all()) != 3 || !strings.Contains(got, "6281100000001: WhatsApp connected") || !strings.Contains(got, "group-1: echo: hi bot") ||
			!strings.Contains(got, "6289999999999: echo: !status") {
			t.Fatalf("sent: %s", got)
		}
		if len(b.refused) != 1 {
			t.Fatalf("refused %v", b.refused)
		}
		if v := p.counters.Values(); v["msgs_sent_per_min"] != 3 {
			t.Fatalf("counters %v", v)
		}
	})
}

func TestWebhookHandler(t *testing.T) {
	t.Parallel()
	var got webhook.Event
	var verr error
	var legacy string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		legacy = r.Header.Get(webhook.LegacySignatureHeader)
		got, verr = webhook.Read(r, []byte("k"))
		json.NewEncoder(w).Encode(map[string]string{"reply": "got it"})
	}))
	defer srv.Close()
	h := WebhookHandler{URL: srv.URL, Secret: []byte("k")}
	reply, err := h.Handle(context.Background(), Message{From: "62811", Text: "order 12", Kind: webhook.KindText})
	if err != nil || reply != "got it" || verr != nil || got.Message == nil || got.Message.Text != "order 12" || got.Type != "message" {
		t.Fatalf("%q %v %v %+v", reply, err, verr, got)
	}
	// X-Remedy-Signature means one thing, the alert webhook's body-only HMAC: a
	// handler delivery does not carry it, so the alerts' check fails loudly (no header)
	// on one instead of comparing a different HMAC.
	if legacy != "" {
		t.Fatalf("a handler delivery carries %s: %s", webhook.LegacySignatureHeader, legacy)
	}
	bad := WebhookHandler{URL: srv.URL + "/x?key=QUERYSECRET", Client: &http.Client{Transport: failing{}}}
	if _, err := bad.Handle(context.Background(), Message{}); err == nil {
		t.Fatal("a failing handler must fail the item (it is retried)")
	} else if strings.Contains(err.Error(), "SECRET") { // the error is logged and audited
		t.Fatalf("the handler URL's secret is in the error: %v", err)
	}
}

type failing struct{}

func (failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, errors.New("refused") }
