package bottest_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/remedy-run/remedy/bot"
	"github.com/remedy-run/remedy/bot/bottest"
)

// A bot author's test, with only public packages: a customer's private text is
// answered in the private chat, a group command in the group.
func TestWriteAndSent(t *testing.T) {
	var got atomic.Int64
	env := bottest.Start(t, bot.Config{Handler: bot.HandlerFunc(func(ctx context.Context, b *bot.Bot, m bot.Message) error {
		got.Add(1)
		return b.Reply(ctx, m, "echo: "+m.Text)
	})})
	ctx := context.Background()
	if _, err := env.Write(ctx, "6281100000077", "hi"); err != nil {
		t.Fatal(err)
	}
	bottest.Eventually(t, "the echo", func() bool { return len(env.SentTo("6281100000077@s.whatsapp.net")) == 1 })
	if _, err := env.WriteInGroup(ctx, "120363000000000001", "6281100000077", "/ping"); err != nil {
		t.Fatal(err)
	}
	bottest.Eventually(t, "the answer in the group", func() bool { return len(env.SentTo("120363000000000001@g.us")) == 1 })
	if n := got.Load(); n != 2 {
		t.Fatalf("handler called %d times", n)
	}
}
