package whatsapp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// recorder collects the engine events a Conn emits.
type recorder struct {
	mu  sync.Mutex
	evs []engine.Event
	ch  chan engine.Event
}

// TestMain shortens whatsmeow's keepalive before any client starts: the values are
// package globals read by every client's keepalive loop, so changing them in one test
// would race with the clients of the tests before it. The fake server answers pings
// unless told not to, so the other tests see no timeouts.
func TestMain(m *testing.M) {
	whatsmeow.KeepAliveIntervalMin, whatsmeow.KeepAliveIntervalMax = 300*time.Millisecond, 400*time.Millisecond
	whatsmeow.KeepAliveResponseDeadline = time.Second
	os.Exit(m.Run())
}

func newRecorder() *recorder { return &recorder{ch: make(chan engine.Event, 1024)} }

func (r *recorder) add(ev engine.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
	r.ch <- ev
}

// wait returns the next event with the code, skipping others.
func (r *recorder) wait(t *testing.T, code string) engine.Event {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-r.ch:
			if ev.Code == code {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s; saw %v", code, r.codes())
		}
	}
}

// events returns what was recorded so far.
func (r *recorder) events() []engine.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.Event(nil), r.evs...)
}

func (r *recorder) codes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.evs {
		out = append(out, e.Code)
	}
	return out
}

// pairedStore writes a device store with a logged-in device.
func pairedStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "whatsapp.db")
	if err := wafake.PairedStore(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	return path
}

func fakeServer(t *testing.T) *wafake.Server {
	t.Helper()
	s, err := wafake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func open(t *testing.T, s *wafake.Server, rec *recorder) *Conn {
	t.Helper()
	c, err := Open(context.Background(), Options{StorePath: pairedStore(t), Events: rec.add, HTTPClient: s.HTTPClient(),
		Watchdog: 200 * time.Millisecond, Probe: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func reconnect(c *Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Reconnect(ctx)
}

func TestConnectDropAndReconnect(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	c := open(t, s, rec)
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	if c.State() != Connected {
		t.Fatal(c.State())
	}
	s.DropAll()
	if ev := rec.wait(t, "WA_DISCONNECTED"); ev.Labels["reason"] != "remote" {
		t.Fatalf("%v", ev)
	}
	if err := reconnect(c); err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	if c.State() != Connected || s.Logins() != 2 {
		t.Fatalf("%s after reconnect, %d logins", c.State(), s.Logins())
	}
}

func TestTerminalEventsAreSticky(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		fault func(*wafake.Conn)
		code  string
		state State
	}{
		{"logged out", func(c *wafake.Conn) { c.Failure(401, nil) }, "WA_LOGGED_OUT", LoggedOut},
		{"replaced", func(c *wafake.Conn) { c.StreamError("", "replaced") }, "WA_STREAM_REPLACED", Replaced},
		{"client outdated", func(c *wafake.Conn) { c.Failure(405, nil) }, "WA_CLIENT_OUTDATED", Outdated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeServer(t)
			rec := newRecorder()
			c := open(t, s, rec)
			c.Start(context.Background())
			rec.wait(t, "WA_CONNECTED")
			s.Each(tc.fault)
			rec.wait(t, tc.code)
			if c.State() != tc.state {
				t.Fatalf("state %s", c.State())
			}
			logins := s.Logins()
			if err := reconnect(c); !errors.Is(err, ErrTerminal) {
				t.Fatalf("reconnect after %s: %v", tc.code, err)
			}
			if s.Logins() != logins {
				t.Fatal("a login was attempted after a terminal event")
			}
		})
	}
}

func TestLateDisconnectAfterLogoutIsMarked(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := memServer(t)
		rec := newRecorder()
		c := memConn(t, s, rec.add, 200*time.Millisecond, 100*time.Millisecond)
		defer closeInBubble(s, c)
		s.OnLogin(func(fc *wafake.Conn) { fc.Failure(401, nil) })
		c.Start(context.Background())
		rec.wait(t, "WA_LOGGED_OUT")
		// The socket closes after the failure; if whatsmeow reports it, it is labelled as
		// coming after the terminal event. Either way no reconnect follows. On the
		// bubble's clock everything the failure set off has happened once all wait.
		time.Sleep(time.Second)
		synctest.Wait()
		for _, ev := range rec.events() {
			if ev.Code == "WA_DISCONNECTED" && ev.Labels["reason"] != "after_logged_out" {
				t.Fatalf("unlabelled late disconnect: %v", ev)
			}
		}
		if c.State() != LoggedOut || s.Logins() != 1 {
			t.Fatalf("%s, %d logins", c.State(), s.Logins())
		}
	})
}

func TestTemporaryBanWaitsForExpiry(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	c := open(t, s, rec)
	s.OnLogin(func(fc *wafake.Conn) { fc.Failure(402, map[string]string{"code": "101", "expire": "1"}) })
	c.Start(context.Background())
	ban := rec.wait(t, "WA_TEMP_BAN")
	if ban.Value != 1 || ban.Labels["code"] != "101" || ban.Labels["expire"] == "" {
		t.Fatalf("%v", ban)
	}
	if err := reconnect(c); err == nil || !strings.Contains(err.Error(), "temporarily banned") {
		t.Fatalf("reconnect during the ban: %v", err)
	}
	rec.wait(t, "WA_TEMP_BAN_EXPIRED")
	s.OnLogin(nil)
	if err := reconnect(c); err != nil {
		t.Fatalf("reconnect after the ban: %v", err)
	}
}

func TestConnectFailureAndStreamError(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	c := open(t, s, rec)
	s.OnLogin(func(fc *wafake.Conn) { fc.Failure(409, map[string]string{"message": "conflict"}) })
	c.Start(context.Background())
	if ev := rec.wait(t, "WA_CONNECT_FAILURE"); ev.Labels["reason"] != "409" {
		t.Fatalf("%v", ev)
	}
	if err := reconnect(c); err == nil || !strings.Contains(err.Error(), "login refused") {
		t.Fatalf("a refused login is a failed attempt: %v", err)
	}
	s.OnLogin(nil)
	if err := reconnect(c); err != nil {
		t.Fatal(err)
	}
	s.Each(func(fc *wafake.Conn) { fc.StreamError("500", "") })
	if ev := rec.wait(t, "WA_STREAM_ERROR"); ev.Labels["code"] != "500" {
		t.Fatalf("%v", ev)
	}
}

func TestKeepaliveTimeoutAndRestore(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	c := open(t, s, rec)
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	s.AnswerPings(false)
	rec.wait(t, "WA_KEEPALIVE_TIMEOUT")
	s.AnswerPings(true)
	rec.wait(t, "WA_KEEPALIVE_RESTORED")
}

func TestWatchdogNoticesASilentDrop(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	c := open(t, s, rec)
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	// A disconnect whatsmeow does not report (as after a failed 515 restart).
	c.cli.Disconnect()
	if ev := rec.wait(t, "WA_STALE"); ev.Labels["reason"] != "not_connected" {
		t.Fatalf("%v", ev)
	}
}

// On the bubble's clock: the probes while down (every 100 ms) have run, not hopefully.
func TestReachableAfterOutage(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := memServer(t)
		rec := newRecorder()
		c := memConn(t, s, rec.add, 200*time.Millisecond, 100*time.Millisecond)
		defer closeInBubble(s, c)
		c.Start(context.Background())
		rec.wait(t, "WA_CONNECTED")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go c.Run(ctx)
		s.Down()
		rec.wait(t, "WA_DISCONNECTED")
		time.Sleep(350 * time.Millisecond) // three failed probes
		synctest.Wait()
		for _, code := range rec.codes() {
			if code == "WA_REACHABLE" {
				t.Fatal("reachable while down")
			}
		}
		s.Up()
		rec.wait(t, "WA_REACHABLE")
	})
}

func TestSecondInstanceRefused(t *testing.T) {
	t.Parallel()
	path := pairedStore(t)
	c, err := Open(context.Background(), Options{StorePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Open(context.Background(), Options{StorePath: path}); err == nil || !strings.Contains(err.Error(), "another remedy") {
		t.Fatalf("second open: %v", err)
	}
}
