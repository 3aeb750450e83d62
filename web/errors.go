package web

import (
	"context"
	"errors"
	"net/http"
)

// Errors a Backend (or an Options hook) returns, wrapped with the details the caller
// should read; status maps them to HTTP statuses.
var (
	// ErrNotFound: the thing asked for does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request is well-formed but refused (422).
	ErrInvalid = errors.New("invalid")
	// ErrBusy: the engine did not answer in time; try again (503).
	ErrBusy = errors.New("busy")
	// ErrSessionRequired: several sessions run and the request named none (409
	// session_required); the wrapping message names them.
	ErrSessionRequired = errors.New("session required")
	// ErrUnknownSession: the request named a session that does not run (422
	// unknown_session).
	ErrUnknownSession = errors.New("unknown session")
)

// Error is an API error with its own status and code, for handlers that know exactly
// what to answer.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// status maps an error to its HTTP status, code and the message the client may see.
// Only the errors listed here say what went wrong; anything else is an internal error,
// answered as "internal error" with the details kept for the log (internal true).
func status(err error) (code int, name, msg string, internal bool) {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status, e.Code, e.Message, false
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not_found", err.Error(), false
	case errors.Is(err, ErrWhatsAppOff):
		return http.StatusNotFound, "whatsapp_off", err.Error(), false
	case errors.Is(err, ErrSessionRequired):
		return http.StatusConflict, "session_required", err.Error(), false
	case errors.Is(err, ErrUnknownSession):
		return http.StatusUnprocessableEntity, "unknown_session", err.Error(), false
	case errors.Is(err, ErrInvalid):
		return http.StatusUnprocessableEntity, "invalid", err.Error(), false
	case errors.Is(err, ErrDrillUnavailable):
		return http.StatusConflict, "drill_unavailable", err.Error(), false
	case errors.Is(err, ErrOverloaded):
		return http.StatusTooManyRequests, "overloaded", "too many inputs waiting; nothing was accepted, post them again later", false
	case errors.Is(err, ErrNotStored):
		return http.StatusServiceUnavailable, "not_stored", "the store could not commit the inputs in time; nothing was accepted, post them again later", false
	case errors.Is(err, ErrBusy), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "busy", "the engine did not answer in time; try again", false
	default:
		return http.StatusInternalServerError, "internal", "internal error", true
	}
}

// fail answers err as the JSON error ({"error": {"code", "message"}}) with the status
// that status gives it, and logs internal errors with the request they broke.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, name, msg, internal := status(err)
	if internal {
		s.opts.Logger.Error("http request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeError(w, code, name, msg)
}

// jsonErrors turns the plain-text answers of http.ServeMux (404 for no route, 405 with
// its Allow header for a wrong method) and of the file server into the JSON error.
type jsonErrors struct {
	http.ResponseWriter
	replaced bool
}

func (j *jsonErrors) WriteHeader(code int) {
	if code >= 400 && !j.replaced {
		j.replaced = true
		msg := map[int]string{http.StatusNotFound: "no such path", http.StatusMethodNotAllowed: "method not allowed here (see the Allow header)"}[code]
		if msg == "" {
			msg = http.StatusText(code)
		}
		j.ResponseWriter.Header().Del("Content-Length")
		writeError(j.ResponseWriter, code, map[int]string{http.StatusNotFound: "not_found", http.StatusMethodNotAllowed: "method_not_allowed"}[code], msg)
		return
	}
	j.ResponseWriter.WriteHeader(code)
}

func (j *jsonErrors) Write(b []byte) (int, error) {
	if j.replaced {
		return len(b), nil // the plain-text body of the error just replaced
	}
	return j.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the WebSocket's hijack).
func (j *jsonErrors) Unwrap() http.ResponseWriter { return j.ResponseWriter }
