// Command echobot is a WhatsApp bot embedded in remedy with package bot: it echoes
// texts, answers "photo" with an image, and in groups answers the command "/who" with
// who asked. remedy supervises the connection, queues every message durably, and its
// admin commands (!status, …) and dashboard work as in `remedy run`.
//
//	go run ./examples/echobot -config remedy.yaml   # pair first: remedy pair
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/remedy-run/remedy/bot"
)

// Handler is the bot: what it answers to what.
type Handler struct {
	Image []byte // the picture "photo" is answered with (PNG)
}

// HandleMessage answers one message. Its error has the message retried later.
func (h Handler) HandleMessage(ctx context.Context, b *bot.Bot, m bot.Message) error {
	text := strings.TrimSpace(m.Text)
	switch {
	case m.Group != "" && strings.EqualFold(text, "/who"):
		name := m.SenderName
		if name == "" {
			name = "+" + m.From
		}
		return b.Reply(ctx, m, "you are "+name+" in "+m.Group)
	case m.Group != "":
		return nil // in groups, only commands
	case strings.EqualFold(text, "photo"):
		_, err := b.Send(ctx, bot.Outgoing{To: m.Chat, Text: "here you are", ReplyTo: m.ID,
			Media: &bot.Media{Kind: "image", MIME: "image/png", Data: h.Image}})
		return err
	case m.Kind == "text":
		return b.Reply(ctx, m, "echo: "+text)
	}
	return b.Reply(ctx, m, fmt.Sprintf("I got a %s", m.Kind))
}

func main() {
	cfgPath := flag.String("config", "", "remedy.yaml (default: built-in defaults and REMEDY_* variables)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := bot.New(ctx, bot.Config{File: *cfgPath, Handler: Handler{Image: samplePNG}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := b.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// samplePNG is a 1×1 PNG.
var samplePNG = []byte{0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00,
	0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99,
	0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82}
