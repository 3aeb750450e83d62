package wafake

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
	_ "modernc.org/sqlite"
)

// pairedClient returns a real whatsmeow client with a logged-in device in a SQLite store.
func pairedClient(t *testing.T, s *Server) *whatsmeow.Client {
	t.Helper()
	ctx := context.Background()
	dsn := "file:" + filepath.Join(t.TempDir(), "wa.db") + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	container, err := sqlstore.New(ctx, "sqlite", dsn, waLog.Noop)
	if err != nil {
		t.Fatal(err)
	}
	dev := container.NewDevice()
	dev.ID = &types.JID{User: "6281234567890", Device: 1, Server: types.DefaultUserServer}
	dev.Account = &waAdv.ADVSignedDeviceIdentity{Details: []byte{0}, AccountSignatureKey: make([]byte, 32), AccountSignature: make([]byte, 64), DeviceSignature: make([]byte, 64)}
	if err := dev.Save(ctx); err != nil {
		t.Fatal(err)
	}
	cli := whatsmeow.NewClient(dev, waLog.Noop)
	cli.EnableAutoReconnect = false
	cli.SetWebsocketHTTPClient(s.HTTPClient())
	cli.SetPreLoginHTTPClient(s.HTTPClient())
	return cli
}

func TestRealClientConnectsAndSeesFaults(t *testing.T) {
	t.Parallel()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cli := pairedClient(t, s)
	got := make(chan any, 16)
	cli.AddEventHandler(func(e any) {
		switch e.(type) {
		case *events.Connected, *events.Disconnected, *events.LoggedOut, *events.StreamReplaced, *events.TemporaryBan:
			got <- e
		}
	})
	if err := cli.Connect(); err != nil {
		t.Fatal(err)
	}
	defer cli.Disconnect()
	wait := func(want string) {
		t.Helper()
		select {
		case e := <-got:
			if name := typeName(e); name != want {
				t.Fatalf("got %s, want %s", name, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s", want)
		}
	}
	wait("Connected")
	if s.Logins() != 1 || !cli.IsLoggedIn() {
		t.Fatalf("logins %d", s.Logins())
	}
	s.DropAll()
	wait("Disconnected")
	if err := cli.Connect(); err != nil {
		t.Fatal(err)
	}
	wait("Connected")
	s.Each(func(c *Conn) { c.StreamError("", "replaced") })
	// The error and the close race (events are dispatched on goroutines): a Disconnected
	// may come first — the late terminal event the policies wait 2 s for.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-got:
			if typeName(e) == "StreamReplaced" {
				return
			}
		case <-deadline:
			t.Fatal("no StreamReplaced")
		}
	}
}

func typeName(e any) string {
	switch e.(type) {
	case *events.Connected:
		return "Connected"
	case *events.Disconnected:
		return "Disconnected"
	case *events.LoggedOut:
		return "LoggedOut"
	case *events.StreamReplaced:
		return "StreamReplaced"
	case *events.TemporaryBan:
		return "TemporaryBan"
	}
	return "?"
}
