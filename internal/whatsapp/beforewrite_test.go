package whatsapp

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"github.com/remedy-run/remedy/webhook"
)

// A message's receipt leaves only after BeforeWrite returned (the daemon's: remedy.db's
// sync of the message's queue item), and whatsmeow's message loop does not wait for it:
// while the receipts are held there, the next message is decrypted and handed over. A
// BeforeWrite error breaks the connection instead of sending what it would acknowledge.
func TestReceiptsWaitForBeforeWrite(t *testing.T) {
	s := fakeServer(t)
	rec := newRecorder()
	var holding, failing atomic.Bool
	held := make(chan struct{}, 64)
	release := make(chan struct{})
	got := make(chan string, 8)
	c, err := Open(context.Background(), Options{StorePath: pairedStore(t), Events: rec.add, HTTPClient: s.HTTPClient(),
		Watchdog: time.Hour, Probe: time.Hour,
		Messages: func(m webhook.Message) error { got <- m.Text; return nil },
		BeforeWrite: func() error {
			if failing.Load() {
				return errors.New("sync failed")
			}
			if holding.Load() {
				held <- struct{}{}
				<-release
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if !c.WritesWait() {
		t.Fatal("writes do not pass BeforeWrite")
	}
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	ctx := context.Background()
	phone, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000009")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	deliver := func(text string) string {
		t.Helper()
		n, err := phone.Prepare(ctx, c.Client().Store, text)
		if err != nil {
			t.Fatal(err)
		}
		s.Each(func(fc *wafake.Conn) {
			if err := fc.Send(n); err != nil {
				t.Fatal(err)
			}
		})
		return n.Attrs["id"].(string)
	}
	next := func(want string) { t.Helper(); handedOver(t, got, want) }
	acked := func(id string) bool { return slices.Contains(s.Receipts(), id) }
	waitAcked := func(id string) { t.Helper(); waitReceipt(t, s, id) }

	holding.Store(true)
	one := deliver("one")
	next("one")
	<-held // a write (the receipt) waits in BeforeWrite
	two := deliver("two")
	next("two") // the loop went on meanwhile
	if acked(one) || acked(two) {
		t.Fatalf("acknowledged while BeforeWrite held the writes: receipts %v", s.Receipts())
	}
	holding.Store(false)
	close(release)
	waitAcked(one)
	waitAcked(two)

	// Failing: the next write (the receipt of "three", or any other that comes first)
	// breaks the connection.
	failing.Store(true)
	n, err := phone.Prepare(ctx, c.Client().Store, "three")
	if err != nil {
		t.Fatal(err)
	}
	s.Each(func(fc *wafake.Conn) { _ = fc.Send(n) })
	rec.wait(t, "WA_DISCONNECTED")
	if acked(n.Attrs["id"].(string)) {
		t.Fatalf("a receipt left though BeforeWrite failed: receipts %v", s.Receipts())
	}
}

// A write held in BeforeWrite (a stalled disk: remedy.db's sync does not return) does
// not hold up Close, nor the Disconnect of a login or of the watchdog: the socket's close
// ends the wait (the bytes are not sent). Before, whatsmeow's close waited for the
// websocket's write lock, which the held write kept for as long as the disk stalled.
func TestCloseDoesNotWaitForAHeldWrite(t *testing.T) {
	s := fakeServer(t)
	rec := newRecorder()
	var holding atomic.Bool
	held := make(chan struct{}, 64)
	release := make(chan struct{})
	defer close(release)
	got := make(chan string, 8)
	c, err := Open(context.Background(), Options{StorePath: pairedStore(t), Events: rec.add, HTTPClient: s.HTTPClient(),
		Watchdog: time.Hour, Probe: time.Hour,
		Messages: func(m webhook.Message) error { got <- m.Text; return nil },
		BeforeWrite: func() error {
			if holding.Load() {
				held <- struct{}{}
				<-release // the disk never answers within the test
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	ctx := context.Background()
	phone, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000010")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	holding.Store(true)
	n, err := phone.Prepare(ctx, c.Client().Store, "one")
	if err != nil {
		t.Fatal(err)
	}
	s.Each(func(fc *wafake.Conn) {
		if err := fc.Send(n); err != nil {
			t.Fatal(err)
		}
	})
	<-got
	<-held // the receipt waits for the disk
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(time.Minute): // a deadlock detector, not a speed bound
		t.Fatal("Close waits for a write held in BeforeWrite")
	}
}
