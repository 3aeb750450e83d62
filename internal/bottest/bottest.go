// Package bottest starts an embedded bot (package bot) against the fake WhatsApp server
// for tests: a paired device store, a data directory, the API on a free loopback port,
// and Run until the test ends.
package bottest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedy-run/remedy/bot"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// Start runs a bot configured by c (its data directory, listen address, store, WhatsApp
// dialer and logger filled in) against a new fake server, and returns once it is logged
// in. The test's end stops the bot, then the server.
func Start(t *testing.T, c bot.Config) (*bot.Bot, *wafake.Server) {
	t.Helper()
	s, err := wafake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	dir := t.TempDir()
	c.Store = filepath.Join(dir, "whatsapp.db")
	if err := wafake.PairedStore(context.Background(), c.Store); err != nil {
		t.Fatal(err)
	}
	c.DataDir, c.Listen, c.WhatsAppHTTP = filepath.Join(dir, "data"), "127.0.0.1:0", s.HTTPClient()
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bot.New(ctx, c)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := b.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	Eventually(t, "logged in", func() bool { return b.Client() != nil && b.Client().IsLoggedIn() })
	return b, s
}

// Eventually waits until ok, polling, for at most 20 s (what is awaited goes through
// real sockets and SQLite: no fake clock reaches it).
func Eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
