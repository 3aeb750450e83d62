package whatsapp

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/actions"
	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"github.com/remedy-run/remedy/policies"
)

// loop is the daemon's engine loop in miniature: the real engine with the default
// policies, the real executor with RECONNECT_WA on the real Conn, in real time.
type loop struct {
	mu        sync.Mutex
	e         *engine.Engine
	timeline  []engine.Decision
	inputs    chan engine.Input
	connected chan time.Time
}

func runLoop(t *testing.T, c *Conn, rec *recorder) *loop {
	t.Helper()
	set, err := policies.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	return runLoopWith(t, c, rec, set)
}

func runLoopWith(t *testing.T, c *Conn, rec *recorder, set *policies.Set) *loop {
	t.Helper()
	l := &loop{e: engine.New(set, engine.Options{Seed: 1}), inputs: make(chan engine.Input, 1024), connected: make(chan time.Time, 64)}
	x := actions.NewExecutor(actions.ExecutorOptions{Registry: actions.Builtins(actions.Deps{WhatsApp: actions.SingleSession(c)}),
		Results: func(ev engine.Event) { l.inputs <- ev }})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { // events from the Conn into the loop
		for {
			select {
			case ev := <-rec.ch:
				if ev.Code == "WA_CONNECTED" {
					l.connected <- ev.Time
				}
				l.inputs <- ev
			case <-ctx.Done():
				return
			}
		}
	}()
	go c.Run(ctx)
	go func() {
		for {
			var timer <-chan time.Time
			l.mu.Lock()
			next := l.e.NextDeadline()
			l.mu.Unlock()
			if !next.IsZero() {
				timer = time.After(time.Until(next))
			}
			var in engine.Input
			select {
			case <-ctx.Done():
				return
			case in = <-l.inputs:
			case <-timer:
				in = engine.Tick{Time: time.Now()}
			}
			l.mu.Lock()
			out := append([]engine.Decision(nil), l.e.Process(in)...)
			l.timeline = append(l.timeline, out...)
			l.mu.Unlock()
			for _, d := range out {
				x.Execute(ctx, d)
			}
		}
	}()
	return l
}

func (l *loop) alerts(sev policies.Severity) []engine.Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []engine.Decision
	for _, d := range l.timeline {
		if d.Kind == engine.KindAlert && d.Severity == sev {
			out = append(out, d)
		}
	}
	return out
}

func (l *loop) attempts() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Time
	for _, d := range l.timeline {
		if d.Kind == engine.KindAction && d.Action.Do == "RECONNECT_WA" && d.Action.Skipped == "" {
			out = append(out, d.Time)
		}
	}
	return out
}

// memServer starts an in-memory fake server (for a synctest bubble; closeInBubble or the
// test closes it).
func memServer(t *testing.T) *wafake.Server {
	t.Helper()
	s, err := wafake.NewInMemory()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// memConn opens a Conn on s (in memory, for a synctest bubble) with open's watchdog and
// probe intervals; closeInBubble closes it.
func memConn(t *testing.T, s *wafake.Server, events func(engine.Event), watchdog, probe time.Duration) *Conn {
	t.Helper()
	c, err := Open(context.Background(), Options{StorePath: pairedStore(t), Events: events, HTTPClient: s.HTTPClient(),
		Watchdog: watchdog, Probe: probe})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// closeInBubble ends a test in a synctest bubble: the server goes first and everything
// settles before the client closes. On the bubble's clock a fault (a flap, a drop) can
// fall on the very instant the test ends, and the client's Close beside its read pump's
// own end of the socket is whatsmeow's race (its FrameSocket reads a field that Close
// writes without the lock).
func closeInBubble(s *wafake.Server, c *Conn) {
	s.Close()
	synctest.Wait()
	c.Close()
}

// The server drops the connection and is unreachable for 10 s; remedy is connected again
// within 3 s of its return (the seed allows 30 s), having backed off meanwhile. On the
// bubble's clock (synctest, in-memory connections): the same on any machine, and the
// 10 s take a moment.
func TestOutageRecoveryThroughTheDefaultPolicies(t *testing.T) {
	t.Parallel()
	var took time.Duration
	var atts []time.Time
	synctest.Test(t, func(t *testing.T) {
		s := memServer(t)
		rec := newRecorder()
		c := memConn(t, s, rec.add, 200*time.Millisecond, 100*time.Millisecond)
		defer closeInBubble(s, c)
		l := runLoop(t, c, rec)
		c.Start(context.Background())
		<-l.connected
		s.Down()
		time.Sleep(10 * time.Second) // the outage
		back := time.Now()
		s.Up()
		var at time.Time
		select {
		case at = <-l.connected:
		case <-time.After(30 * time.Second):
			t.Fatalf("not reconnected 30 s after the server returned; attempts %v", l.attempts())
		}
		took, atts = at.Sub(back), l.attempts()
	})
	if t.Failed() {
		return
	}
	var gaps []time.Duration
	for i := 1; i < len(atts); i++ {
		gaps = append(gaps, atts[i].Sub(atts[i-1]).Round(10*time.Millisecond))
	}
	t.Logf("reconnected %v after the server returned; %d attempts during the outage, gaps %v", took.Round(time.Millisecond), len(atts), gaps)
	if took > 3*time.Second {
		t.Fatalf("reconnected only %v after the server returned", took)
	}
	if len(atts) < 3 || len(atts) > 8 {
		t.Fatalf("%d attempts in a 10 s outage: no backoff, or none", len(atts))
	}
	for i := 1; i < len(gaps); i++ {
		if gaps[i] < gaps[i-1]/2 && i < len(gaps)-1 { // the last one is cut short by WA_REACHABLE
			t.Fatalf("backoff does not grow: %v", gaps)
		}
	}
}

// A server that accepts every login and breaks the stream 1 s later, for 20 s: whatsmeow's
// own reconnect logs in again at once each time; remedy's policies back off. On the
// bubble's clock over in-memory connections (synctest): the 20 s are a moment, and both
// counts are the same on any machine (in real time a loaded machine slowed whatsmeow's
// loop, and the two windows took 40 s).
func TestFlappingServerLoginsPerMinute(t *testing.T) {
	t.Parallel()
	// whatsmeow alone, then remedy, one after the other: closing the whatsmeow client
	// soon after its reconnect loop stops races inside whatsmeow (FrameSocket.Close
	// against readPump, seen with both in one window), so it gets the second window to settle.
	flap := func(fc *wafake.Conn) {
		fc.Success()
		time.AfterFunc(time.Second, func() { fc.StreamError("500", "") })
	}
	const window = 20 * time.Second
	// whatsmeow's FrameSocket reads its conn without the lock that Close holds, so the
	// watchdog's IsConnected racing a flap is flagged by -race; it is not under test
	// here (nor the probe: nothing is down).
	var rawLogins, remedyLogins, attempts int
	synctest.Test(t, func(t *testing.T) { // whatsmeow alone
		s := memServer(t)
		s.OnLogin(flap)
		raw := memConn(t, s, func(engine.Event) {}, time.Hour, time.Hour)
		raw.cli.EnableAutoReconnect = true
		raw.cli.ConnectContext(raw.bg)
		time.Sleep(window)
		rawLogins = s.Logins()
		// Cancelling the client's context stops its reconnect loop; writing
		// EnableAutoReconnect now would race with that loop.
		raw.cancel()
		closeInBubble(s, raw)
	})
	synctest.Test(t, func(t *testing.T) { // remedy: the supervisor and the default policies
		s := memServer(t)
		s.OnLogin(flap)
		rec := newRecorder()
		c := memConn(t, s, rec.add, time.Hour, time.Hour)
		l := runLoop(t, c, rec)
		c.Start(context.Background())
		time.Sleep(window)
		remedyLogins, attempts = s.Logins(), len(l.attempts())
		closeInBubble(s, c)
	})
	perMin := func(n int) float64 { return float64(n) * float64(time.Minute) / float64(window) }
	t.Logf("logins per minute against a server that breaks each session after 1 s: whatsmeow's reconnect %.0f, remedy %.0f (%d attempts)",
		perMin(rawLogins), perMin(remedyLogins), attempts)
	// The comparison with whatsmeow is a figure; the policies' backoff bounding remedy's
	// logins is the invariant.
	if remedyLogins > 8 {
		t.Fatalf("remedy %d logins in %v (whatsmeow alone: %d)", remedyLogins, window, rawLogins)
	}
}

// A server that never comes back: the attempts stop at the policy's limit (here 4, fast,
// so the test takes seconds; the default ladder is the same shape over two hours) and
// exactly one critical alert says so.
func TestAttemptsStopAtTheLimitWithOneCriticalAlert(t *testing.T) {
	t.Parallel()
	set, err := policies.ParseFiles([]string{"short.yaml"}, map[string][]byte{"short.yaml": []byte(`policies:
  - name: wa-reconnect
    on: [WA_DISCONNECTED]
    resolve_on: [WA_CONNECTED]
    severity: warning
    actions:
      - do: RECONNECT_WA
        timeout: 2s
        attempts: 4
        backoff: {initial: 100ms, max: 200ms}
`)})
	if err != nil {
		t.Fatal(err)
	}
	s := fakeServer(t)
	rec := newRecorder()
	c := open(t, s, rec)
	l := runLoopWith(t, c, rec, set)
	c.Start(context.Background())
	<-l.connected
	s.Down()
	deadline := time.Now().Add(20 * time.Second)
	for len(l.alerts(policies.Critical)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no critical alert; %d attempts", len(l.attempts()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(l.attempts()); n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}
	if n := len(l.alerts(policies.Critical)); n != 1 {
		t.Fatalf("%d critical alerts, want 1", n)
	}
	// Nothing is scheduled any more: no further attempt can come (whatsmeow's own
	// reconnect is off, and the ladder is used up).
	l.mu.Lock()
	next := l.e.NextDeadline()
	l.mu.Unlock()
	if !next.IsZero() {
		t.Fatalf("still something scheduled at %s", next)
	}
}
