package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The send API: POST /api/v1/messages queues a message (202 once it is on disk), GET
// /api/v1/messages/{id} says where it is, POST /api/v1/media stores an upload for later
// messages. Failed sends are dead letters of the queue "outbound"
// (GET /api/v1/deadletters?queue=outbound, `remedy deadletter replay`).

// Messages is the send API's backend (Options.Messages; nil while WhatsApp is off).
// Errors: ErrInvalid (422), an *Error for media over its limit (413) or of a type
// WhatsApp does not take (415), ErrNotFound, ErrOverloaded (the outbound queue is at
// capacity), ErrNotStored, ErrSessionRequired (409), ErrUnknownSession (422).
type Messages interface {
	Send(ctx context.Context, m OutgoingMessage) (MessageAccepted, error)
	MessageStatus(ctx context.Context, id string) (MessageStatus, error)
	SaveMedia(ctx context.Context, m MediaIn) (MediaUpload, error)
}

// OutgoingMessage is the body of POST /api/v1/messages.
type OutgoingMessage struct {
	// To: a phone number in international format, a user JID or a group JID.
	To   string `json:"to"`
	Text string `json:"text,omitempty"` // the message, or the media's caption
	// ReplyTo quotes a message by id; ReplyToSender is its author (needed in groups).
	ReplyTo       string      `json:"reply_to,omitempty"`
	ReplyToSender string      `json:"reply_to_sender,omitempty"`
	Mentions      []string    `json:"mentions,omitempty"`
	Reaction      *ReactionIn `json:"reaction,omitempty"`
	Media         *MediaIn    `json:"media,omitempty"`
	// IdempotencyKey (or the Idempotency-Key header): the same message again queues
	// nothing and answers the first message's id; a different message with the key is
	// refused (422, code idempotency_key_reused).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Session (or the X-Remedy-Session header) is the number that sends it (config
	// `sessions:`): required with several sessions (409 session_required), one that does
	// not run is refused (422 unknown_session); with one session it may be left out.
	Session string `json:"session,omitempty"`
}

// ReactionIn reacts to a message ("" removes the reaction); Sender is the author of
// the message reacted to ("me" for the bot's own; needed in groups).
type ReactionIn struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
	Sender    string `json:"sender,omitempty"`
}

// MediaIn is an attachment: Data (base64 in JSON) or the ID of an upload. Kind is
// image, video, audio, document or sticker (default: from the type); MIME is sniffed
// when empty.
type MediaIn struct {
	// Session (or the X-Remedy-Session header, or ?session= for a raw upload) is the
	// session whose messages will use the upload, as OutgoingMessage.Session.
	Session  string `json:"session,omitempty"`
	ID       string `json:"id,omitempty"`
	Data     []byte `json:"data,omitempty"`
	Kind     string `json:"kind,omitempty"`
	MIME     string `json:"mime,omitempty"`
	FileName string `json:"file_name,omitempty"`
}

// MessageAccepted answers a queued message. Duplicate: the idempotency key was used
// before, and ID is that message's.
type MessageAccepted struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// MessageStatus is where a message is: queued, sent, delivered, read or failed (with
// the reason; while queued, Reason is the last try's error).
type MessageStatus struct {
	ID             string    `json:"id"`
	Chat           string    `json:"chat"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason,omitempty"`
	Attempts       int       `json:"attempts"`
	Created        time.Time `json:"created"`
	Updated        time.Time `json:"updated"`
	SentAt         time.Time `json:"sent_at,omitzero"`
	Replayed       bool      `json:"replayed,omitempty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	// Session is the session that sends it ("" from a backend that does not say).
	Session string `json:"session,omitempty"`
}

// MediaUpload is a stored upload: give its ID as media.id.
type MediaUpload struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	MIME     string `json:"mime"`
	Size     int64  `json:"size"`
	FileName string `json:"file_name,omitempty"`
}

// DefaultMaxMedia is Options.MaxMedia's default: 16 MiB, WhatsApp's limit for video
// and audio.
const DefaultMaxMedia = 16 << 20

// bodyLimit is the request body limit for a route: uploads may be as large as the
// media limit (base64 in JSON a third larger), everything else Options.MaxBody.
func (s *Server) bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPost {
		switch r.URL.Path {
		case "/api/v1/media":
			return s.opts.MaxMedia + 1
		case "/api/v1/messages":
			return max(s.opts.MaxBody, s.opts.MaxMedia/3*4+64<<10)
		}
	}
	return s.opts.MaxBody
}

// rawUpload reports whether a request is a raw upload whose Content-Type is the
// media's: POST /api/v1/media with a type a page cannot send cross-origin without a
// preflight (which remedy never answers). The CORS-safelisted types (text/plain,
// forms) are taken only from programs that are no browser, as for JSON.
func rawUpload(r *http.Request) bool {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/media" {
		return false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return false
	}
	switch mt {
	case "text/plain", "application/x-www-form-urlencoded", "multipart/form-data":
		return !fromBrowser(r)
	}
	return true
}

func (s *Server) messageRoutes(api func(string, http.HandlerFunc)) {
	api("POST /api/v1/messages", s.limitIngest(s.sendMessage))
	api("GET /api/v1/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Messages == nil {
			s.fail(w, r, ErrWhatsAppOff)
			return
		}
		st, err := s.opts.Messages.MessageStatus(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	api("POST /api/v1/media", s.limitIngest(s.uploadMedia))
}

func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request) {
	if s.opts.Messages == nil {
		s.fail(w, r, ErrWhatsAppOff)
		return
	}
	var m OutgoingMessage
	if !s.decodeMedia(w, r, &m) {
		return
	}
	if h := r.Header.Get("Idempotency-Key"); h != "" {
		if m.IdempotencyKey != "" && m.IdempotencyKey != h {
			writeError(w, http.StatusUnprocessableEntity, "invalid", "the Idempotency-Key header and idempotency_key differ")
			return
		}
		m.IdempotencyKey = h
	}
	if !sessionFrom(w, r, &m.Session) {
		return
	}
	if m.Media != nil && len(m.Media.Data) > 0 && int64(len(m.Media.Data)) > s.opts.MaxMedia {
		tooLarge(w, int64(len(m.Media.Data)), s.opts.MaxMedia)
		return
	}
	acc, err := s.opts.Messages.Send(r.Context(), m)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	if acc.Duplicate {
		w.Header().Set("Idempotent-Replayed", "true") // as Stripe marks a repeated key
	}
	w.Header().Set("Location", "/api/v1/messages/"+acc.ID)
	writeJSON(w, http.StatusAccepted, acc)
}

// SessionHeader names the session of a send API request, as its body's "session".
const SessionHeader = "X-Remedy-Session"

// sessionFrom fills the body's session from the X-Remedy-Session header; false (422
// answered) when both are given and differ, or the header is given twice.
func sessionFrom(w http.ResponseWriter, r *http.Request, session *string) bool {
	if len(r.Header.Values(SessionHeader)) > 1 {
		// Which one would be a guess (a proxy adding its own, a client's bug).
		writeError(w, http.StatusUnprocessableEntity, "invalid", "the X-Remedy-Session header is given more than once")
		return false
	}
	h := r.Header.Get(SessionHeader)
	if h == "" {
		return true
	}
	if *session != "" && *session != h {
		writeError(w, http.StatusUnprocessableEntity, "invalid", "the X-Remedy-Session header and session differ")
		return false
	}
	*session = h
	return true
}

// decodeMedia is decode with the media limit's 413 (which names the limit).
func (s *Server) decodeMedia(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		tooLarge(w, tooBig.Limit, s.opts.MaxMedia)
		return false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "the body could not be read: "+err.Error())
		return false
	}
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	return decode(w, r, v)
}

func tooLarge(w http.ResponseWriter, size, limit int64) {
	writeError(w, http.StatusRequestEntityTooLarge, "too_large",
		fmt.Sprintf("the media is larger than the limit of %d bytes (%d MiB)", limit, limit>>20))
}

// refuse answers a refused send; a full queue or store is answered with Retry-After
// (nothing was queued).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrOverloaded) || errors.Is(err, ErrNotStored) {
		w.Header().Set("Retry-After", strconv.Itoa(ingestRetryAfter))
	}
	s.fail(w, r, err)
}

func (s *Server) uploadMedia(w http.ResponseWriter, r *http.Request) {
	if s.opts.Messages == nil {
		s.fail(w, r, ErrWhatsAppOff)
		return
	}
	var m MediaIn
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		if !s.decodeMedia(w, r, &m) {
			return
		}
	} else {
		b, err := io.ReadAll(r.Body)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			tooLarge(w, tooBig.Limit, s.opts.MaxMedia)
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_body", "the body could not be read: "+err.Error())
			return
		}
		q := r.URL.Query()
		m = MediaIn{Data: b, MIME: r.Header.Get("Content-Type"), Kind: q.Get("kind"), FileName: q.Get("file_name"), Session: q.Get("session")}
	}
	if !sessionFrom(w, r, &m.Session) {
		return
	}
	if m.ID != "" || len(m.Data) == 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid", "post the file: its bytes with its Content-Type, or JSON {\"data\": base64, \"mime\": …}")
		return
	}
	if int64(len(m.Data)) > s.opts.MaxMedia {
		tooLarge(w, int64(len(m.Data)), s.opts.MaxMedia)
		return
	}
	up, err := s.opts.Messages.SaveMedia(r.Context(), m)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, up)
}
