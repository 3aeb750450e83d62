// Package web serves remedy's HTTP API, the live WebSocket stream and the embedded
// dashboard. It holds no state of the engine's: everything comes from a Backend.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

//go:embed static
var staticFS embed.FS

// Overview is the dashboard's summary.
type Overview struct {
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Now      time.Time `json:"now"`
	WhatsApp string    `json:"whatsapp"` // connected, disconnected, unpaired, off
	// WhatsAppNote says why WhatsApp is unpaired when remedy knows more than the state:
	// its session store was unreadable and moved aside at start (a sentence, or "").
	WhatsAppNote string             `json:"whatsapp_note,omitempty"`
	Database     string             `json:"database"` // ok, or the problem
	Sample       map[string]float64 `json:"sample"`
	Firing       int                `json:"firing"`
	Policies     int                `json:"policies"`
	Reload       ReloadStatus       `json:"reload"`
	Services     []ServiceStatus    `json:"services"`
	Outbox       int                `json:"outbox"`
	Clients      int                `json:"dashboard_clients"`
	DryRun       bool               `json:"dry_run"`
	InputsQueue  int                `json:"inputs_queued"`
	// StoreBacklog counts the rows remedy's writers hold that are not on disk yet
	// (journal, audit, samples, alerts); above 0 after a failed write.
	StoreBacklog int `json:"store_backlog"`
	// Disk is "ok", or the problem: "full: …", "reserve missing: …".
	Disk string `json:"disk"`
	// ReportSchedule is the daily report's cron schedule, ReportNext when it next runs
	// (in Timezone, the configured zone).
	ReportSchedule string     `json:"report_schedule"`
	ReportNext     *time.Time `json:"report_next,omitempty"`
	Timezone       string     `json:"timezone"`
	// Integrity is the last full integrity check of remedy.db (run on the health loop's
	// schedule, never by this request); Retention what the hourly pruning keeps and did.
	Integrity Integrity `json:"integrity"`
	Retention Retention `json:"retention"`
}

// Integrity is the last full integrity check (PRAGMA quick_check) of remedy.db: its
// result ("ok", the corruption found, "integrity check unfinished: …", "" before the
// first), when it ended and how old that is (seconds), how long it read (ms), and
// whether one is running now.
type Integrity struct {
	Result     string    `json:"result"`
	Checked    time.Time `json:"checked"`
	AgeSeconds float64   `json:"age_seconds"`
	TookMS     int64     `json:"took_ms"`
	Running    bool      `json:"running"`
}

// Retention is remedy.db's retention as of its last pruning pass (hourly): per table,
// the configured time (seconds), rows deleted since remedy started and the oldest
// row's age (seconds; 0 for an empty table); the file's free bytes (pages pruning freed,
// not yet given back to the disk), and the pass's error ("" if it completed).
type Retention struct {
	Tables    []RetentionTable `json:"tables"`
	LastRun   time.Time        `json:"last_run"`
	Error     string           `json:"error,omitempty"`
	FreeBytes int64            `json:"free_bytes"`
}

// RetentionTable is one table under retention.
type RetentionTable struct {
	Table            string  `json:"table"`
	KeepSeconds      float64 `json:"keep_seconds"`
	Pruned           int64   `json:"pruned"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

// ServiceStatus is one supervised service as the dashboard shows it (the JSON keys are
// the field names): whether it runs, since when, its restarts, how it last exited and
// the tail of its output.
type ServiceStatus struct {
	Name     string    `json:"name"`
	Up       bool      `json:"up"`
	Since    time.Time `json:"since"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"last_exit,omitempty"`
	Output   []string  `json:"output"`
}

// ReloadStatus is the result of the last policy load.
type ReloadStatus struct {
	OK      bool      `json:"ok"`
	Time    time.Time `json:"time"`
	Errors  []string  `json:"errors,omitempty"`
	Added   []string  `json:"added,omitempty"`
	Changed []string  `json:"changed,omitempty"`
	Removed []string  `json:"removed,omitempty"`
	Files   []string  `json:"files,omitempty"`
}

// Options configure the server.
type Options struct {
	Backend Backend
	Hub     *Hub
	// Token is the operator's token: when set, every API call needs it (or ReadToken).
	Token string
	// ReadToken lets dashboard viewers read: GET and HEAD and the stream, nothing else.
	ReadToken string
	// ListenHost is the host of the listen address; requests for it, for localhost and
	// for IP addresses are served, and for AllowedHosts (a reverse proxy's name; ".x"
	// also allows its subdomains, "*" any host). Any other Host is refused (DNS
	// rebinding).
	ListenHost   string
	AllowedHosts []string
	// AllowCodes are codes of remedy's own adapters that programs may post anyway (a
	// separate bot reporting its own connection); they keep the poster's source.
	AllowCodes []string
	// AllowMetrics are metrics of remedy's own sampler (policies.OwnMetric) that programs
	// may post anyway; any other of them is refused from POST /samples.
	AllowMetrics []string
	Metrics      http.Handler
	Live         http.HandlerFunc
	Ready        http.HandlerFunc
	Logger       *slog.Logger
	// Sessions are the WhatsApp numbers (GET /api/v1/sessions and their pairing; the
	// whatsapp/* routes act on the only one). Nil: the one session "default" of QR,
	// Pair and PairFailure, or none while those are nil.
	Sessions Sessions
	// QR is the current WhatsApp pairing QR code ("" when not pairing); Pair starts a
	// pairing attempt in the background. Both nil when WhatsApp is off. Unused when
	// Sessions is set.
	QR          func() string
	Pair        func() error
	PairFailure func() string // why the last pairing attempt failed ("" if it did not)
	// IncomingMedia downloads an incoming message's media from WhatsApp now (nil when
	// WhatsApp is off): ErrNotFound for an id without media, ErrUnavailable while
	// WhatsApp cannot be reached, ErrGone for media WhatsApp no longer has.
	IncomingMedia func(ctx context.Context, id string) (data []byte, mime string, err error)
	// Drill injects a fire drill's fault (nil: no drills).
	Drill func(ctx context.Context, req DrillRequest) (DrillStarted, error)
	// MaxBody limits request bodies (default 1 MiB).
	MaxBody int64
	// Messages is the send API (nil: WhatsApp is off, its routes answer 404).
	Messages Messages
	// MaxMedia limits an upload to the send API (default DefaultMaxMedia).
	MaxMedia int64
}

// Server is the HTTP handler.
type Server struct {
	opts        Options
	ingestSlots chan struct{} // limitIngest's
	reading     atomic.Int64  // ingest bodies being read (readBody)
	buffered    atomic.Int64  // bytes they hold, against maxIngestBuffered
	mux         *http.ServeMux
	upgrader    websocket.Upgrader
	cop         *http.CrossOriginProtection
}

// NewServer builds the routes.
func NewServer(opts Options) *Server {
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.MaxMedia <= 0 {
		opts.MaxMedia = DefaultMaxMedia
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), ingestSlots: make(chan struct{}, maxIngestInFlight), cop: http.NewCrossOriginProtection()}
	// gorilla's default origin check: the Origin must be this host (same-origin).
	s.upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 4096, Error: upgradeError}
	static, _ := fs.Sub(staticFS, "static")
	s.mux.Handle("GET /", jsonNotFound(http.FileServerFS(static)))
	if opts.Live != nil {
		s.mux.HandleFunc("GET /healthz", opts.Live)
	}
	if opts.Ready != nil {
		s.mux.HandleFunc("GET /readyz", opts.Ready)
	}
	if opts.Metrics != nil {
		s.mux.Handle("GET /metrics", opts.Metrics)
	}
	s.routes()
	return s
}

// ServeHTTP adds the guards every request gets: panic recovery ("internal error",
// details only in the log), body limit, security headers, the browser protections
// (guard), and the JSON error for the router's own 404 and 405.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			s.opts.Logger.Error("http handler panic", "path", r.URL.Path, "panic", p)
			writeError(w, http.StatusInternalServerError, "internal", "internal error")
		}
	}()
	r.Body = http.MaxBytesReader(w, r.Body, s.bodyLimit(r))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	if !s.guard(w, r) {
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		w = &jsonErrors{ResponseWriter: w}
	}
	s.mux.ServeHTTP(w, r)
}

// upgradeError gives the WebSocket handshake's refusals (no upgrade, a foreign Origin)
// the JSON error shape instead of gorilla's plain text.
func upgradeError(w http.ResponseWriter, _ *http.Request, status int, reason error) {
	code := "bad_handshake"
	if status == http.StatusForbidden {
		code = "cross_origin"
	}
	writeError(w, status, code, reason.Error())
}

// jsonNotFound gives the file server's errors (a path that is no file) the JSON shape.
func jsonNotFound(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(&jsonErrors{ResponseWriter: w}, r) })
}

// apiError is the body of every error: {"error": {"code": …, "message": …}}.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e apiError
	e.Error.Code, e.Error.Message = code, msg
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON body strictly (unknown fields are errors) and answers 4xx itself.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is larger than the limit")
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_json", "malformed JSON: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad_json", "one JSON value expected")
		return false
	}
	return true
}

// Bounds of the live stream's reads (as gorilla's chat example): the largest message
// a client may send (the dashboard sends none; 4 KiB leaves room for a close frame's
// reason), how long the server waits for a pong, and how often it pings (before the
// wait ends, so a live client always answers in time).
const (
	streamReadLimit = 4 << 10
	streamPongWait  = 60 * time.Second
	streamPingEvery = 30 * time.Second
)

// stream serves the live updates over a WebSocket.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered (403 for a foreign origin)
	}
	c := s.opts.Hub.subscribe()
	defer s.opts.Hub.unsubscribe(c)
	defer conn.Close()
	// The dashboard sends nothing but control frames: a larger message closes the
	// connection (1009) instead of being read into memory, and a client that answers no
	// ping within streamPongWait is dropped (a half-open connection).
	conn.SetReadLimit(streamReadLimit)
	conn.SetReadDeadline(time.Now().Add(streamPongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(streamPongWait)) })
	go func() { // reads only to notice the close
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				c.close()
				return
			}
		}
	}()
	ping := time.NewTicker(streamPingEvery)
	defer ping.Stop()
	for {
		select {
		case <-c.gone:
			return
		case b := <-c.send:
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
		case <-ping.C:
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}
