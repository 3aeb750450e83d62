package web

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"rsc.io/qr"
)

// DefaultSession is the session of the single `whatsapp:` block (issue 22): the old
// /api/v1/whatsapp/* routes and a daemon without Options.Sessions act on it.
const DefaultSession = "default"

// sessionRE is a session's name (the configuration's rule).
var sessionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Sessions are the WhatsApp numbers remedy runs, one session each (Options.Sessions).
// A name no session has is an error wrapping ErrNotFound.
type Sessions interface {
	// List gives every session, in the configuration's order.
	List(ctx context.Context) []SessionInfo
	// QR is the session's current pairing QR code ("" when it is not pairing).
	QR(name string) (string, error)
	// Pair starts a pairing attempt in the background; an error says why it cannot
	// (already paired, already pairing).
	Pair(name string) error
	// PairFailure says why the session's last pairing attempt failed ("" if it did not).
	PairFailure(name string) string
}

// SessionInfo is one session as GET /api/v1/sessions shows it: its WhatsApp state
// (connected, connecting, disconnected, unpaired, pairing, logged_out, …), whether a
// device is linked and its JID, why its last pairing failed, whether a QR code is
// waiting to be scanned, its queues' depths (items) and its handler's URL. Handler is
// never a secret: the server drops any userinfo, query and fragment the backend gives.
type SessionInfo struct {
	Name          string `json:"name"`
	State         string `json:"state"`
	Paired        bool   `json:"paired"`
	JID           string `json:"jid"`
	PairFailure   string `json:"pair_failure"`
	QRAvailable   bool   `json:"qr_available"`
	InboundDepth  int    `json:"inbound_depth"`
	OutboundDepth int    `json:"outbound_depth"`
	Handler       string `json:"handler"`
}

// publicURL is u without what may hold a secret (user:password@, ?key=, #…); "" when
// u does not parse.
func publicURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || u == "" {
		return ""
	}
	p.User, p.RawQuery, p.ForceQuery, p.Fragment, p.RawFragment = nil, "", false, "", ""
	return p.String()
}

// sessions is Options.Sessions, or the single session "default" built from the older
// hooks (Options.QR, Pair, PairFailure) for a daemon that gives no Sessions.
func (s *Server) sessions() Sessions {
	if s.opts.Sessions != nil {
		return s.opts.Sessions
	}
	return legacySessions{s}
}

// legacySessions is the session "default" of Options.QR/Pair/PairFailure; none while
// WhatsApp is off (Pair nil).
type legacySessions struct{ s *Server }

func (l legacySessions) List(ctx context.Context) []SessionInfo {
	o := l.s.opts
	if o.Pair == nil {
		return nil
	}
	ov := o.Backend.Overview(ctx)
	code, _ := l.QR(DefaultSession)
	return []SessionInfo{{Name: DefaultSession, State: ov.WhatsApp, Paired: paired(ov.WhatsApp),
		PairFailure: l.PairFailure(DefaultSession), QRAvailable: code != "",
		InboundDepth: int(ov.Sample["queue_inbound_depth"]), OutboundDepth: int(ov.Sample["queue_outbound_depth"])}}
}

func (l legacySessions) QR(name string) (string, error) {
	if err := l.known(name); err != nil {
		return "", err
	}
	if l.s.opts.QR == nil {
		return "", nil
	}
	return l.s.opts.QR(), nil
}

func (l legacySessions) Pair(name string) error {
	if err := l.known(name); err != nil {
		return err
	}
	return l.s.opts.Pair()
}

func (l legacySessions) PairFailure(name string) string {
	if l.known(name) != nil || l.s.opts.PairFailure == nil {
		return ""
	}
	return l.s.opts.PairFailure()
}

func (l legacySessions) known(name string) error {
	if l.s.opts.Pair == nil {
		return ErrWhatsAppOff
	}
	if name != DefaultSession {
		return fmt.Errorf("no session named %q: %w", name, ErrNotFound)
	}
	return nil
}

// paired says whether a state is one of a linked device (the rest need a pairing).
func paired(state string) bool {
	switch state {
	case "unpaired", "pairing", "logged_out", "off", "":
		return false
	}
	return true
}

// sessionRoutes serve the sessions: the list (readable with the read token), and each
// session's pairing, as the older whatsapp/* routes do for the one session.
func (s *Server) sessionRoutes(api func(string, http.HandlerFunc)) {
	api("GET /api/v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		list := s.sessions().List(r.Context())
		for i := range list {
			list[i].Handler = publicURL(list[i].Handler)
		}
		writeJSON(w, http.StatusOK, nonNil(list))
	})
	api("GET /api/v1/sessions/{name}/qr", func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.sessionName(w, r)
		if ok {
			s.serveQR(w, r, name, "/api/v1/sessions/"+name+"/pair")
		}
	})
	api("POST /api/v1/sessions/{name}/pair", func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.sessionName(w, r)
		if ok {
			s.startPair(w, r, name, "/api/v1/sessions/"+name+"/qr")
		}
	})
}

// sessionName is the path's {name}; a name no session could have is answered 404 here
// (it is never echoed back unquoted).
func (s *Server) sessionName(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if !sessionRE.MatchString(name) {
		s.fail(w, r, fmt.Errorf("no session named %q: %w", name, ErrNotFound))
		return "", false
	}
	return name, true
}

// oldRouteSession is the session the older /api/v1/whatsapp/* routes act on: the one
// ?session= names, else the only session ("default" without Options.Sessions), else
// (several) none: 409 session_required.
func (s *Server) oldRouteSession(w http.ResponseWriter, r *http.Request) (string, bool) {
	if q := r.URL.Query().Get("session"); q != "" {
		if !sessionRE.MatchString(q) {
			s.fail(w, r, fmt.Errorf("no session named %q: %w", q, ErrNotFound))
			return "", false
		}
		return q, true
	}
	if s.opts.Sessions == nil {
		return DefaultSession, true
	}
	list := s.sessions().List(r.Context())
	switch len(list) {
	case 0:
		s.fail(w, r, ErrWhatsAppOff)
		return "", false
	case 1:
		return list[0].Name, true
	}
	s.fail(w, r, sessionRequired(list))
	return "", false
}

// sessionRequired is ErrSessionRequired naming the sessions.
func sessionRequired(list []SessionInfo) error {
	names := make([]string, len(list))
	for i, si := range list {
		names[i] = si.Name
	}
	slices.Sort(names)
	return fmt.Errorf("%w: remedy runs %d WhatsApp sessions (%s); name one (?session=, or /api/v1/sessions/{name}/…)",
		ErrSessionRequired, len(list), strings.Join(names, ", "))
}

// serveQR answers a session's QR code as a PNG data: URL, or 404 not_pairing saying why
// the last attempt failed. pairPath is the route that starts a pairing.
func (s *Server) serveQR(w http.ResponseWriter, r *http.Request, name, pairPath string) {
	sess := s.sessions()
	code, err := sess.QR(name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if code == "" {
		msg := "no pairing in progress; POST " + pairPath + " starts one"
		if f := sess.PairFailure(name); f != "" {
			msg = "The last pairing attempt failed. " + f
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
	writeJSON(w, http.StatusOK, map[string]string{"png": "data:image/png;base64," + base64.StdEncoding.EncodeToString(c.PNG())})
}

// startPair starts a session's pairing: 202, 404 for no such session (or WhatsApp
// off), 409 cannot_pair with the reason. qrPath is where its QR code is read.
func (s *Server) startPair(w http.ResponseWriter, r *http.Request, name, qrPath string) {
	if err := s.sessions().Pair(name); err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrWhatsAppOff) {
			s.fail(w, r, err)
			return
		}
		writeError(w, http.StatusConflict, "cannot_pair", err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "pairing: scan the QR code from GET " + qrPath})
}
