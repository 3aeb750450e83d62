package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeSessions are sessions in memory: pairing works only on an unpaired one, and
// puts a QR code up for it.
type fakeSessions struct {
	mu     sync.Mutex
	list   []SessionInfo
	qr     map[string]string
	failed map[string]string
	pairs  []string // the sessions Pair was called for, in order
}

var _ Sessions = (*fakeSessions)(nil)

// threeSessions: "default" connected, "sales" unpaired (its last attempt failed),
// "support" disconnected; the handler URLs carry secrets the API must not show.
func threeSessions() *fakeSessions {
	return &fakeSessions{
		list: []SessionInfo{
			{Name: "default", State: "connected", Paired: true, JID: "6281100000001@s.whatsapp.net", InboundDepth: 2, OutboundDepth: 1,
				Handler: "https://bot:hunter2@bot.example/hook?key=s3cret#frag"},
			{Name: "sales", State: "unpaired", PairFailure: "WhatsApp could not be reached from this machine.", Handler: "http://127.0.0.1:3000/sales"},
			{Name: "support", State: "disconnected", Paired: true, JID: "6281100000003@s.whatsapp.net", OutboundDepth: 7},
		},
		qr:     map[string]string{},
		failed: map[string]string{"sales": "WhatsApp could not be reached from this machine."},
	}
}

func (f *fakeSessions) find(name string) (*SessionInfo, error) {
	for i := range f.list {
		if f.list[i].Name == name {
			return &f.list[i], nil
		}
	}
	return nil, fmt.Errorf("no session named %q: %w", name, ErrNotFound)
}

func (f *fakeSessions) List(ctx context.Context) []SessionInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

func (f *fakeSessions) QR(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.find(name); err != nil {
		return "", err
	}
	return f.qr[name], nil
}

func (f *fakeSessions) Pair(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.find(name)
	if err != nil {
		return err
	}
	f.pairs = append(f.pairs, name)
	if s.State != "unpaired" {
		return fmt.Errorf("WhatsApp is %s; only an unpaired (or logged out) device can pair", s.State)
	}
	s.State, s.QRAvailable, s.PairFailure = "pairing", true, ""
	f.qr[name] = "2@" + name + "-code"
	delete(f.failed, name)
	return nil
}

func (f *fakeSessions) PairFailure(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed[name]
}

func (f *fakeSessions) pairCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pairs)
}

// errorCode is the code of an API error body ("" for another body).
func errorCode(body string) string {
	var e apiError
	json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

// The sessions routes: the list (handler URLs without their secrets), each session's
// pairing and QR code, 404 for a session that does not run or could not be named, and
// the read token lists but never pairs.
func TestSessionRoutes(t *testing.T) {
	fs := threeSessions()
	_, srv := serve(t, Options{Sessions: fs, Token: "op", ReadToken: "viewer"})
	op, viewer := []string{"Authorization", "Bearer op"}, []string{"Authorization", "Bearer viewer"}

	code, _, body := call(t, srv, "GET", "/api/v1/sessions", "", viewer...)
	var list []SessionInfo
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list) != 3 {
		t.Fatalf("list: %d %s", code, body)
	}
	if list[0].Handler != "https://bot.example/hook" || strings.Contains(body, "hunter2") || strings.Contains(body, "s3cret") {
		t.Fatalf("a handler's secret is shown: %s", body)
	}
	for _, key := range []string{"name", "state", "paired", "jid", "pair_failure", "qr_available", "inbound_depth", "outbound_depth", "handler"} {
		if !strings.Contains(body, `"`+key+`"`) {
			t.Errorf("the list has no %q: %s", key, body)
		}
	}

	for _, c := range []struct {
		method, path string
		hdr          []string
		code         int
		want         string // error code, or a part of the body
	}{
		{"GET", "/api/v1/sessions", nil, 401, "unauthorized"},
		{"POST", "/api/v1/sessions/sales/pair", viewer, 403, "read_only"},
		{"POST", "/api/v1/sessions/sales/pair", nil, 401, "unauthorized"},
		{"POST", "/api/v1/sessions/sales/pair", append([]string{"Sec-Fetch-Site", "cross-site"}, op...), 403, "cross_origin"},
		{"GET", "/api/v1/sessions/sales/qr", viewer, 404, "not_pairing"}, // before the pairing: says why the last failed
		{"POST", "/api/v1/sessions/nope/pair", op, 404, "not_found"},
		{"GET", "/api/v1/sessions/nope/qr", op, 404, "not_found"},
		{"POST", "/api/v1/sessions/..%2Fdefault/pair", op, 404, "not_found"},
		{"GET", "/api/v1/sessions/Sales/qr", op, 404, "not_found"},
		{"POST", "/api/v1/sessions/default/pair", op, 409, "cannot_pair"}, // paired already
		{"POST", "/api/v1/sessions/sales/pair", op, 202, "/api/v1/sessions/sales/qr"},
		{"GET", "/api/v1/sessions/sales/qr", viewer, 200, "data:image/png;base64,"},
		{"GET", "/api/v1/sessions/support/qr", op, 404, "not_pairing"},
		{"DELETE", "/api/v1/sessions/sales/pair", op, 405, "method_not_allowed"},
	} {
		code, _, body := call(t, srv, c.method, c.path, "", c.hdr...)
		if code != c.code || (errorCode(body) != c.want && !strings.Contains(body, c.want)) {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, code, body, c.code, c.want)
		}
	}
	if _, _, body := call(t, srv, "GET", "/api/v1/sessions/support/qr", "", op...); !strings.Contains(body, "POST /api/v1/sessions/support/pair") {
		t.Errorf("not pairing, no failure: %s", body)
	}
	// Only the operator's two requests that passed auth reached the backend.
	if got := fs.pairCalls(); !slices.Equal(got, []string{"default", "sales"}) {
		t.Fatalf("Pair called for %v", got)
	}
}

// The pairing message before an attempt says why the last failed, in words.
func TestSessionQRSaysWhyThePairingFailed(t *testing.T) {
	_, srv := serve(t, Options{Sessions: threeSessions()})
	code, _, body := call(t, srv, "GET", "/api/v1/sessions/sales/qr", "")
	if code != 404 || !strings.Contains(body, "The last pairing attempt failed. WhatsApp could not be reached") {
		t.Fatalf("%d %s", code, body)
	}
}

// The older whatsapp/* routes act on the only session; with several they need
// ?session= (409 session_required naming them otherwise).
func TestOldPairRoutesWithSessions(t *testing.T) {
	fs := threeSessions()
	_, srv := serve(t, Options{Sessions: fs})
	for _, p := range []string{"GET /api/v1/whatsapp/qr", "POST /api/v1/whatsapp/pair"} {
		method, path, _ := strings.Cut(p, " ")
		code, _, body := call(t, srv, method, path, "")
		if code != 409 || errorCode(body) != "session_required" || !strings.Contains(body, "default, sales, support") {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	if code, _, body := call(t, srv, "POST", "/api/v1/whatsapp/pair?session=sales", ""); code != 202 || !strings.Contains(body, "whatsapp/qr?session=sales") {
		t.Fatalf("pair ?session=sales: %d %s", code, body)
	}
	if code, _, body := call(t, srv, "GET", "/api/v1/whatsapp/qr?session=sales", ""); code != 200 || !strings.Contains(body, "data:image/png") {
		t.Fatalf("qr ?session=sales: %d %s", code, body)
	}
	if code, _, body := call(t, srv, "GET", "/api/v1/whatsapp/qr?session=nope", ""); code != 404 || errorCode(body) != "not_found" {
		t.Fatalf("qr ?session=nope: %d %s", code, body)
	}
	if got := fs.pairCalls(); !slices.Equal(got, []string{"sales"}) {
		t.Fatalf("Pair called for %v", got)
	}

	one := &fakeSessions{list: []SessionInfo{{Name: "support", State: "unpaired"}}, qr: map[string]string{}}
	_, srv = serve(t, Options{Sessions: one})
	if code, _, body := call(t, srv, "POST", "/api/v1/whatsapp/pair", ""); code != 202 {
		t.Fatalf("one session: %d %s", code, body)
	}
	if got := one.pairCalls(); !slices.Equal(got, []string{"support"}) {
		t.Fatalf("one session: Pair called for %v", got)
	}
}

// Without Options.Sessions the hooks of the one number are the session "default", on
// the new routes as on the old; with WhatsApp off there is none.
func TestSessionsFromTheOlderHooks(t *testing.T) {
	pairs := 0
	_, srv := serve(t, Options{QR: func() string { return "" }, Pair: func() error { pairs++; return nil },
		PairFailure: func() string { return "timed out" }})
	code, _, body := call(t, srv, "GET", "/api/v1/sessions", "")
	var list []SessionInfo
	if json.Unmarshal([]byte(body), &list); code != 200 || len(list) != 1 || list[0].Name != "default" || list[0].PairFailure != "timed out" {
		t.Fatalf("%d %s", code, body)
	}
	if code, _, body := call(t, srv, "POST", "/api/v1/sessions/sales/pair", ""); code != 404 || errorCode(body) != "not_found" {
		t.Fatalf("another name: %d %s", code, body)
	}
	for _, p := range []string{"/api/v1/sessions/default/pair", "/api/v1/whatsapp/pair"} {
		if code, _, body := call(t, srv, "POST", p, ""); code != 202 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	if pairs != 2 {
		t.Fatalf("Pair called %d times", pairs)
	}
	if code, _, body := call(t, srv, "GET", "/api/v1/whatsapp/qr", ""); code != 404 || !strings.Contains(body, "failed. timed out") {
		t.Fatalf("qr: %d %s", code, body)
	}

	_, off := serve(t, Options{})
	if code, _, body := call(t, off, "GET", "/api/v1/sessions", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("WhatsApp off, list: %d %s", code, body)
	}
	for _, p := range []string{"/api/v1/sessions/default/pair", "/api/v1/whatsapp/pair"} {
		if code, _, body := call(t, off, "POST", p, ""); code != 404 || errorCode(body) != "whatsapp_off" {
			t.Fatalf("WhatsApp off, %s: %d %s", p, code, body)
		}
	}
}

// sessionMessages is a send backend with three sessions, as the daemon decides: none
// named with several is ErrSessionRequired, a name that does not run ErrUnknownSession.
type sessionMessages struct {
	fakeMessages
	names []string
}

func (f *sessionMessages) Send(ctx context.Context, m OutgoingMessage) (MessageAccepted, error) {
	switch {
	case m.Session == "":
		return MessageAccepted{}, fmt.Errorf("%w: remedy runs %s; say which sends (\"session\")", ErrSessionRequired, strings.Join(f.names, ", "))
	case !slices.Contains(f.names, m.Session):
		return MessageAccepted{}, fmt.Errorf("%w: no session %q runs (%s)", ErrUnknownSession, m.Session, strings.Join(f.names, ", "))
	}
	return f.fakeMessages.Send(ctx, m)
}

// The send API takes the session from the body or X-Remedy-Session, and answers the
// backend's two session errors with their own statuses and codes; nothing is queued
// by a refused request.
func TestSendNamesTheSession(t *testing.T) {
	fm := &sessionMessages{names: []string{"default", "sales", "support"}}
	_, srv := serve(t, Options{Messages: fm})
	js := []string{"Content-Type", "application/json"}
	for _, c := range []struct {
		body string
		hdr  []string
		code int
		want string
	}{
		{`{"to": "62811", "text": "hi"}`, js, 409, "session_required"},
		{`{"to": "62811", "text": "hi", "session": "marketing"}`, js, 422, "unknown_session"},
		{`{"to": "62811", "text": "hi"}`, append([]string{"X-Remedy-Session", "nope"}, js...), 422, "unknown_session"},
		{`{"to": "62811", "text": "hi", "session": "sales"}`, append([]string{"X-Remedy-Session", "support"}, js...), 422, "invalid"},
		{`{"to": "62811", "text": "hi", "session": "sales"}`, js, 202, ""},
		{`{"to": "62811", "text": "hi"}`, append([]string{"X-Remedy-Session", "support"}, js...), 202, ""},
		{`{"to": "62811", "text": "hi", "session": "default"}`, append([]string{"X-Remedy-Session", "default"}, js...), 202, ""},
	} {
		code, _, body := call(t, srv, "POST", "/api/v1/messages", c.body, c.hdr...)
		if code != c.code || errorCode(body) != c.want {
			t.Errorf("%s %v: %d %s, want %d %s", c.body, c.hdr, code, body, c.code, c.want)
		}
		if c.code == 409 && !strings.Contains(body, "default, sales, support") {
			t.Errorf("409 does not name the sessions: %s", body)
		}
	}
	// The header twice: refused, not the first one taken.
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/messages", strings.NewReader(`{"to": "62811", "text": "hi"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("X-Remedy-Session", "sales")
	req.Header.Add("X-Remedy-Session", "support")
	if res, err := srv.Client().Do(req); err != nil || res.StatusCode != 422 {
		t.Errorf("X-Remedy-Session twice: %v %v, want 422", res, err)
	} else {
		res.Body.Close()
	}
	var got []string
	for _, m := range fm.sent {
		got = append(got, m.Session)
	}
	if !slices.Equal(got, []string{"sales", "support", "default"}) {
		t.Fatalf("sent from %v", got)
	}
}

func TestSessionErrorsMapToTheirStatus(t *testing.T) {
	for err, want := range map[error]int{
		fmt.Errorf("x: %w", ErrSessionRequired): 409,
		fmt.Errorf("x: %w", ErrUnknownSession):  422,
	} {
		if code, _, _, internal := status(err); code != want || internal {
			t.Errorf("%v: %d", err, code)
		}
	}
	if !errors.Is(sessionRequired([]SessionInfo{{Name: "b"}, {Name: "a"}}), ErrSessionRequired) {
		t.Fatal("sessionRequired is not ErrSessionRequired")
	}
}

func TestPublicURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@bot.example:8443/hook?token=x#f": "https://bot.example:8443/hook",
		"http://127.0.0.1:3000/wa":                    "http://127.0.0.1:3000/wa",
		"http://bot/?":                                "http://bot/",
		"":                                            "",
		"http://[::1":                                 "",
	} {
		if got := publicURL(in); got != want {
			t.Errorf("publicURL(%q) = %q, want %q", in, got, want)
		}
	}
}
