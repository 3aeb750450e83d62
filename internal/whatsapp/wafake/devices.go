package wafake

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// Many numbers against one server. Each client device logs in as its own user (the
// number in its store); the server keeps what it saw per device (messages, receipts,
// logins), and a fault can hit one device while the others carry on: a login hook per
// device (logout, ban), a drop or stream error on its connection only, refused messages
// from it only.

// DefaultUser is the number of the device PairedStore writes.
const DefaultUser = "6281234567890"

// PairedDevice is a device store written by PairedStores: its path, its number, and the
// device itself (keys included), which a Phone needs to encrypt for it.
type PairedDevice struct {
	Path   string
	User   string
	Device *store.Device
}

// pairedDevice writes a device store at path holding a logged-in device of number user
// (device 1), as if pairing had happened, and returns the device. It takes a few tens of
// milliseconds: whatsmeow's schema is made and the keys generated, no pairing runs.
func pairedDevice(ctx context.Context, path, user string) (*store.Device, error) {
	c, err := sqlstore.New(ctx, "sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)", waLog.Noop)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dev := c.NewDevice()
	dev.ID = &types.JID{User: user, Device: 1, Server: types.DefaultUserServer}
	dev.Account = &waAdv.ADVSignedDeviceIdentity{Details: []byte{0}, AccountSignatureKey: make([]byte, 32),
		AccountSignature: make([]byte, 64), DeviceSignature: make([]byte, 64)}
	if err := dev.Save(ctx); err != nil {
		return nil, err
	}
	return dev, nil
}

// SessionUser is the number PairedStores gives device k: 62899 followed by k in seven
// digits, so that no two devices (and no test phone, 6281…) share one.
func SessionUser(k int) string { return fmt.Sprintf("62899%07d", k) }

// PairedStores writes n paired device stores under dir (dir/wa-<k>.db, number
// SessionUser(k)), a few at a time: one store costs a few tens of milliseconds, mostly
// SQLite's schema and fsyncs, so 100 take a second or two.
func PairedStores(ctx context.Context, dir string, n int) ([]PairedDevice, error) {
	out := make([]PairedDevice, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p := filepath.Join(dir, "wa-"+strconv.Itoa(k)+".db")
			dev, err := pairedDevice(ctx, p, SessionUser(k))
			out[k], errs[k] = PairedDevice{Path: p, User: SessionUser(k), Device: dev}, err
		}()
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("device %d: %w", k, err)
		}
	}
	return out, nil
}

// ConnOf returns the open connection of device user, or nil. After a reconnect it is the
// newest one.
func (s *Server) ConnOf(user string) *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last *Conn
	for c := range s.conns {
		if c.User() == user && !c.closed.Load() && (last == nil || c.seq > last.seq) {
			last = c
		}
	}
	return last
}

// EachOf runs f on every open connection of device user.
func (s *Server) EachOf(user string, f func(*Conn)) {
	s.Each(func(c *Conn) {
		if c.User() == user {
			f(c)
		}
	})
}

// DropDevice closes the connections of device user only, as a network drop on that
// number's socket does.
func (s *Server) DropDevice(user string) { s.EachOf(user, (*Conn).Close) }

// LoginsOf counts the successful logins of device user.
func (s *Server) LoginsOf(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loginsOf[user]
}

// OnLoginOf sets what the server does after each login of device user (nil: as for
// every device, OnLogin or <success/>). A logout is Failure(401, nil), a temporary ban
// Failure(402, …); the other devices keep logging in.
func (s *Server) OnLoginOf(user string, f func(*Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.onLoginOf, user)
		return
	}
	if s.onLoginOf == nil {
		s.onLoginOf = map[string]func(*Conn){}
	}
	s.onLoginOf[user] = f
}

// MessagesFrom returns the messages device user sent, in order.
func (s *Server) MessagesFrom(user string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.From == user {
			out = append(out, m)
		}
	}
	return out
}

// ReceiptsFrom returns the ids of the messages device user acknowledged, in order.
func (s *Server) ReceiptsFrom(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.receiptsOf[user]...)
}

// RefuseMessagesFrom makes the server answer every message of device user with error
// 500 (on), or accept them again (off); RefuseMessages does it for every device.
func (s *Server) RefuseMessagesFrom(user string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.refuseFrom, user)
		return
	}
	if s.refuseFrom == nil {
		s.refuseFrom = map[string]bool{}
	}
	s.refuseFrom[user] = true
}

func (s *Server) refusesFrom(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refuseFrom[user]
}
