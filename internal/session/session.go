// Package session owns one WhatsApp number: its connection (whatsmeow client,
// supervisor, login budget, liveness bound), its durable inbound and outbound queues,
// the inbound keeper and spool, handler dispatch, the send path, receipts, media and
// pairing. Open builds a Session whole; Run runs it as one actor and stops it in order.
// Other packages use small views of it (Reconnect for actions, State/QR/Pair for the
// dashboard, Send/MessageStatus/SaveMedia for the send API, Source for the sampler).
// The daemon holds a set of sessions and wires them; it decides nothing about WhatsApp.
package session

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/alert"
	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/internal/whatsapp"
	"github.com/remedy-run/remedy/web"
	"github.com/remedy-run/remedy/webhook"
)

// Label is the label every event of a session carries, with the session's name.
const Label = "session"

// Deps is what the daemon shares with every session.
type Deps struct {
	// Emit reaches the engine; it must not block. The session adds its Label to every
	// event it emits.
	Emit func(engine.Event)
	// DB is remedy.db (the queues, the outgoing messages, receipts).
	DB *store.DB
	// DataDir is the data directory (the spool, the send API's media).
	DataDir  string
	Counters *monitor.Counters
	Logger   *slog.Logger
	// HTTPClient dials WhatsApp (tests: a fake server on loopback); nil: the default.
	HTTPClient *http.Client
	// Handler is the bot's in-process handler (daemon.WithHandler); nil: the session's
	// configured webhook.
	Handler chat.Handler
	// WrapHandler, if set, wraps the session's handler (the daemon's fire drill).
	WrapHandler func(chat.Handler) chat.Handler
	// Commands answers the admin chat's commands.
	Commands chat.Backend
	// Backlog is told when inbound messages start waiting in the spool and when it is
	// empty again (STORE_BACKLOG with writer=<the inbound queue's name>).
	Backlog func(name string, rows int, err error)
	// Tune adjusts each queue's options before it opens (the configuration's queues).
	Tune func(*queue.Options)
	// SendFailed is told the session and reason of every failed send (the failures
	// metric); it must not block.
	SendFailed func(session, reason string)
}

// Config is one session's configuration.
type Config struct {
	config.Session
	// CheckInterval is how often the queues' watchdogs look (default 30 s).
	CheckInterval time.Duration
}

// Session is one WhatsApp number, built whole by Open and run by Run.
type Session struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	emit func(engine.Event)

	conn    *whatsapp.Conn
	chat    *chat.Pipeline
	inbound *inboundKeeper
	spool   *store.Spool[chat.Message] // nil: it could not be made
	pair    *pairer

	// life is the session's lifetime (pairing runs in it); ended when Run returns or Close.
	life      context.Context
	endLife   context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

// Queues names a session's two queues: "inbound" and "outbound" for the default
// session, "inbound_NAME" and "outbound_NAME" for the others.
func Queues(name string) (in, out string) {
	if name == "" || name == config.DefaultSession {
		return "inbound", "outbound"
	}
	return "inbound_" + name, "outbound_" + name
}

// Open builds the session: the device store and its connection (not started), the
// queues and the inbound spool. Nothing runs until Start and Run. Errors: the store
// cannot be opened (another remedy holds it, a damaged file that cannot be rebuilt), a
// queue cannot be opened. What was opened before a failure is closed again.
func Open(ctx context.Context, deps Deps, cfg Config) (_ *Session, err error) {
	if cfg.Name == "" {
		cfg.Name = config.DefaultSession
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Counters == nil {
		deps.Counters = monitor.NewCounters()
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 30 * time.Second
	}
	s := &Session{cfg: cfg, deps: deps}
	s.log = deps.Logger
	if cfg.Name != config.DefaultSession {
		s.log = s.log.With(Label, cfg.Name)
	}
	s.emit = s.labelled
	s.life, s.endLife = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if dir := filepath.Dir(cfg.Store); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	var sync func() error
	if deps.DB != nil {
		sync = deps.DB.Sync
	}
	if s.conn, err = whatsapp.Open(ctx, whatsapp.Options{StorePath: cfg.Store, Events: s.emit, Logger: s.log, HTTPClient: deps.HTTPClient,
		Messages: s.receive, ReceiptDeliveries: s.receipt, Changes: s.change,
		Undecryptable: func(_, _ string) { deps.Counters.Undecryptable(1) },
		BeforeWrite:   sync,
		Receipts: func(ids []string, status string, at time.Time) {
			if s.chat != nil { // set before the connection starts
				s.chat.Receipt(ids, status, at)
			}
		}}); err != nil {
		return nil, err
	}
	inName, outName := Queues(cfg.Name)
	mediaTotal, mediaFree := cfg.Send.MediaBounds()
	mediaDir := filepath.Join(deps.DataDir, "media")
	if cfg.Name != config.DefaultSession {
		mediaDir = filepath.Join(deps.DataDir, "sessions", cfg.Name, "media") // pruned by this session alone
	}
	handler := s.handler()
	if deps.WrapHandler != nil {
		handler = deps.WrapHandler(handler)
	}
	if s.chat, err = chat.NewPipeline(ctx, chat.PipelineOptions{InName: inName, OutName: outName, Session: cfg.Name,
		MediaMaxTotal: mediaTotal, MediaMinFree: mediaFree, DB: deps.DB, Sender: s.conn, Counters: deps.Counters, Logger: s.log,
		MediaDir: mediaDir, MaxMedia: cfg.Send.MaxMediaBytes(), Limits: cfg.Send.Limits(),
		NewID: func() string { return string(s.conn.Client().GenerateMessageID()) },
		SendFailed: func(reason string) {
			if deps.SendFailed != nil {
				deps.SendFailed(cfg.Name, reason)
			}
		},
		// An outage is not a stuck outbound queue: queue-stuck would dead-letter the
		// messages waiting for the connection.
		Offline: func() bool { return s.conn.State() != whatsapp.Connected },
		Handler: handler,
		Tune:    s.tune, Events: s.emit, SendOutcomes: s.TakesEvents(),
		// An in-process bot sends every answer itself (bot.Send): each has its outcome,
		// whatever its key; only the webhook's {"reply": …} answers wait to be asked for.
		ReplyOutcomes: deps.Handler != nil || cfg.Handler != nil && cfg.Handler.ReplyOutcomes,
		Commands:      &chat.Commands{Prefix: cfg.CommandPrefix, Admins: cfg.Admins, Allowed: cfg.AllowedActions, Session: cfg.Name, Backend: deps.Commands}}); err != nil {
		return nil, err
	}
	if s.spool, err = store.OpenSpool[chat.Message](filepath.Join(deps.DataDir, ".remedy-spool-"+inName), store.SpoolSize); err != nil {
		s.log.Error("inbound spool not made; a message the queue cannot take is left unacknowledged for WhatsApp to deliver again", "error", err)
		s.spool, err = nil, nil
	}
	// A message's receipt leaves only once the message is on disk. Where every write
	// to WhatsApp waits for remedy.db's sync (BeforeWrite), the enqueue returns at its
	// commit and whatsmeow's one message loop goes on while the receipt waits; one
	// sync then serves the messages kept meanwhile (issue 27: the sync per message
	// in that loop bounded it to a few hundred messages a second on a busy disk).
	enqueue := s.chat.In.Enqueue
	if s.conn.WritesWait() {
		enqueue = s.chat.In.EnqueueUnsynced
	}
	s.inbound = newInboundKeeper(s.spool, inName, func(ctx context.Context, m chat.Message) error {
		_, err := enqueue(ctx, webhook.NewMessage(m)) // the handler's typed delivery
		return err
	}, deps.Backlog, s.log)
	if s.conn.WritesWait() {
		s.inbound.sync = sync
	}
	s.pair = &pairer{s: s}
	return s, nil
}

// labelled emits ev with the session's label (on a copy of its labels).
func (s *Session) labelled(ev engine.Event) {
	if s.deps.Emit == nil {
		return
	}
	l := make(map[string]string, len(ev.Labels)+1)
	maps.Copy(l, ev.Labels)
	l[Label] = s.cfg.Name
	ev.Labels = l
	s.deps.Emit(ev)
}

// tune names the queue's configuration: queues.<its name>, else queues.inbound or
// queues.outbound for every session's queue of that kind.
func (s *Session) tune(o *queue.Options) {
	if s.deps.Tune != nil {
		s.deps.Tune(o)
	}
}

// Name is the session's name.
func (s *Session) Name() string { return s.cfg.Name }

// Config is the session's configuration as opened.
func (s *Session) Config() Config { return s.cfg }

// Conn is the session's WhatsApp connection (embedders, benchmarks, tests).
func (s *Session) Conn() *whatsapp.Conn { return s.conn }

// Pipeline is the session's queues and handlers (embedders, tests).
func (s *Session) Pipeline() *chat.Pipeline { return s.chat }

// Start connects if the device is paired; later (a restart in the middle of a reconnect
// ladder) leaves the connection down for the ladder's next RECONNECT_WA, on its schedule.
func (s *Session) Start(ctx context.Context, later bool) {
	if later {
		s.conn.StartLater()
		return
	}
	if err := s.conn.Start(ctx); err != nil {
		s.log.Error("whatsapp", "error", err)
	}
	if s.conn.State() == whatsapp.Unpaired {
		s.log.Warn("WhatsApp is not paired: use the Pair button on the dashboard, or stop remedy and run `remedy pair` (or `remedy pair --phone NUMBER`)", Label, s.cfg.Name)
	}
}

// Run runs the session until ctx ends, then stops it in order: the queues finish what
// they hold (their items stay in remedy.db), the connection's supervisor stops, the
// socket closes and the spool is closed. It returns the connection's close error.
func (s *Session) Run(ctx context.Context) error {
	connCtx, stopConn := context.WithCancel(context.Background())
	var conn sync.WaitGroup
	conn.Go(func() { s.conn.Run(connCtx) })
	var wg sync.WaitGroup
	wg.Go(func() { s.chat.In.RunWatchdog(ctx, s.cfg.CheckInterval) })
	wg.Go(func() { s.chat.Out.RunWatchdog(ctx, s.cfg.CheckInterval) })
	wg.Go(func() { s.inbound.run(ctx) })
	s.chat.Run(ctx)
	wg.Wait()
	stopConn()
	conn.Wait()
	return s.Close()
}

// Close closes the connection and the spool (Run does it when it ends; call it for a
// session opened and never run). It is safe to call more than once.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.endLife()
		if s.conn != nil {
			s.closeErr = s.conn.Close()
		}
		if s.spool != nil {
			s.spool.Close()
		}
	})
	return s.closeErr
}

// receive keeps an incoming WhatsApp message (called inside whatsmeow's handling): in
// the inbound queue, or in its spool while the queue cannot take it. An error leaves the
// message unacknowledged, for WhatsApp to deliver again (inboundKeeper).
func (s *Session) receive(m chat.Message) error {
	s.deps.Counters.Received(1)
	return s.inbound.receive(context.Background(), m)
}

// Receive is whatsmeow's entry for an incoming message, for tests that flood the
// session without the network.
func (s *Session) Receive(m chat.Message) error { return s.receive(m) }

// SetInboundBound sets how long an incoming message waits for the queue before it is
// spooled (default 5 s); for tests that fault the store.
func (s *Session) SetInboundBound(d time.Duration) {
	s.inbound.mu.Lock()
	s.inbound.bound = d
	s.inbound.mu.Unlock()
}

// InboundWaiting is the number of incoming messages waiting in the spool.
func (s *Session) InboundWaiting() int { return s.inbound.len() }

// QueueList is the session's inbound and outbound queues.
func (s *Session) QueueList() []*queue.Queue { return []*queue.Queue{s.chat.In, s.chat.Out} }

// State is the connection's state (whatsapp.State's words).
func (s *Session) State() whatsapp.State { return s.conn.State() }

// Ready is the readiness probe: connected and deliberately unpaired are ready, and say
// which; any other state is not ready.
func (s *Session) Ready(context.Context) (string, error) {
	switch st := s.conn.State(); st {
	case whatsapp.Connected, whatsapp.Unpaired: // unpaired is deliberate until someone pairs
		return string(st), nil
	default:
		return "", fmt.Errorf("whatsapp %s", st)
	}
}

// Reconnect is RECONNECT_WA on this session's number (whatsapp.Conn.Reconnect).
func (s *Session) Reconnect(ctx context.Context) error { return s.conn.Reconnect(ctx) }

// QR is the pairing QR code while one is shown ("" otherwise).
func (s *Session) QR() string { return s.conn.QR() }

// Pair starts pairing in the background (pairer.start).
func (s *Session) Pair() error { return s.pair.start() }

// PairFailure is why the last pairing ended without a link ("" if none, or while one runs).
func (s *Session) PairFailure() string { return s.pair.failure() }

// Note explains a device store that was reset at open ("" if none).
func (s *Session) Note() string {
	if r := s.conn.StoreReset(); r != nil {
		return r.Explain()
	}
	return ""
}

// Wake sends what waits for the connection now (the outbound queue), not after its backoff.
func (s *Session) Wake() { s.chat.Out.Wake() }

// SendMessage queues a message of any kind on the durable outbound queue (the send
// API's path) and returns its id once it is on disk (chat.Pipeline.SendMessage).
func (s *Session) SendMessage(ctx context.Context, o chat.Outgoing) (string, error) {
	return s.chat.SendMessage(ctx, o)
}

// AlertNumber is the session as the alert pipeline's whatsapp channel uses it: its
// admins, whether it is connected, and its paced outbound path for their alerts (one
// guard, one budget per number; the message's id is kept across retries).
func (s *Session) AlertNumber() alert.Number {
	return alert.Number{Session: s.cfg.Name, Admins: s.cfg.Admins,
		Ready: func() bool { return s.conn.State() == whatsapp.Connected },
		Send: func(ctx context.Context, to, text, key string) error {
			_, err := s.chat.SendMessage(ctx, chat.Outgoing{To: to, Text: text, IdempotencyKey: chat.AlertKeyPrefix + key})
			return err
		}}
}

// PruneMedia is CLEAN_DATA target media for this session's uploads.
func (s *Session) PruneMedia(ctx context.Context) (string, error) { return s.chat.PruneMedia(ctx) }

// suffix is what the session's sample names end with: nothing for the default session
// (wa_connected, as before sessions), "_NAME" for the others (wa_connected_sales).
func (s *Session) suffix() string {
	if s.cfg.Name == config.DefaultSession {
		return ""
	}
	return "_" + s.cfg.Name
}

// Source is the session's part of every sample: the queues' depth, age of the oldest
// item and fill; and, while WhatsApp is meant to be up (paired), wa_connected and the
// login budget. Unpaired, the wa_* values are absent, so no policy fires on a
// deliberate state.
func (s *Session) Source(ctx context.Context) map[string]float64 {
	v := map[string]float64{}
	for _, q := range s.QueueList() {
		if st, err := q.Stats(ctx); err == nil {
			v["queue_"+q.Name()+"_depth"] = float64(st.Depth)
			v["queue_"+q.Name()+"_oldest_seconds"] = st.Oldest.Seconds()
			v["queue_"+q.Name()+"_fill"] = st.Fill
		}
	}
	if st := s.conn.State(); st != whatsapp.Unpaired {
		x := s.suffix()
		v["wa_connected"+x] = 0
		if st == whatsapp.Connected {
			v["wa_connected"+x] = 1
		}
		b := s.conn.Budget()
		v["wa_logins_last_min"+x], v["wa_logins_last_hour"+x] = float64(b.LastMinute), float64(b.LastHour)
		v["wa_login_wait_seconds"+x] = max(0, time.Until(b.NextAllowed).Seconds())
	}
	return v
}

// handler is the bot's handler: the embedder's (Deps.Handler), else the session's
// webhook (nil: none).
func (s *Session) handler() chat.Handler {
	if s.deps.Handler != nil {
		return s.deps.Handler
	}
	return s.webhookHandler()
}

// TakesEvents says whether the bot's handler gets the deliveries that are not messages
// (receipts, send outcomes, edits, deletions): the webhook does; an in-process handler
// only if it is a chat.EventHandler. Nothing is queued for one that does not.
func (s *Session) TakesEvents() bool {
	if s.deps.Handler != nil {
		_, ok := s.deps.Handler.(chat.EventHandler)
		return ok
	}
	return s.cfg.Handler != nil
}

// webhookHandler is the configured handler for ordinary messages (nil: none).
func (s *Session) webhookHandler() chat.Handler {
	h := s.cfg.Handler
	if h == nil {
		return nil
	}
	var secret []byte
	if h.SecretEnv != "" {
		secret = []byte(os.Getenv(h.SecretEnv))
	}
	// No timeout of its own: each attempt lasts the inbound queue's item_timeout (b2-03:
	// a fixed 30 s cut 35 s answers off and had them delivered again).
	return chat.WebhookHandler{URL: h.URL, Secret: secret, Client: &http.Client{}}
}

// Info describes the session now (a depth it cannot read is 0).
func (s *Session) Info(ctx context.Context) web.SessionInfo {
	in := web.SessionInfo{Name: s.cfg.Name, State: string(s.conn.State()), PairFailure: s.pair.failure(), QRAvailable: s.conn.QR() != ""}
	if id := s.conn.Client().Store.ID; id != nil {
		in.Paired, in.JID = true, id.ToNonAD().String()
	}
	if st, err := s.chat.In.Stats(ctx); err == nil {
		in.InboundDepth = st.Depth
	}
	if st, err := s.chat.Out.Stats(ctx); err == nil {
		in.OutboundDepth = st.Depth
	}
	if s.deps.Handler == nil && s.cfg.Handler != nil {
		in.Handler = s.cfg.Handler.URL
	}
	return in
}
