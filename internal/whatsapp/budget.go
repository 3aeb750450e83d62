package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// LoginBudget limits how often the supervisor logs in, whoever asks (a policy's
// RECONNECT_WA, the start, the restart the server asks for with stream error 515).
// Frequent logins are what gets a number banned (Baileys #2188, whatsmeow #506), and a
// server that breaks every session right after its login makes each login look like a
// success, so a backoff that only counts failed attempts starts over each time.
type LoginBudget struct {
	// PerMinute and PerHour cap logins in any sliding minute and hour (defaults 6 and 30).
	PerMinute, PerHour int
	// ShortSession: a session that ends sooner than this after its login counts as a
	// failed login (default 60 s). From the second in a row, each doubles the pause
	// before the next login, from 5 s up to MaxPause (default 5 min); a session that
	// lasts resets it.
	ShortSession time.Duration
	MaxPause     time.Duration
}

// DefaultLoginBudget is 6 logins a minute, 30 an hour, sessions under 60 s are failures.
var DefaultLoginBudget = LoginBudget{PerMinute: 6, PerHour: 30, ShortSession: time.Minute, MaxPause: 5 * time.Minute}

// ErrLoginBudget is returned by Reconnect when a login now would exceed the budget.
var ErrLoginBudget = errors.New("login budget")

const firstPause = 5 * time.Second

// BudgetStatus is the login budget's state, for /metrics and the status page.
type BudgetStatus struct {
	LastMinute, LastHour int       // logins in the last minute and hour
	PerMinute, PerHour   int       // the limits
	ShortStreak          int       // sessions in a row that ended within ShortSession
	NextAllowed          time.Time // earliest time the next login may start
}

// budget is the windowed login counter. Its owner (Conn) holds the lock; times come
// from the caller.
type budget struct {
	cfg    LoginBudget
	logins []time.Time // the last hour's logins, oldest first
	streak int
	// path keeps the budget across restarts (a remedy restarted in a loop by systemd
	// must not log in at every start); "" keeps it in memory only.
	path string
	err  error // the last save's error, if any
}

// budgetFile is the budget as saved next to the device store.
type budgetFile struct {
	Logins []time.Time `json:"logins"`
	Streak int         `json:"short_streak"`
}

// load reads a saved budget; a missing or unreadable file starts empty. Logins saved
// with a later time than now (the wall clock was set back: a board without a real-time
// clock, a corrected date) count as made now: kept as they are, they would hold every
// login back until that later time, days or years away.
func (b *budget) load(path string, now time.Time) {
	b.path = path
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var f budgetFile
	if json.Unmarshal(data, &f) == nil {
		for i, t := range f.Logins {
			if t.After(now) {
				f.Logins[i] = now
			}
		}
		b.logins, b.streak = f.Logins, f.Streak
	}
}

// save writes the budget atomically (write, then rename).
func (b *budget) save() {
	if b.path == "" {
		return
	}
	data, _ := json.Marshal(budgetFile{Logins: b.logins, Streak: b.streak})
	tmp := b.path + ".tmp"
	if b.err = os.WriteFile(tmp, data, 0o600); b.err == nil {
		b.err = os.Rename(tmp, b.path)
	}
}

func newBudget(cfg LoginBudget) *budget {
	d := DefaultLoginBudget
	if cfg.PerMinute <= 0 {
		cfg.PerMinute = d.PerMinute
	}
	if cfg.PerHour <= 0 {
		cfg.PerHour = d.PerHour
	}
	if cfg.ShortSession <= 0 {
		cfg.ShortSession = d.ShortSession
	}
	if cfg.MaxPause <= 0 {
		cfg.MaxPause = d.MaxPause
	}
	return &budget{cfg: cfg}
}

func (b *budget) prune(now time.Time) {
	i := 0
	for i < len(b.logins) && !b.logins[i].After(now.Add(-time.Hour)) {
		i++
	}
	b.logins = b.logins[i:]
}

// within counts the logins after now-w.
func (b *budget) within(now time.Time, w time.Duration) int {
	n := 0
	for _, t := range b.logins {
		if t.After(now.Add(-w)) {
			n++
		}
	}
	return n
}

// pause is the wait after the last login that the streak of short sessions imposes.
func (b *budget) pause() time.Duration {
	if b.streak < 2 {
		return 0 // one short session may be bad luck (a network drop)
	}
	p := firstPause << min(b.streak-2, 20)
	return min(p, b.cfg.MaxPause)
}

// next is the earliest time a login may start.
func (b *budget) next(now time.Time) time.Time {
	b.prune(now)
	t := now
	if n := len(b.logins); n > 0 {
		if p := b.logins[n-1].Add(b.pause()); p.After(t) {
			t = p
		}
	}
	// The k-th newest login must have left the window before another may start.
	if m := b.within(now, time.Minute); m >= b.cfg.PerMinute {
		if u := b.logins[len(b.logins)-b.cfg.PerMinute].Add(time.Minute); u.After(t) {
			t = u
		}
	}
	if len(b.logins) >= b.cfg.PerHour {
		if u := b.logins[len(b.logins)-b.cfg.PerHour].Add(time.Hour); u.After(t) {
			t = u
		}
	}
	return t
}

func (b *budget) spend(now time.Time) {
	b.prune(now)
	b.logins = append(b.logins, now)
	b.save()
}

// refund takes back the login spent at t: the dial or the handshake failed, so no login
// reached the server.
func (b *budget) refund(t time.Time) {
	for i := len(b.logins) - 1; i >= 0; i-- {
		if b.logins[i].Equal(t) {
			b.logins = append(b.logins[:i], b.logins[i+1:]...)
			b.save()
			return
		}
	}
}

// sessionEnded records the end of a session that began at login.
func (b *budget) sessionEnded(login, now time.Time) {
	if now.Sub(login) < b.cfg.ShortSession {
		b.streak++
	} else {
		b.streak = 0
	}
	b.save()
}

// lasted resets the streak once a session has lasted ShortSession.
func (b *budget) lasted(login, now time.Time) {
	if now.Sub(login) >= b.cfg.ShortSession && b.streak != 0 {
		b.streak = 0
		b.save()
	}
}

func (b *budget) status(now time.Time) BudgetStatus {
	next := b.next(now)
	return BudgetStatus{LastMinute: b.within(now, time.Minute), LastHour: len(b.logins), PerMinute: b.cfg.PerMinute,
		PerHour: b.cfg.PerHour, ShortStreak: b.streak, NextAllowed: next}
}

func (b *budget) refusal(now, next time.Time) error {
	return fmt.Errorf("%w: next login allowed at %s (at most %d a minute and %d an hour; %d short session(s) in a row)",
		ErrLoginBudget, next.UTC().Format(time.RFC3339), b.cfg.PerMinute, b.cfg.PerHour, b.streak)
}
