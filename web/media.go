package web

import (
	"errors"
	"mime"
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
// WhatsApp when asked for, decrypted, and answered as a download; never cached by a
// proxy (it is the customer's data).
func (s *Server) mediaRoutes(api func(string, http.HandlerFunc)) {
	api("GET /api/v1/incoming/{id}/media", func(w http.ResponseWriter, r *http.Request) {
		if s.opts.IncomingMedia == nil {
			writeError(w, http.StatusNotFound, "whatsapp_off", ErrWhatsAppOff.Error())
			return
		}
		id := r.PathValue("id")
		data, typ, err := s.opts.IncomingMedia(r.Context(), id)
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
		serveMedia(w, data, typ, id)
	})
}

// passiveTypes are the media types served with their own Content-Type: types no
// browser runs as a document or a script (WhatsApp's image, video and audio types,
// PDF, plain text). Any other type (text/html, text/javascript, image/svg+xml, XML, …)
// is served as application/octet-stream; its declared type is in X-Declared-Type.
var passiveTypes = map[string]bool{
	"image/jpeg": true, "image/png": true, "image/webp": true, "image/gif": true,
	"video/mp4": true, "video/3gpp": true,
	"audio/aac": true, "audio/amr": true, "audio/mpeg": true, "audio/mp4": true, "audio/ogg": true,
	"application/pdf": true, "text/plain": true,
}

// serveMedia answers media that someone else chose (a customer's message, an upload):
// never as active content on the dashboard's origin. It is a download
// (Content-Disposition: attachment), never sniffed (nosniff), sandboxed if a browser
// renders it anyway (CSP "sandbox; default-src 'none'": an opaque origin with no
// script, so it can neither run nor call the API), and of a passive type (passiveTypes)
// so that a <script src> or <link> on the origin refuses it under nosniff.
func serveMedia(w http.ResponseWriter, data []byte, declared, name string) {
	typ := "application/octet-stream"
	if mt, _, err := mime.ParseMediaType(declared); err == nil && passiveTypes[mt] {
		typ = mt
	}
	h := w.Header()
	if declared != "" && declared != typ {
		h.Set("X-Declared-Type", strconv.QuoteToASCII(declared))
	}
	h.Set("Content-Type", typ)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if cd == "" {
		cd = "attachment"
	}
	h.Set("Content-Disposition", cd)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}
