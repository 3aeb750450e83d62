package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdp/qrterminal/v3"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp"
)

// pairHTTPClient lets the tests point pairing at the fake server on loopback.
var pairHTTPClient *http.Client

func runPair(ctx context.Context, args []string, env *cliEnv) int {
	fs := flag.NewFlagSet("pair", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	cfgPath := fs.String("config", "", "configuration file (default: ./remedy.yaml if it exists)")
	phone := fs.String("phone", "", "also show a pairing code for this number, in international form (+49 151 …)")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up after this long")
	sessionName := fs.String("session", "", "the session to pair (config sessions:); default: the only one")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: remedy pair [--config remedy.yaml] [--session NAME] [--phone NUMBER]\n\nLinks remedy to the bot's WhatsApp account: scan the QR code with WhatsApp → Linked\ndevices → Link a device, or with --phone type the code shown under Link with phone\nnumber instead. Stop `remedy run` first: the device store is locked while it runs.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *phone != "" {
		// Checked before anything is opened or dialled: a typo must not cost a pairing.
		if _, err := whatsapp.ParsePhone(*phone); err != nil {
			fmt.Fprintf(env.stderr, "remedy pair: --phone: %v\n", err)
			return exitBadInput
		}
	}
	cfg, _, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy pair: configuration:\n%v\n", err)
		return exitBadInput
	}
	store := cfg.WhatsAppStore()
	if ss := cfg.Sessions(); *sessionName != "" || len(ss) > 1 {
		store = ""
		for _, s := range ss {
			if s.Name == *sessionName {
				store = s.Store
			}
		}
		if store == "" {
			fmt.Fprintf(env.stderr, "remedy pair: name a session with --session (configured: %s)\n", sessionNames(ss))
			return exitBadInput
		}
	}
	if err := os.MkdirAll(filepath.Dir(store), 0o700); err != nil {
		fmt.Fprintf(env.stderr, "remedy pair: %v\n", err)
		return exitFailed
	}
	connected := make(chan struct{}, 1)
	conn, err := whatsapp.Open(ctx, whatsapp.Options{StorePath: store, HTTPClient: pairHTTPClient,
		Logger: slog.New(slog.DiscardHandler), Events: func(ev engine.Event) {
			if ev.Code == "WA_CONNECTED" {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		}})
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy pair: %v\n", err)
		return exitFailed
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	err = conn.Pair(ctx, *phone, func(pc whatsapp.PairCode) {
		if pc.Phone != "" {
			fmt.Fprintf(env.stdout, "\nOr, on the phone: WhatsApp → Linked devices → Link a device → Link with phone number, and type\n\n    %s\n\n", pc.Phone)
			return
		}
		fmt.Fprintln(env.stdout, "\nScan with WhatsApp → Linked devices → Link a device (a new code every 20 s):")
		qrterminal.GenerateHalfBlock(pc.QR, qrterminal.L, env.stdout)
	})
	if errors.Is(err, whatsapp.ErrUnreachable) {
		// In words first, with the next step; the Go error chain (DNS, dial) after it.
		fmt.Fprintf(env.stderr, "remedy pair: cannot reach WhatsApp's servers: this machine seems to have no internet access, or a firewall or proxy blocks it. Check the connection, then run remedy pair again.\n  (%v)\n", err)
		return exitFailed
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy pair: %v\n", err)
		return exitFailed
	}
	select {
	case <-connected:
	case <-ctx.Done():
	}
	id := conn.Client().Store.ID
	fmt.Fprintf(env.stdout, "Paired as +%s. The session is kept in %s; start remedy run.\n", id.User, store)
	return exitOK
}

// sessionNames lists the sessions' names for a message.
func sessionNames(ss []config.Session) string {
	var n []string
	for _, s := range ss {
		n = append(n, s.Name)
	}
	if len(n) == 0 {
		return "none: WhatsApp is off"
	}
	return strings.Join(n, ", ")
}
