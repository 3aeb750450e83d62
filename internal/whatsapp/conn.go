// Package whatsapp owns the WhatsApp connection: the whatsmeow client with its device
// store in SQLite, the connection supervisor that turns every lifecycle event into an
// engine event, RECONNECT_WA, a watchdog for the silent failures, a reachability probe,
// and sending texts. It never reconnects on its own — the policies decide when — except
// for the one restart the server asks for with stream error 515; every login, whoever asks
// for it, is paced by one login budget.
package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.mau.fi/whatsmeow"
	waE2E "go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
	"google.golang.org/protobuf/proto"
	_ "modernc.org/sqlite" // the device store's driver

	"github.com/remedy-run/remedy/engine"
	remedystore "github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/webhook"
)

// State is the connection's state as remedy sees it.
type State string

// Connection states. The terminal ones never lead to a reconnect.
const (
	Unpaired     State = "unpaired"
	Pairing      State = "pairing"
	Connecting   State = "connecting"
	Connected    State = "connected"
	Disconnected State = "disconnected"
	LoggedOut    State = "logged_out"    // terminal: re-pair
	Replaced     State = "replaced"      // terminal: another client has the session
	Outdated     State = "outdated"      // terminal: upgrade whatsmeow
	Banned       State = "temp_banned"   // until the ban's expiry
	Refused      State = "login_refused" // another failure code
)

func (s State) terminal() bool { return s == LoggedOut || s == Replaced || s == Outdated }

// ErrTerminal is returned by Reconnect after a terminal event.
var ErrTerminal = errors.New("not reconnecting after a terminal event")

// Options configure a Conn.
type Options struct {
	StorePath string             // the device store (SQLite)
	Events    func(engine.Event) // must not block
	Logger    *slog.Logger
	// HTTPClient dials WhatsApp (tests point it at a fake server on loopback).
	HTTPClient *http.Client
	// Watchdog is how often the supervisor checks the connection's liveness (default 1 s).
	Watchdog time.Duration
	// Bound is the liveness bound: while remedy wants to be connected and is not, with no
	// attempt in progress, WA_STALE is reported at most this long after the last sign of
	// recovery (default 20 s, the default RECONNECT_WA timeout). It also limits the one
	// restart the server asks for (515).
	Bound time.Duration
	// Budget limits logins (DefaultLoginBudget where a field is zero).
	Budget LoginBudget
	// Probe is how often an unreachable server is probed (default 1 s).
	Probe time.Duration
	// Messages receives incoming messages (every kind: inbound.go); it must only keep
	// them (it runs inside whatsmeow's event handling, which a slow handler would stall).
	// The message is acknowledged to WhatsApp (its receipt sent) only after Messages
	// returns nil: an error leaves it unacknowledged, for the server to deliver again.
	Messages func(webhook.Message) error
	// BeforeWrite, if set, runs before any bytes are written to WhatsApp's socket (a
	// receipt among them) and returns once what remedy acknowledges with them is on
	// disk, so that Messages may keep a message without waiting for the disk: the
	// receipt, which whatsmeow sends after Messages returned, waits here instead, while
	// whatsmeow's message loop goes on, and one sync serves the messages kept meanwhile.
	// An error closes the socket (nothing unsynced is acknowledged; the server delivers
	// again what got no receipt). The daemon gives remedy.db's Sync.
	BeforeWrite func() error
	// Receipts receives delivery and read receipts for the bot's messages (ids,
	// chat.StatusDelivered or chat.StatusRead); it must not block.
	Receipts func(ids []string, status string, at time.Time)
	// ReceiptDeliveries receives every receipt from others, for the bot's handler
	// (webhook "receipt" deliveries); it must only queue them.
	ReceiptDeliveries func(webhook.Receipt)
	// Changes receives edits and deletions for everyone of earlier messages, as
	// webhook "edit" and "delete" deliveries; like Messages it must only keep them, and
	// an error leaves the change unacknowledged, for the server to deliver again. Nil:
	// they are dropped.
	Changes func(webhook.Event) error

	// Undecryptable is told about each incoming message that could not be decrypted
	// (for the message counters); it must not block.
	Undecryptable func(sender, chat string)
}

// Conn is the supervised WhatsApp connection. Open it, Start it, Close it.
type Conn struct {
	opts      Options
	cli       *whatsmeow.Client
	container *sqlstore.Container
	stmts     *remedystore.StmtConnector // the container's connections (their statement cache)
	lock      *os.File
	socks     *sockets

	// bg is the connection's lifetime: whatsmeow runs a connection's event handling on
	// the context given to ConnectContext, so it must not be an attempt's (short) one.
	bg     context.Context
	cancel context.CancelFunc

	mu          sync.Mutex
	state       State
	bannedUntil time.Time
	banTimer    *time.Timer
	waiters     []chan error // Reconnect calls waiting for Connected or a failure
	unreachable bool         // a probe failed during this outage
	qr          string
	reset       *StoreReset // the device store was moved aside at open; nil once paired

	// liveness (see liveness.go)
	budget       *budget
	connectedAt  time.Time // the current session's login
	lastProgress time.Time // the last sign of recovery: an outage event, an attempt's end
	reminders    int       // WA_STALE reports in this outage
	attempting   int       // logins in progress
	afterPair    bool      // paired, and not yet connected since
	lastFailed   bool      // the last login attempt failed
}

// Open opens the device store, taking a lock so that a second remedy on the same store
// refuses to start (two clients on one session replace each other in a loop).
func Open(ctx context.Context, opts Options) (*Conn, error) {
	if opts.Events == nil {
		opts.Events = func(engine.Event) {}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Watchdog <= 0 {
		opts.Watchdog = time.Second
	}
	if opts.Bound <= 0 {
		opts.Bound = 20 * time.Second
	}
	if opts.Probe <= 0 {
		opts.Probe = time.Second
	}
	lock, err := os.OpenFile(opts.StorePath+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("whatsapp: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("whatsapp: another remedy is using the device store %s (a second client would replace the first)", opts.StorePath)
	}
	// Transactions take the write lock at BEGIN (_txlock=immediate): a deferred one that
	// reads first and then writes (decryption with its buffer) fails at once with
	// SQLITE_BUSY when another connection wrote meanwhile, whatever busy_timeout says.
	// synchronous=NORMAL in WAL mode: a commit is not fsynced (the checkpoint is), so a
	// crash of remedy loses nothing and a power cut at most the last commits; with FULL
	// every decrypted message's session update waited for the disk, in whatsmeow's one
	// event loop. mautrix's own SQLite setup (go.mau.fi/util dbutil "sqlite3-fk-wal")
	// uses the same.
	dsn := remedystore.FileURI(opts.StorePath) + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	ds, reset, err := openStore(ctx, opts.StorePath, dsn, time.Now)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("whatsapp: device store: %w", err)
	}
	if opts.HTTPClient == nil {
		// Dials are bounded here, since the connection's context lives as long as it does.
		opts.HTTPClient = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 15 * time.Second}}
	}
	socks := &sockets{conns: map[*trackedConn]struct{}{}, beforeWrite: opts.BeforeWrite}
	opts.HTTPClient = socks.wrap(opts.HTTPClient)
	c := &Conn{opts: opts, container: ds.container, stmts: ds.stmts, lock: lock, state: Unpaired, socks: socks, budget: newBudget(opts.Budget),
		lastProgress: time.Now()}
	c.budget.load(opts.StorePath+".logins", time.Now()) // the budget outlives a restart
	c.bg, c.cancel = context.WithCancel(context.Background())
	c.newClient(ds.dev)
	c.pruneMedia(time.Now())
	if ds.dev.ID != nil {
		c.state = Disconnected
	}
	if reset != nil {
		c.reset = reset
		c.reportReset(reset)
	}
	return c, nil
}

// newClient makes the whatsmeow client for a device. Its own auto-reconnect is off:
// reconnection belongs to the policies (whatsmeow's has no cap, no jitter and no limit).
func (c *Conn) newClient(dev *store.Device) {
	cli := whatsmeow.NewClient(dev, waLog.Noop)
	cli.EnableAutoReconnect = false
	// The 515 restart goes through the supervisor (ManualLoginReconnect), so that it is
	// paced by the budget and its failure is reported (whatsmeow would only log it).
	cli.DisableLoginAutoReconnect = true
	// whatsmeow always asks the sender of an undecryptable message to resend it (retry
	// receipts); this also asks the account's own phone for it after 5 s, which recovers
	// messages whose sender cannot help (a broken session on their side).
	cli.AutomaticMessageRerequestFromPhone = true
	// A message whose handling failed gets no receipt, so the server delivers it again;
	// the buffer keeps its plaintext, stored with the Signal session's step, so that the
	// second delivery decrypts (the session has moved on) instead of being dropped as
	// already seen. It is whatsmeow's at-least-once path (client.go, message.go).
	cli.EnableDecryptedEventBuffer = true
	cli.SetWebsocketHTTPClient(c.opts.HTTPClient)
	cli.SetPreLoginHTTPClient(c.opts.HTTPClient)
	cli.SetMediaHTTPClient(c.opts.HTTPClient) // uploads of the send API (send.go), downloads (media.go)
	cli.AddEventHandlerWithSuccessStatus(c.handle)
	c.cli = cli
}

// Client is the whatsmeow client (for pairing and sending).
func (c *Conn) Client() *whatsmeow.Client { return c.cli }

// State is the current state.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// QR is the latest pairing QR code ("" when not pairing).
func (c *Conn) QR() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qr
}

func (c *Conn) emit(code string, labels map[string]string, msg string, value float64) {
	c.opts.Events(engine.Event{Time: time.Now(), Code: code, Source: "whatsapp", Labels: labels, Message: msg, Value: value})
}

func (c *Conn) setState(s State) {
	c.mu.Lock()
	c.setLocked(s)
	c.mu.Unlock()
}

// setLocked changes the state (c.mu held). Leaving Connected ends a session: the budget
// learns how long it lasted, and the liveness clock starts.
func (c *Conn) setLocked(s State) {
	now := time.Now()
	if c.state == Connected && s != Connected {
		c.budget.sessionEnded(c.connectedAt, now)
		c.lastProgress = now
	}
	if s == Connected && c.state != Connected {
		c.connectedAt = now
	}
	c.state = s
}

// handle maps whatsmeow's events to engine events. It runs on whatsmeow's goroutines and
// does nothing slow. It returns false only for a message that was not kept: whatsmeow
// then sends no receipt for it.
func (c *Conn) handle(evt any) bool {
	switch e := evt.(type) {
	case *events.Connected:
		c.mu.Lock()
		c.setLocked(Connected)
		c.unreachable, c.afterPair, c.reminders, c.lastFailed = false, false, 0, false
		c.mu.Unlock()
		c.settle(nil)
		c.emit("WA_CONNECTED", nil, "", 0)
	case *events.Disconnected:
		st := c.State()
		if st == Pairing || c.cli.Store.ID == nil {
			return true // the end of a pairing attempt, not an outage: Pair reports it
		}
		reason := "remote"
		if st.terminal() || st == Banned {
			reason = "after_" + string(st) // late: the terminal event wins
		} else {
			c.mu.Lock()
			c.setLocked(Disconnected)
			c.lastProgress = time.Now()
			c.mu.Unlock()
		}
		c.settle(errors.New("disconnected"))
		c.emit("WA_DISCONNECTED", map[string]string{"reason": reason}, "", 0)
	case *events.KeepAliveTimeout:
		c.emit("WA_KEEPALIVE_TIMEOUT", map[string]string{"error_count": strconv.Itoa(e.ErrorCount)},
			"last answer "+e.LastSuccess.Format(time.RFC3339), float64(e.ErrorCount))
	case *events.KeepAliveRestored:
		c.emit("WA_KEEPALIVE_RESTORED", nil, "", 0)
	case *events.LoggedOut:
		c.setState(LoggedOut)
		c.settle(ErrTerminal)
		c.emit("WA_LOGGED_OUT", map[string]string{"reason": e.Reason.String(), "on_connect": strconv.FormatBool(e.OnConnect)}, "", 0)
	case *events.StreamReplaced:
		c.setState(Replaced)
		c.settle(ErrTerminal)
		c.emit("WA_STREAM_REPLACED", nil, "another client took the session", 0)
	case *events.StreamError:
		c.mu.Lock()
		if !c.state.terminal() && c.state != Banned {
			c.setLocked(Disconnected)
		}
		c.lastProgress = time.Now()
		c.mu.Unlock()
		c.settle(fmt.Errorf("stream error %s", e.Code))
		c.emit("WA_STREAM_ERROR", map[string]string{"code": e.Code}, "", 0)
	case *events.TemporaryBan:
		until := time.Now().Add(e.Expire)
		c.mu.Lock()
		c.setLocked(Banned)
		c.bannedUntil = until
		if c.banTimer != nil {
			c.banTimer.Stop()
		}
		// The adapter reports the expiry once; the policies decide what to do then.
		c.banTimer = time.AfterFunc(e.Expire, func() {
			c.mu.Lock()
			if c.state == Banned {
				c.setLocked(Disconnected)
				c.lastProgress = time.Now()
			}
			c.mu.Unlock()
			c.emit("WA_TEMP_BAN_EXPIRED", nil, "", 0)
		})
		c.mu.Unlock()
		c.settle(fmt.Errorf("temporarily banned until %s", until.UTC().Format(time.RFC3339)))
		c.emit("WA_TEMP_BAN", map[string]string{"code": strconv.Itoa(int(e.Code)), "expire": until.UTC().Format(time.RFC3339)},
			e.Code.String(), e.Expire.Seconds())
	case *events.ClientOutdated:
		c.setState(Outdated)
		c.settle(ErrTerminal)
		c.emit("WA_CLIENT_OUTDATED", nil, "the server refused this client version (405)", 0)
	case *events.ConnectFailure:
		c.setState(Refused)
		c.settle(fmt.Errorf("login refused: %d %s", int(e.Reason), e.Message))
		c.emit("WA_CONNECT_FAILURE", map[string]string{"reason": strconv.Itoa(int(e.Reason))}, e.Message, 0)
	case *events.PairSuccess:
		c.mu.Lock()
		c.setLocked(Connecting)
		c.afterPair, c.lastProgress = true, time.Now()
		c.reset = nil // a new session: the old store's story is over
		c.mu.Unlock()
		c.emit("WA_PAIR_SUCCESS", nil, e.ID.String(), 0)
	case *events.ManualLoginReconnect:
		c.restart()
	case *events.UndecryptableMessage:
		c.undecryptable(e)
	case *events.Message:
		return c.message(e)
	case *events.Receipt:
		c.receipt(e)
		if c.opts.ReceiptDeliveries != nil && !e.IsFromMe {
			c.opts.ReceiptDeliveries(receipt(e))
		}
	case *events.PairError:
		c.emit("WA_PAIR_ERROR", map[string]string{"reason": "pair_error"}, e.Error.Error(), 0)
	}
	return true
}

// settle answers the Reconnect calls waiting for the outcome of a connection.
func (c *Conn) settle(err error) {
	c.mu.Lock()
	ws := c.waiters
	c.waiters = nil
	c.mu.Unlock()
	for _, w := range ws {
		w <- err
	}
}

// Start connects if the device is paired. A failure to connect, or a login the budget
// does not allow yet (reason login_budget), is reported as WA_DISCONNECTED so that the
// reconnect policy takes over.
func (c *Conn) Start(ctx context.Context) error {
	if c.cli.Store.ID == nil {
		return nil // unpaired: the dashboard and `remedy pair` show how to pair
	}
	c.mu.Lock()
	spent := time.Now()
	if next := c.budget.next(spent); next.After(spent) {
		// Restarted soon after many logins (a crash loop): no login now; the policies
		// retry, and the budget paces them.
		err := c.budget.refusal(spent, next)
		c.setLocked(Disconnected)
		c.lastProgress = spent
		c.mu.Unlock()
		c.emit("WA_DISCONNECTED", map[string]string{"reason": "login_budget"}, err.Error(), 0)
		return nil
	}
	c.budget.spend(spent)
	c.setLocked(Connecting)
	c.lastProgress = spent
	c.mu.Unlock()
	if err := c.cli.ConnectContext(c.bg); err != nil {
		c.mu.Lock()
		c.budget.refund(spent)
		c.setLocked(Disconnected)
		c.mu.Unlock()
		c.emit("WA_DISCONNECTED", map[string]string{"reason": "connect_failed"}, err.Error(), 0)
	}
	return nil
}

// StartLater is Start for a restart in the middle of a reconnect ladder: the connection
// stays down and the ladder's next RECONNECT_WA, restored with the engine's state, makes
// the next login on its schedule — a crash-looping remedy never grants extra logins.
func (c *Conn) StartLater() {
	if c.cli.Store.ID == nil {
		return
	}
	c.setState(Disconnected)
}

// Reconnect is RECONNECT_WA: one attempt — drop the socket, connect, and wait until
// WhatsApp says Connected or refuses (within ctx's deadline). It refuses to run after a
// logout, a replaced session or an outdated client, and before a ban expires; and, with
// an error wrapping ErrLoginBudget, when a login now would exceed the login budget and
// the wait for it does not fit in half of ctx's deadline.
func (c *Conn) Reconnect(ctx context.Context) error {
	c.mu.Lock()
	st, until := c.state, c.bannedUntil
	c.mu.Unlock()
	switch {
	case st.terminal():
		return fmt.Errorf("%w (%s)", ErrTerminal, st)
	case st == Banned && time.Now().Before(until):
		return fmt.Errorf("temporarily banned until %s", until.UTC().Format(time.RFC3339))
	case c.cli.Store.ID == nil:
		return errors.New("not paired: run remedy pair")
	}
	return c.login(ctx)
}

func (c *Conn) dropWaiter(w chan error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

// SendText sends a text message. It fails while disconnected, so callers (the alert
// outbox, the outbound queue) keep the message and try again later.
func (c *Conn) SendText(ctx context.Context, to, text string) error {
	if !c.cli.IsConnected() || !c.cli.IsLoggedIn() {
		return whatsmeow.ErrNotConnected
	}
	jid, err := types.ParseJID(normalize(to))
	if err != nil {
		return err
	}
	_, err = c.cli.SendMessage(ctx, jid, &waE2E.Message{Conversation: proto.String(text)})
	return err
}

// normalize makes a recipient a JID: a JID ("…@g.us", "…@s.whatsapp.net", "…@lid")
// is kept as is — a group's id must never become a phone number (b2-02) — and anything
// else is a phone number, written any way ("+62 811-00").
func normalize(number string) string {
	if strings.Contains(number, "@") {
		return number
	}
	out := make([]byte, 0, len(number))
	for _, r := range number {
		if r >= '0' && r <= '9' {
			out = append(out, byte(r))
		}
	}
	return string(out) + "@" + types.DefaultUserServer
}

// Close disconnects and releases the store.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.banTimer != nil {
		c.banTimer.Stop()
	}
	c.mu.Unlock()
	c.cli.Disconnect()
	c.cancel()
	err := c.container.Close()
	syscall.Flock(int(c.lock.Fd()), syscall.LOCK_UN)
	c.lock.Close()
	return err
}
