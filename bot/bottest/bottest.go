// Package bottest runs a bot (package bot) in a test against a fake WhatsApp server on
// loopback: the real whatsmeow client, a paired device store, remedy's durable queues,
// and customers' phones that write to the bot with real Signal encryption. It is for a
// bot author's own tests, outside remedy's module too (the fake server itself is
// internal to remedy).
//
//	func TestEcho(t *testing.T) {
//		env := bottest.Start(t, bot.Config{Handler: myHandler})
//		if _, err := env.Write(ctx, "6281100000077", "hi"); err != nil { t.Fatal(err) }
//		bottest.Eventually(t, "the echo", func() bool { return len(env.SentTo("6281100000077@s.whatsapp.net")) == 1 })
//	}
//
// The fake server sees what the bot sends encrypted: Sent says to whom, with which id and
// of which kind, not the text; a bot that wants its texts checked tests its Handler's
// logic, or its send outcomes (an EventHandler), directly.
package bottest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"go.mau.fi/whatsmeow/types"

	"github.com/remedy-run/remedy/bot"
	"github.com/remedy-run/remedy/internal/bottest"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// Env is a running bot and its fake WhatsApp server; the test's end stops both.
type Env struct {
	Bot *bot.Bot

	t      *testing.T
	s      *wafake.Server
	mu     sync.Mutex
	phones map[string]*wafake.Phone
	groups map[string]bool
}

// Sent is a message the bot sent, as WhatsApp's server saw it.
type Sent struct {
	ID   string // the message id (bot.Send's answer)
	To   string // the chat's JID: "…@s.whatsapp.net" or a group's "…@g.us"
	Kind string // "text", "media" or "reaction"
}

// Start runs a bot configured by c against a new fake server and returns once it is
// logged in; DataDir, Listen (a free loopback port: Bot.Addr), Store, WhatsAppHTTP and
// Logger (discarded) are set for the test. It fails the test if the bot cannot start.
func Start(t *testing.T, c bot.Config) *Env {
	t.Helper()
	b, s := bottest.Start(t, c)
	e := &Env{Bot: b, t: t, s: s, phones: map[string]*wafake.Phone{}, groups: map[string]bool{}}
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, p := range e.phones {
			p.Close()
		}
	})
	return e
}

func (e *Env) phone(ctx context.Context, number string) (*wafake.Phone, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.phones[number]; p != nil {
		return p, nil
	}
	p, err := wafake.NewPhone(ctx, e.t.TempDir(), number)
	if err != nil {
		return nil, err
	}
	e.phones[number] = p
	return p, nil
}

// Write has the phone number from (digits, country code first: "6281100000077") send a
// text to the bot in a private chat, and returns the message's id; the bot's Handler
// gets it as a Message with Chat "<from>@s.whatsapp.net". Errors: a number the fake
// phone cannot be made for, or the bot not connected.
func (e *Env) Write(ctx context.Context, from, text string) (string, error) {
	return e.write(ctx, "", from, text)
}

// WriteInGroup is Write in the group with the id group (digits: "120363000000000001";
// the group exists from its first message, with from as a member): the Message's Chat
// and Group are "<group>@g.us".
func (e *Env) WriteInGroup(ctx context.Context, group, from, text string) (string, error) {
	e.mu.Lock()
	if !e.groups[group+"/"+from] {
		e.groups[group+"/"+from] = true
		e.s.AddGroup(group, from)
	}
	e.mu.Unlock()
	return e.write(ctx, group, from, text)
}

func (e *Env) write(ctx context.Context, group, from, text string) (string, error) {
	p, err := e.phone(ctx, from)
	if err != nil {
		return "", err
	}
	cli := e.Bot.Client()
	if cli == nil || !cli.IsLoggedIn() {
		return "", fmt.Errorf("bottest: the bot is not connected")
	}
	n, err := p.Prepare(ctx, cli.Store, text)
	if err != nil {
		return "", err
	}
	if group != "" {
		n.Attrs["from"], n.Attrs["participant"] = types.NewJID(group, types.GroupServer), p.JID
	}
	sent := false
	e.s.Each(func(c *wafake.Conn) {
		if err == nil && !sent {
			err, sent = c.Send(n), true
		}
	})
	if err == nil && !sent {
		err = fmt.Errorf("bottest: the bot is not connected")
	}
	return n.Attrs["id"].(string), err
}

// Sent returns the messages the bot has sent so far, in order.
func (e *Env) Sent() []Sent {
	var out []Sent
	for _, m := range e.s.Messages() {
		out = append(out, Sent{ID: m.ID, To: m.Chat, Kind: m.Type})
	}
	return out
}

// SentTo returns the messages sent to one chat (a JID, as Message.Chat gives it).
func (e *Env) SentTo(chat string) []Sent {
	var out []Sent
	for _, m := range e.Sent() {
		if m.To == chat {
			out = append(out, m)
		}
	}
	return out
}

// Eventually waits until ok, polling every 20 ms, and fails the test naming what if 20 s
// pass first (messages go through real sockets and SQLite: no fake clock reaches them).
func Eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	bottest.Eventually(t, what, ok)
}
