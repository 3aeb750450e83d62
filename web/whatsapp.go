package web

import (
	"encoding/base64"
	"errors"
	"net/http"

	"rsc.io/qr"
)

// ErrWhatsAppOff is what Options.Pair returns when WhatsApp is not enabled.
var ErrWhatsAppOff = errors.New("WhatsApp is not enabled in the configuration")

// pairRoutes serve pairing from the dashboard. The QR code goes out as a data: URL
// in JSON because an <img> cannot carry the bearer token.
func (s *Server) pairRoutes(api func(string, http.HandlerFunc)) {
	api("GET /api/v1/whatsapp/qr", func(w http.ResponseWriter, r *http.Request) {
		code := ""
		if s.opts.QR != nil {
			code = s.opts.QR()
		}
		if code == "" {
			msg := "no pairing in progress; POST /api/v1/whatsapp/pair starts one"
			if s.opts.PairFailure != nil {
				if f := s.opts.PairFailure(); f != "" {
					msg = "The last pairing attempt failed. " + f
				}
			}
			writeError(w, http.StatusNotFound, "not_pairing", msg)
			return
		}
		c, err := qr.Encode(code, qr.L)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, 200, map[string]string{"png": "data:image/png;base64," + base64.StdEncoding.EncodeToString(c.PNG())})
	})
	api("POST /api/v1/whatsapp/pair", func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Pair == nil {
			writeError(w, http.StatusNotFound, "whatsapp_off", ErrWhatsAppOff.Error())
			return
		}
		if err := s.opts.Pair(); err != nil {
			status := http.StatusConflict
			if errors.Is(err, ErrWhatsAppOff) {
				status = http.StatusNotFound
			}
			writeError(w, status, "cannot_pair", err.Error())
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "pairing: scan the QR code from GET /api/v1/whatsapp/qr"})
	})
}
