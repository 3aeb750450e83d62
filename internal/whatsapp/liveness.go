package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Reasons of WA_STALE: why the supervisor found remedy wanting to be connected, not
// connected, and nothing under way.
const (
	StaleNotConnected     = "not_connected"       // believed connected, but the client is not (zombie socket)
	StaleLoginTimeout     = "login_timeout"       // a socket is open but the login got no answer
	StalePairRestart      = "pair_restart_failed" // the restart after pairing (515) did not connect
	StaleRestartFailed    = "restart_failed"      // the restart the server asked for (515) did not connect
	StaleReconnectFailed  = "reconnect_failed"    // the last attempt failed and none followed
	StaleNothingScheduled = "no_recovery"         // disconnected, and no attempt followed the last report
)

// maxReminder caps the spacing of repeated WA_STALE reports within one outage.
const maxReminder = 10 * time.Minute

// Run watches the connection until ctx ends. It is the liveness invariant's owner:
// whenever remedy wants to be connected (paired; not logged out, replaced, outdated,
// banned, refused by the server's slow-retry policy, or pairing) and is not, then at most
// Bound after the last sign of recovery (an outage event, the end of a login attempt) it
// reports WA_STALE with the reason — whatever whatsmeow is doing: dialing, a login
// without an answer (the hung socket is dropped), a failed 515 restart, a zombie socket.
// While an outage lasts the reports repeat with doubling spacing (Bound, 2×Bound, … up to
// 10 minutes). While disconnected, a TCP probe (no login) notices when the server can be
// reached again after it could not, and reports WA_REACHABLE.
func (c *Conn) Run(ctx context.Context) {
	wd := time.NewTicker(c.opts.Watchdog)
	defer wd.Stop()
	ticks := 0
	pr := time.NewTicker(c.opts.Probe)
	defer pr.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wd.C:
			// whatsmeow's IsConnected reads the socket without the lock its close holds (a
			// -race report when the two meet), so a session believed up is verified only
			// every tenth check; everything else is remedy's own state.
			ticks++
			c.watch(time.Now(), ticks%10 == 0)
		case <-pr.C:
			if c.State() != Disconnected {
				continue
			}
			err := c.probe(ctx)
			c.mu.Lock()
			was := c.unreachable
			c.unreachable = err != nil
			c.mu.Unlock()
			if was && err == nil {
				c.emit("WA_REACHABLE", nil, "", 0)
			}
		}
	}
}

// watch is one liveness check.
func (c *Conn) watch(now time.Time, verify bool) {
	c.mu.Lock()
	st := c.state
	if c.cli.Store.ID == nil || st.terminal() || st == Unpaired || st == Pairing || st == Refused ||
		(st == Banned && now.Before(c.bannedUntil)) {
		// Not wanted, or left to a policy's deliberate slow retry: nothing to watch.
		c.lastProgress, c.reminders = now, 0
		c.mu.Unlock()
		return
	}
	if st == Connected {
		c.budget.lasted(c.connectedAt, now)
		c.mu.Unlock()
		if verify && (!c.cli.IsConnected() || !c.cli.IsLoggedIn()) {
			c.mu.Lock()
			if c.state == Connected {
				c.setLocked(Disconnected)
				c.mu.Unlock()
				c.emit("WA_STALE", map[string]string{"reason": StaleNotConnected}, "believed connected, but the client is not", 0)
				return
			}
			c.mu.Unlock()
		}
		return
	}
	if c.attempting > 0 {
		c.lastProgress = now // an attempt is bounded by its own timeout
		c.mu.Unlock()
		return
	}
	wait := min(c.opts.Bound<<min(c.reminders, 20), max(maxReminder, c.opts.Bound))
	// Checked every Watchdog, so report one interval early to stay within the bound.
	if now.Sub(c.lastProgress) < wait-c.opts.Watchdog {
		c.mu.Unlock()
		return
	}
	reason := StaleNothingScheduled
	switch {
	case c.afterPair:
		reason = StalePairRestart
	case st == Connecting:
		reason = StaleLoginTimeout
	case c.lastFailed:
		reason = StaleReconnectFailed
	}
	hung := st == Connecting
	if hung {
		c.setLocked(Disconnected)
	}
	c.lastProgress = now
	c.reminders++
	n := c.reminders
	c.mu.Unlock()
	if hung {
		c.cli.Disconnect() // the socket whose login got no answer
		c.settle(errors.New("login got no answer"))
	}
	c.emit("WA_STALE", map[string]string{"reason": reason},
		fmt.Sprintf("wanted connected, not connected, nothing under way (report %d of this outage)", n), float64(n))
}

// login is one login attempt, paced by the budget: drop the socket, connect, and wait for
// Connected or a refusal within ctx's deadline.
func (c *Conn) login(ctx context.Context) (err error) {
	c.mu.Lock()
	c.attempting++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.attempting--
		c.lastProgress, c.lastFailed = time.Now(), err != nil
		c.mu.Unlock()
	}()
	wait := make(chan error, 1)
	var spent time.Time
	for {
		c.mu.Lock()
		now := time.Now()
		next := c.budget.next(now)
		if !next.After(now) {
			spent = now
			c.budget.spend(now)
			c.waiters = append(c.waiters, wait)
			c.setLocked(Connecting)
			c.mu.Unlock()
			break
		}
		refusal := c.budget.refusal(now, next)
		c.mu.Unlock()
		dl, ok := ctx.Deadline()
		if !ok || next.Sub(now) > time.Until(dl)/2 {
			return refusal
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return refusal
		}
	}
	c.cli.Disconnect()
	if err := c.cli.ConnectContext(c.bg); err != nil {
		c.dropWaiter(wait)
		c.mu.Lock()
		c.budget.refund(spent)
		c.setLocked(Disconnected)
		c.mu.Unlock()
		return fmt.Errorf("connect: %w", err)
	}
	select {
	case err := <-wait:
		return err
	case <-ctx.Done():
		c.dropWaiter(wait)
		return fmt.Errorf("no Connected before the deadline: %w", ctx.Err())
	}
}

// restart is the reconnect the server asks for with stream error 515 (after pairing, and
// at times later): one login through the budget, at once. If it does not connect within
// Bound, WA_STALE says so and the policies take over.
func (c *Conn) restart() {
	c.mu.Lock()
	// whatsmeow dispatches events on goroutines: the 515 may be handled before PairSuccess.
	pair := c.afterPair || c.state == Pairing
	c.afterPair = pair
	c.setLocked(Disconnected)
	c.attempting++ // counted from now, so the watchdog does not report the gap
	c.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(c.bg, c.opts.Bound)
		defer cancel()
		err := c.login(ctx)
		c.mu.Lock()
		c.attempting--
		c.mu.Unlock()
		if err == nil || c.bg.Err() != nil {
			return
		}
		reason := StaleRestartFailed
		if pair {
			reason = StalePairRestart
		}
		c.mu.Lock()
		if c.state == Connecting {
			c.setLocked(Disconnected)
		}
		// A logout, a replacement, a ban or a refusal that ended the restart has its own
		// event and policy: remedy no longer wants to be connected, so nothing is stale.
		st := c.state
		c.mu.Unlock()
		if st.terminal() || st == Banned || st == Refused {
			return
		}
		c.emit("WA_STALE", map[string]string{"reason": reason}, "the restart the server asked for (515) failed: "+err.Error(), 0)
	}()
}

// Budget reports the login budget's state.
func (c *Conn) Budget() BudgetStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.budget.status(time.Now())
}

// probe opens (and closes) a TCP connection to WhatsApp's server, through the same
// dialer the client uses.
func (c *Conn) probe(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	dial := (&net.Dialer{}).DialContext
	if tr, ok := c.opts.HTTPClient.Transport.(*http.Transport); ok && tr.DialContext != nil {
		dial = tr.DialContext
	}
	conn, err := dial(pctx, "tcp", "web.whatsapp.com:443")
	if err != nil {
		return err
	}
	return conn.Close()
}
