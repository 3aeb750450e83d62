package wafake

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
	"google.golang.org/protobuf/proto"
)

// Three devices on one in-memory server: each logs in as its own number, a drop and a
// logout of one leave the other two connected and logged in, and one of them still
// sends. (Messages to and from each device, kept apart, are TestThreeSessions's through
// remedy: a phone's message to a bare client here was sometimes never read, in the
// bubble and out of it — the bare client lacks remedy's setup — and the wait spun the
// bubble's clock for 9 minutes in a CI run.)
func TestDevicesKeptApart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, err := NewInMemory()
		if err != nil {
			t.Fatal(err)
		}
		devs, err := PairedStores(ctx, t.TempDir(), 3)
		if err != nil {
			t.Fatal(err)
		}
		type client struct {
			cli    *whatsmeow.Client
			got    chan string // texts received
			logout chan struct{}
		}
		clients := make([]client, len(devs))
		for k, d := range devs {
			c, err := sqlstore.New(ctx, "sqlite", "file:"+d.Path+"?_pragma=foreign_keys(1)", waLog.Noop)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			dev, err := c.GetFirstDevice(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cl := client{cli: whatsmeow.NewClient(dev, waLog.Noop), got: make(chan string, 4), logout: make(chan struct{}, 1)}
			cl.cli.EnableAutoReconnect = false
			cl.cli.SetWebsocketHTTPClient(s.HTTPClient())
			cl.cli.AddEventHandler(func(e any) {
				switch e := e.(type) {
				case *events.Message:
					cl.got <- e.Message.GetConversation()
				case *events.LoggedOut:
					cl.logout <- struct{}{}
				}
			})
			if err := cl.cli.Connect(); err != nil {
				t.Fatal(err)
			}
			clients[k] = cl
		}
		synctest.Wait()
		for k, d := range devs {
			if s.LoginsOf(d.User) != 1 || s.ConnOf(d.User) == nil || s.ConnOf(d.User).User() != d.User {
				t.Fatalf("device %d: logins %d, conn %v", k, s.LoginsOf(d.User), s.ConnOf(d.User))
			}
		}
		// Device 0 is logged out on its next login; the others are not touched.
		s.OnLoginOf(devs[0].User, func(c *Conn) { c.Failure(401, nil) })
		s.RefuseMessagesFrom(devs[0].User, true)
		s.DropDevice(devs[0].User)
		synctest.Wait()
		if clients[0].cli.IsConnected() || !clients[1].cli.IsConnected() || !clients[2].cli.IsConnected() {
			t.Fatal("the drop reached another device")
		}
		if err := clients[0].cli.Connect(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the bubble's clock: the server's CloseDelay after the failure
		synctest.Wait()
		select {
		case <-clients[0].logout:
		default:
			t.Fatal("device 0 was not logged out")
		}
		if _, err := clients[1].cli.SendMessage(ctx, types.NewJID("6281100000002", types.DefaultUserServer),
			&waE2E.Message{Conversation: proto.String("still here")}); err != nil {
			t.Fatalf("device 1 after device 0's logout: %v", err)
		}
		for k, d := range devs[1:] {
			if s.LoginsOf(d.User) != 1 || len(clients[k+1].logout) != 0 {
				t.Fatalf("device %d logged in %d times", k+1, s.LoginsOf(d.User))
			}
		}
		if s.LoginsOf(devs[0].User) != 2 {
			t.Fatalf("device 0 logins %d", s.LoginsOf(devs[0].User))
		}
		s.Close()
		synctest.Wait()
		for _, cl := range clients {
			cl.cli.Disconnect()
		}
	})
}

// How long PairedStores takes for 100 devices (a figure, printed; -run to see it).
func TestPairedStoresTime(t *testing.T) {
	if testing.Short() {
		t.Skip("a figure, not a check")
	}
	t0 := time.Now()
	devs, err := PairedStores(context.Background(), t.TempDir(), 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range devs {
		if seen[d.User] || d.Device.ID.User != d.User {
			t.Fatalf("device %s twice or mislabelled", d.User)
		}
		seen[d.User] = true
	}
	t.Logf("100 paired stores in %v", time.Since(t0))
}
