package web

import (
	"errors"
	"net/http"
	"strconv"
)

// Errors of Options.IncomingMedia.
var (
	// ErrUnavailable: WhatsApp cannot be reached now; try again (503, Retry-After).
	ErrUnavailable = errors.New("whatsapp is not connected; try again")
	// ErrGone: WhatsApp no longer has the file (410).
	ErrGone = errors.New("the media has expired on WhatsApp's servers")
)

// mediaRoutes serve incoming messages' media (webhook.Media.URL): fetched from
// WhatsApp when asked for, decrypted, and answered with its type; never cached by a
// proxy (it is the customer's data).
func (s *Server) mediaRoutes(api func(string, http.HandlerFunc)) {
	api("GET /api/v1/incoming/{id}/media", func(w http.ResponseWriter, r *http.Request) {
		if s.opts.IncomingMedia == nil {
			writeError(w, http.StatusNotFound, "whatsapp_off", ErrWhatsAppOff.Error())
			return
		}
		data, mime, err := s.opts.IncomingMedia(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, ErrUnavailable):
			w.Header().Set("Retry-After", "30")
			writeError(w, http.StatusServiceUnavailable, "whatsapp_unavailable", err.Error())
			return
		case errors.Is(err, ErrGone):
			writeError(w, http.StatusGone, "media_expired", err.Error())
			return
		case err != nil:
			s.fail(w, r, err)
			return
		}
		if mime == "" {
			mime = "application/octet-stream"
		}
		w.Header().Set("Content-Type", mime)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("Cache-Control", "private, no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data)
	})
}
