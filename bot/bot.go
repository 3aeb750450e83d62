// Package bot runs a WhatsApp bot on remedy inside a Go program: remedy owns the
// WhatsApp connection (whatsmeow), its supervision and recovery, the durable inbound
// and outbound queues, the policies, alerts and dashboard; the program gives it a
// Handler, as net/http takes one, and sends through the same durable path as remedy's
// HTTP API. `remedy run` is this package with the webhook handler of the configuration.
//
//	b, err := bot.New(ctx, bot.Config{File: "remedy.yaml", Handler: bot.HandlerFunc(
//		func(ctx context.Context, b *bot.Bot, m bot.Message) error {
//			return b.Reply(ctx, m, "echo: "+m.Text)
//		})})
//	if err != nil { … }
//	err = b.Run(ctx) // until ctx ends; then an orderly shutdown
//
// Delivery is at least once: a handler's error retries the message (1 s, 2 s, 4 s, …,
// 10 attempts over about 8.5 minutes), then it goes to the dead-letter table, where the
// default policy queue-dead-letter alerts on it; Message.ID tells a repeat.
package bot

import (
	"context"
	"log/slog"
	"net/http"
	"os"

	"go.mau.fi/whatsmeow"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/daemon"
	"github.com/remedy-run/remedy/webhook"
)

// Message is an incoming message (every kind: text, media, location, contact,
// reaction; quote, group, sender name). See package webhook for the fields.
type Message = webhook.Message

// Event is a delivery that is not a message: a receipt (Type "receipt", Event.Receipt),
// a send outcome ("send_outcome", Event.SendOutcome), or an earlier message edited
// ("edit", Event.Edit) or deleted for everyone ("delete", Event.Delete). See package
// webhook.
type Event = webhook.Event

// SendOutcome is how a message sent with Send or Reply ended: Status "sent" once
// WhatsApp's server acknowledged it, or "failed" with Reason once it was dead-lettered
// (a replay that succeeds is then "sent"). Delivered and read come as receipts.
type SendOutcome = webhook.SendOutcome

// Handler handles the messages that are not remedy's admin commands. An error retries
// the message later (at least once delivery); ctx ends at the inbound queue's
// item_timeout (60 s by default).
type Handler interface {
	HandleMessage(ctx context.Context, b *Bot, m Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, b *Bot, m Message) error

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(ctx context.Context, b *Bot, m Message) error { return f(ctx, b, m) }

// EventHandler is optional: a Handler that is also an EventHandler gets the deliveries
// that are not messages too — receipts ("receipt"), the outcome of each message it sent
// ("send_outcome": sent, or failed with a reason), edits ("edit") and deletions for
// everyone ("delete") of earlier messages, and types added later; it should
// ignore types it does not know. They are durable and retried as messages are (an
// error retries them: at least once).
type EventHandler interface {
	HandleEvent(ctx context.Context, b *Bot, e Event) error
}

// Config configures a Bot. File is read first (remedy.yaml: every key of README's
// table), then the REMEDY_* variables, then the fields set here override; a zero field
// keeps what the file and variables say.
type Config struct {
	// File is the configuration file; it must exist ("" runs on the built-in defaults,
	// unlike `remedy run`, which reads ./remedy.yaml when there is one).
	File    string
	DataDir string // remedy's databases and spools (default ./data)
	// Listen is the dashboard and API address (default 127.0.0.1:8080; ":0" picks a free
	// port: Addr says which).
	Listen string
	// Store is WhatsApp's device store (default DATA_DIR/whatsapp.db); pair it with
	// `remedy pair` or the dashboard's Pair button.
	Store string
	// Admins are the numbers allowed remedy's admin commands and told of alerts, in
	// international format ("+6281100000009").
	Admins []string
	// CommandPrefix of remedy's admin commands (default "!"): only remedy's command
	// names after it, from Admins, are remedy's; every other message goes to Handler.
	CommandPrefix string
	// Handler gets every message that is not remedy's (nil: remedy answers only its
	// admin commands). If it is also an EventHandler it gets receipts and send outcomes.
	Handler Handler
	Logger  *slog.Logger // default: text on stderr
	DryRun  bool         // decide and record every recovery action, run none
	// WhatsAppHTTP dials WhatsApp (tests: a fake server on loopback); nil: the network.
	WhatsAppHTTP *http.Client
}

// Bot is remedy running in this process around a Handler.
type Bot struct {
	d       *daemon.Daemon
	handler Handler
}

// New reads the configuration, opens the data directory and WhatsApp's device store,
// and builds remedy; nothing runs until Run. Errors: the configuration's (every one,
// "file:line:col: …"; "bot.Config: key: …" for a field set here, checked by the same
// rules, e.g. a Listen other machines reach without a token), the policies' (likewise), a data directory another remedy
// holds, a device store in use.
func New(ctx context.Context, c Config) (*Bot, error) {
	cfg, err := config.Load(c.File, os.Getenv)
	if err != nil {
		return nil, err
	}
	if c.DataDir != "" {
		cfg.DataDir = c.DataDir
	}
	if c.Listen != "" {
		cfg.Listen = c.Listen
	}
	if c.Store != "" {
		cfg.WhatsApp.Store = c.Store
	}
	if c.Admins != nil {
		cfg.WhatsApp.Admins = c.Admins
	}
	if c.CommandPrefix != "" {
		cfg.WhatsApp.CommandPrefix = c.CommandPrefix
	}
	if c.DryRun {
		cfg.DryRun = true
	}
	// The fields are held to the file's rules: a Listen other machines reach needs a
	// token, a CommandPrefix is one word, an admin is a number.
	if err := cfg.Check("bot.Config"); err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	b := &Bot{handler: c.Handler}
	var opts []daemon.Option
	if _, ok := c.Handler.(EventHandler); ok {
		opts = append(opts, daemon.WithHandler(eventAdapter{adapter{b}}))
	} else if c.Handler != nil {
		// No HandleEvent: remedy queues no receipts or send outcomes it would only drop.
		opts = append(opts, daemon.WithHandler(adapter{b}))
	}
	if c.WhatsAppHTTP != nil {
		opts = append(opts, daemon.WithWhatsAppHTTP(c.WhatsAppHTTP))
	}
	if b.d, err = daemon.New(ctx, cfg, log, opts...); err != nil {
		return nil, err
	}
	return b, nil
}

// Run runs remedy until ctx ends, then stops in order (intake first, the queues finish
// what they hold, WhatsApp disconnects, the databases close) and returns nil. It
// listens first if Listen was not called; its error is the listener's (the address in
// use) or a failure to start.
func (b *Bot) Run(ctx context.Context) error { return b.d.Run(ctx) }

// Listen opens the API's listener before Run, so Addr is known (":0"). Its error is
// the listener's (the address in use, say).
func (b *Bot) Listen() error { return b.d.Listen() }

// Addr is the API and dashboard address ("" before Listen or Run).
func (b *Bot) Addr() string { return b.d.Addr() }

// Reload reloads the policies (as SIGHUP does); a failed reload keeps the old ones. It
// returns whether the new set is running and, if not, why.
func (b *Bot) Reload(ctx context.Context) (bool, []string) {
	st := b.d.Reload(ctx)
	return st.OK, st.Errors
}

// ReloadSessions re-reads the configuration file's sessions (as SIGHUP does): new ones
// open and run, removed ones stop (their queued items are kept and reported), changed
// ones restart, the others are not disturbed. A configuration with errors changes
// nothing and is returned; without a file there is nothing to re-read.
func (b *Bot) ReloadSessions(ctx context.Context) error { return b.d.ReloadSessions(ctx) }

// Client is the underlying whatsmeow client of the only session (or the one named
// "default"), for what remedy does not wrap (group management, presence, …); nil when
// WhatsApp is off. Do not Connect or Disconnect it:
// remedy's supervisor owns the connection (its login budget and policies), and do not
// add event handlers that block (whatsmeow runs them inline).
func (b *Bot) Client() *whatsmeow.Client {
	ss := b.d.Sessions()
	for _, s := range ss {
		if len(ss) == 1 || s.Name() == "default" {
			return s.Conn().Client()
		}
	}
	return nil
}

// ErrWhatsAppOff is returned by the send methods when WhatsApp is switched off.
var ErrWhatsAppOff = daemon.ErrWhatsAppOff

// adapter is the Handler as remedy's message pipeline calls it.
type adapter struct{ b *Bot }

func (a adapter) Handle(ctx context.Context, m chat.Message) (string, error) {
	return "", a.b.handler.HandleMessage(ctx, a.b, m)
}

// eventAdapter is the adapter of a Handler that is also an EventHandler.
type eventAdapter struct{ adapter }

func (a eventAdapter) HandleEvent(ctx context.Context, e webhook.Event) error {
	return a.b.handler.(EventHandler).HandleEvent(ctx, a.b, e)
}
