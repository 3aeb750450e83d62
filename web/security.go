package web

import (
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"strings"
)

// The browser protections every request gets, token or not. A page the operator happens
// to open in the browser that reaches remedy (the machine itself, or a laptop with an SSH
// tunnel) must not be able to change anything, nor read anything after pointing its own
// DNS name at 127.0.0.1 (DNS rebinding). The same rules as Go's own
// http.CrossOriginProtection (Sec-Fetch-Site, then Origin against Host), which does the
// cross-origin part, plus the Host allow-list that rebinding needs and the JSON-only
// rule that keeps every state change out of reach of an HTML form or a "simple" fetch.

// hostAllowed reports whether a request's Host names this server: an IP address (a
// rebinding page's Host is its own DNS name, never an address), localhost and
// *.localhost, the listen address's host, or a name (or ".suffix") in allowed ("*"
// allows any host and turns this protection off).
func hostAllowed(hostport, listenHost string, allowed []string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if lh := strings.ToLower(listenHost); lh != "" && host == lh {
		return true
	}
	for _, a := range allowed {
		a = strings.ToLower(a)
		if a == "*" || a == host || (strings.HasPrefix(a, ".") && (strings.HasSuffix(host, a) || host == a[1:])) {
			return true
		}
	}
	return false
}

// safeMethod is a method that changes nothing here.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// guard applies the browser protections; it answers and returns false when the request
// is refused.
func (s *Server) guard(w http.ResponseWriter, r *http.Request) bool {
	if !hostAllowed(r.Host, s.opts.ListenHost, s.opts.AllowedHosts) {
		writeError(w, http.StatusMisdirectedRequest, "unknown_host",
			"this server does not answer for host "+strings.ToValidUTF8(r.Host, "?")+"; add it to allowed_hosts in remedy.yaml if it is yours (a reverse proxy's name)")
		return false
	}
	if safeMethod(r.Method) {
		return true
	}
	if err := s.cop.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "cross_origin",
			"cross-origin requests that change state are refused (Sec-Fetch-Site / Origin do not match this server)")
		return false
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" && r.ContentLength == 0 {
		return true // no body at all (POST /reload from curl)
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err == nil && mt == "application/json":
		return true
	case rawUpload(r):
		return true // POST /api/v1/media: the file's own type (messages.go)
	case (ct == "" || err == nil && mt == "application/x-www-form-urlencoded") && !fromBrowser(r):
		// `curl -d '{…}'` without -H (the README's example said so until this rule came),
		// or no type at all. The body is still read as JSON; only a program that is no
		// browser gets here.
		return true
	}
	writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
		"requests that change state take a JSON body: send Content-Type: application/json")
	return false
}

// fromBrowser reports whether a request carries what every current browser adds to a
// POST (Origin; Fetch Metadata) or a navigation (Referer). A browser page can send a
// CORS-safelisted content type without a preflight, so only a request with none of
// these may use one.
func fromBrowser(r *http.Request) bool {
	for _, h := range []string{"Origin", "Referer", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest"} {
		if r.Header.Get(h) != "" {
			return true
		}
	}
	return false
}

// access is what a request's credentials allow.
type access int

const (
	denied access = iota
	readOnly
	readWrite
)

// access checks the token: Authorization: Bearer TOKEN, or ?token= on the WebSocket
// upgrade only (a browser cannot give a WebSocket a header; anywhere else a token in
// the URL ends up in logs and the history). The operator token may do everything, the
// read token only GET and HEAD. Both compares are constant-time, and both are made, so
// the time taken does not say which token was close.
func (s *Server) access(r *http.Request, websocket bool) access {
	if s.opts.Token == "" && s.opts.ReadToken == "" {
		return readWrite
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok && websocket {
		got = r.URL.Query().Get("token")
	}
	if got == "" {
		return denied
	}
	rw := s.opts.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) == 1
	ro := s.opts.ReadToken != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.ReadToken)) == 1
	switch {
	case rw:
		return readWrite
	case ro:
		return readOnly
	}
	return denied
}

// authorize answers 401 without a valid token and 403 for a read token on a state
// change; it returns whether the handler may run.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, websocket bool) bool {
	switch s.access(r, websocket) {
	case readWrite:
		return true
	case readOnly:
		if safeMethod(r.Method) {
			return true
		}
		writeError(w, http.StatusForbidden, "read_only", "this token may only read; changes need the operator token")
		return false
	}
	msg := "a valid token is required (Authorization: Bearer TOKEN)"
	if !websocket && r.URL.Query().Has("token") {
		msg += "; ?token= is accepted only on the WebSocket stream"
	}
	writeError(w, http.StatusUnauthorized, "unauthorized", msg)
	return false
}
