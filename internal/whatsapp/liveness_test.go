package whatsapp

import (
	"github.com/remedy-run/remedy/webhook"

	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.mau.fi/whatsmeow/types"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// Issue 12 case 1 (field case 04): the server accepts the socket and the handshake but
// never answers the login; after 5 s logins work again. The supervisor reports
// WA_STALE{login_timeout} within the 20 s bound, drops the hung socket, and the default
// policies connect the bot.
func TestLoginNeverAnsweredIsReportedAndRecovered(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true, 1)
		defer r.close()
		r.s.OnLogin(func(*wafake.Conn) {})
		r.c.Start(context.Background())
		time.Sleep(5 * time.Second)
		r.s.OnLogin(nil)
		took, ok := r.waitUp(2 * time.Minute)
		stale := r.seen("WA_STALE")
		if !ok || len(stale) == 0 || stale[0].Labels["reason"] != StaleLoginTimeout {
			t.Fatalf("connected %v after %v; WA_STALE %v", ok, took, stale)
		}
		t.Logf("connected %v after logins worked again; first WA_STALE %v", took.Round(time.Millisecond), stale[0].Labels)
	})
}

// Issue 12 case 2 (field case 03): pairing succeeds, and the restart whatsmeow must make
// for stream error 515 cannot connect for 5 s. The supervisor makes the restart itself,
// reports its failure as WA_STALE{pair_restart_failed}, and the policies connect.
func TestRestartAfterPairingFailsIsReportedAndRecovered(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, 1)
		defer r.close()
		p := startPair(r.c, context.Background(), "")
		pc := p.next(t)
		r.s.RefuseNew(true)
		r.s.Each(func(fc *wafake.Conn) { fc.PairSuccess(pc.QR, types.NewADJID("6281100000009", 0, 7)) })
		if err := p.result(t); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		r.s.RefuseNew(false)
		took, ok := r.waitUp(time.Minute)
		stale := r.seen("WA_STALE")
		if !ok || len(stale) == 0 || stale[0].Labels["reason"] != StalePairRestart {
			t.Fatalf("connected %v %v after the blip; WA_STALE %v; state %s", ok, took, stale, r.c.State())
		}
		t.Logf("connected %v after the blip ended", took.Round(time.Millisecond))
	})
}

// A socket that goes silent (no FIN, nothing answered) is noticed by whatsmeow's
// keepalive, wa-keepalive reconnects, and if that fails the supervisor hands over.
func TestSilentSocketRecovers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true, 1)
		defer r.close()
		r.c.Start(context.Background())
		if _, ok := r.waitUp(time.Minute); !ok {
			t.Fatal("no first connection")
		}
		logins := r.s.Logins()
		r.s.Each(func(fc *wafake.Conn) { fc.Mute() })
		muted := time.Now()
		// The reconnect is instant on the bubble's clock: watch for the new login.
		for (r.s.Logins() == logins || !r.connected()) && time.Since(muted) < 10*time.Minute {
			time.Sleep(100 * time.Millisecond)
		}
		if r.s.Logins() == logins || !r.connected() || len(r.seen("WA_KEEPALIVE_TIMEOUT")) == 0 {
			t.Fatalf("logins %d→%d, connected %v, keepalive timeouts %d", logins, r.s.Logins(), r.connected(), len(r.seen("WA_KEEPALIVE_TIMEOUT")))
		}
		t.Logf("a silent socket: a new session %v after it went silent", time.Since(muted).Round(time.Second))
	})
}

// Issue 12 case 4 (field case 12): one good message, then 20 whose Signal MAC is
// corrupted. Each failure is WA_DECRYPT_FAILED with the sender and the chat (never the
// content), counted, and the burst raises wa-decrypt-failures. In real time on loopback:
// in a synctest bubble, whatsmeow's store writers wait for each other on a mutex while
// SQLite's busy handler sleeps, which stops the bubble's clock.
func TestUndecryptableMessagesAreReported(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	var delivered, undecryptable atomic.Int64
	c, err := Open(context.Background(), Options{StorePath: pairedStore(t), Events: rec.add, HTTPClient: s.HTTPClient(),
		Watchdog: time.Hour, Probe: time.Hour,
		Messages:      func(webhook.Message) error { delivered.Add(1); return nil },
		Undecryptable: func(sender, chat string) { undecryptable.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l := runLoop(t, c, rec)
	c.Start(context.Background())
	<-l.connected
	phone, err := wafake.NewPhone(context.Background(), t.TempDir(), "6281100000077")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	ctx := context.Background()
	s.Each(func(fc *wafake.Conn) {
		if _, err := phone.Send(ctx, fc, c.Client().Store, "hello"); err != nil {
			t.Fatal(err)
		}
		for range 20 {
			n, err := phone.Prepare(ctx, c.Client().Store, "order please")
			if err == nil {
				n, err = wafake.CorruptMAC(n)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := fc.Send(n); err != nil {
				t.Fatal(err)
			}
		}
	})
	// runLoop takes the events off rec's channel; read what rec kept.
	decrypt := func() (out []engine.Event) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, ev := range rec.evs {
			if ev.Code == "WA_DECRYPT_FAILED" {
				out = append(out, ev)
			}
		}
		return out
	}
	deadline := time.Now().Add(15 * time.Second)
	alerts := func() (n int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, d := range l.timeline {
			if d.Kind == engine.KindAlert && d.Policy == "wa-decrypt-failures" {
				n++
			}
		}
		return n
	}
	for (alerts() == 0 || delivered.Load() == 0 || len(decrypt()) < 20) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	evs := decrypt()
	if len(evs) > 0 {
		if ev := evs[0]; ev.Labels["sender"] != "6281100000077" || !strings.HasPrefix(ev.Labels["chat"], "6281100000077@") ||
			strings.Contains(ev.Message, "order") {
			t.Fatalf("%+v", ev)
		}
	}
	if delivered.Load() != 1 || undecryptable.Load() != 20 || len(evs) != 20 || alerts() != 1 {
		t.Fatalf("delivered %d, counted undecryptable %d, events %d, wa-decrypt-failures alerts %d (want 1, 20, 20, 1)",
			delivered.Load(), undecryptable.Load(), len(evs), alerts())
	}
}

// A server that accepts every login and breaks the stream 1 s later, for an hour: the
// login budget holds (at most 6 a minute, 30 an hour) and short sessions slow the logins
// down. Before the budget, the default policies made 9–15 logins a minute here.
func TestFlappingServerStaysWithinTheLoginBudget(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true, 1)
		defer r.close()
		r.s.OnLogin(func(fc *wafake.Conn) {
			fc.Success()
			time.AfterFunc(time.Second, func() { fc.StreamError("500", "") })
		})
		r.c.Start(context.Background())
		time.Sleep(time.Hour)
		lt := r.s.LoginTimes()
		first := 0
		for _, t0 := range lt {
			if t0.Sub(lt[0]) < time.Minute {
				first++
			}
		}
		pm, ph := maxInWindow(lt, time.Minute), maxInWindow(lt, time.Hour)
		t.Logf("flapping server, one hour: %d logins (%.1f a minute on average, %d in the first minute, at most %d in any minute)",
			len(lt), float64(len(lt))/60, first, pm)
		if pm > DefaultLoginBudget.PerMinute || ph > DefaultLoginBudget.PerHour {
			t.Fatalf("%d logins in a minute, %d in an hour", pm, ph)
		}
	})
}

// The budget's arithmetic, on given times.
func TestLoginBudget(t *testing.T) {
	t.Parallel()
	b := newBudget(LoginBudget{})
	t0 := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Second)
		if n := b.next(at); n.After(at) {
			t.Fatalf("login %d refused until %v", i+1, n)
		}
		b.spend(at)
	}
	if n := b.next(t0.Add(6 * time.Second)); !n.Equal(t0.Add(time.Minute)) {
		t.Fatalf("the 7th login in a minute: allowed at %v, want %v", n, t0.Add(time.Minute))
	}
	b.refund(t0.Add(5 * time.Second)) // a dial that failed is no login
	if n := b.next(t0.Add(6 * time.Second)); n.After(t0.Add(6 * time.Second)) {
		t.Fatalf("after a refund: %v", n)
	}
	// 30 an hour.
	b = newBudget(LoginBudget{})
	for i := range 30 {
		b.spend(t0.Add(time.Duration(i) * time.Minute))
	}
	if n := b.next(t0.Add(30 * time.Minute)); !n.Equal(t0.Add(time.Hour)) {
		t.Fatalf("the 31st login in an hour: allowed at %v", n)
	}
	// Short sessions: the first is free, then 5 s, 10 s, … after the last login.
	b = newBudget(LoginBudget{})
	at := t0
	for i, want := range []time.Duration{0, 5 * time.Second, 10 * time.Second, 20 * time.Second} {
		b.spend(at)
		b.sessionEnded(at, at.Add(time.Second))
		if n := b.next(at.Add(time.Second)); n.Sub(at) != max(want, time.Second) {
			t.Fatalf("after %d short sessions: next login %v after the last, want %v", i+1, n.Sub(at), want)
		}
		at = at.Add(10 * time.Minute)
	}
	b.spend(at)
	b.sessionEnded(at, at.Add(2*time.Minute)) // a session that lasted clears the streak
	if n := b.next(at.Add(2 * time.Minute)); !n.Equal(at.Add(2 * time.Minute)) {
		t.Fatalf("after a long session: %v", n)
	}
	if err := b.refusal(at, at.Add(time.Minute)); !errors.Is(err, ErrLoginBudget) {
		t.Fatal(err)
	}
}

// The budget outlives a restart: a remedy that systemd restarts in a loop must not log
// in at every start.
func TestLoginBudgetSurvivesARestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "whatsapp.db.logins")
	t0 := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	b := newBudget(LoginBudget{})
	b.load(path, t0)
	for i := range 6 {
		b.spend(t0.Add(time.Duration(i) * time.Second))
	}
	b.sessionEnded(t0, t0.Add(time.Second))
	again := newBudget(LoginBudget{})
	again.load(path, t0.Add(10*time.Second))
	if n := again.next(t0.Add(10 * time.Second)); !n.Equal(t0.Add(time.Minute)) || again.streak != 1 || b.err != nil {
		t.Fatalf("after a restart: next login %v, streak %d, save error %v", n, again.streak, b.err)
	}
	// Restarted with the clock set back a year (saved logins "in the future"): they
	// count as made at the start, so the budget holds logins back for a minute, not a year.
	back := t0.AddDate(-1, 0, 0)
	early := newBudget(LoginBudget{})
	early.load(path, back)
	if n := early.next(back); !n.Equal(back.Add(time.Minute)) {
		t.Fatalf("clock set back a year: next login %v, want %v", n, back.Add(time.Minute))
	}
	if n := early.next(back.Add(2 * time.Minute)); !n.Equal(back.Add(2 * time.Minute)) {
		t.Fatalf("clock set back a year, 2 minutes later: next login %v, want now", n)
	}
}

// A start right after the budget was spent (remedy restarted in a loop) does not log in:
// it reports WA_DISCONNECTED{login_budget}, and the policies' reconnect waits for the
// budget.
func TestStartRespectsASpentBudget(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true, 1)
		defer r.close()
		now := time.Now()
		r.c.mu.Lock()
		for i := range 6 {
			r.c.budget.spend(now.Add(-time.Duration(50-i) * time.Second))
		}
		r.c.mu.Unlock()
		r.c.Start(context.Background())
		synctest.Wait()
		if d := r.seen("WA_DISCONNECTED"); r.s.Logins() != 0 || len(d) != 1 || d[0].Labels["reason"] != "login_budget" {
			t.Fatalf("logins %d, events %v", r.s.Logins(), d)
		}
		took, ok := r.waitUp(5 * time.Minute)
		if !ok || took < 9*time.Second {
			t.Fatalf("connected %v after %v: the budget allowed the next login 10 s after the start", ok, took)
		}
	})
}

// The restart after pairing meets a logout (401, as in field case 06): the failure is
// the logout, not a liveness fault, so no WA_STALE follows it — WA_STALE is only for a
// remedy that wants to be connected.
func TestRestartAfterPairingLoggedOutIsNotStale(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, 1)
		defer r.close()
		p := startPair(r.c, context.Background(), "")
		pc := p.next(t)
		r.s.OnLogin(func(fc *wafake.Conn) { fc.Failure(401, nil) })
		r.s.Each(func(fc *wafake.Conn) { fc.PairSuccess(pc.QR, types.NewADJID("6281100000009", 0, 7)) })
		if err := p.result(t); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if st := r.c.State(); st != LoggedOut || len(r.seen("WA_LOGGED_OUT")) == 0 {
			t.Fatalf("state %s, WA_LOGGED_OUT %v", st, r.seen("WA_LOGGED_OUT"))
		}
		if stale := r.seen("WA_STALE"); len(stale) != 0 {
			t.Fatalf("WA_STALE after a logout: %v", stale)
		}
	})
}
