package web

import (
	"errors"
	"net/http"
	"net/url"
)

// ErrWhatsAppOff is what Options.Pair returns when WhatsApp is not enabled.
var ErrWhatsAppOff = errors.New("WhatsApp is not enabled in the configuration")

// pairRoutes serve pairing from the dashboard: the older routes of the one number,
// which act on the session ?session= names, else the only one (sessions.go). The QR
// code goes out as a data: URL in JSON because an <img> cannot carry the bearer token.
func (s *Server) pairRoutes(api func(string, http.HandlerFunc)) {
	api("GET /api/v1/whatsapp/qr", func(w http.ResponseWriter, r *http.Request) {
		if name, ok := s.oldRouteSession(w, r); ok {
			s.serveQR(w, r, name, "/api/v1/whatsapp/pair"+sessionQuery(r))
		}
	})
	api("POST /api/v1/whatsapp/pair", func(w http.ResponseWriter, r *http.Request) {
		if name, ok := s.oldRouteSession(w, r); ok {
			s.startPair(w, r, name, "/api/v1/whatsapp/qr"+sessionQuery(r))
		}
	})
}

// sessionQuery is the request's ?session= for the next route named in an answer.
func sessionQuery(r *http.Request) string {
	if q := r.URL.Query().Get("session"); q != "" {
		return "?session=" + url.QueryEscape(q)
	}
	return ""
}
