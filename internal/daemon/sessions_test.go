package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"github.com/remedy-run/remedy/web"
)

// twoSessions is remedy with the sessions sales and support (each its own paired
// device on one fake server) and one bot handler that answers every message with the
// session it came through.
type twoSessions struct {
	r      *running
	bot    string            // the handler's URL
	stores map[string]string // session → its device store
	s      *wafake.Server
	users  map[string]string // session → its device's account
	mu     sync.Mutex
	seen   []delivery // what the handler got
}

type delivery struct{ text, body, header string }

func startTwoSessions(t *testing.T) *twoSessions {
	t.Helper()
	x := &twoSessions{users: map[string]string{"sales": "6281200000001", "support": "6281200000002"}}
	var err error
	if x.s, err = wafake.New(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.s.Close) // after the daemon stops (see startWithWhatsAppOpts)
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Type, Text, Session string }
		json.NewDecoder(r.Body).Decode(&m)
		if m.Type != "message" {
			return
		}
		x.mu.Lock()
		x.seen = append(x.seen, delivery{m.Text, m.Session, r.Header.Get("X-Remedy-Session")})
		x.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]string{"reply": "answered by " + m.Session})
	}))
	t.Cleanup(bot.Close)
	x.bot, x.stores = bot.URL, map[string]string{}
	dir := t.TempDir()
	var list []config.SessionConfig
	for _, name := range []string{"sales", "support"} {
		store := filepath.Join(dir, name+".db")
		if err := wafake.PairedStoreAs(context.Background(), store, x.users[name]); err != nil {
			t.Fatal(err)
		}
		x.stores[name] = store
		list = append(list, config.SessionConfig{Name: name, Store: store})
	}
	x.r = startDaemon(t, func(c *config.Config) {
		c.WhatsApp = config.WhatsApp{Enabled: true, SendPerMinute: 10, Handler: &config.Handler{URL: bot.URL}}
		c.SessionList = list
	}, WithWhatsAppHTTP(x.s.HTTPClient()))
	x.r.waitWhatsApp("connected") // every session
	return x
}

// send has the phone number from send text to the session's device.
func (x *twoSessions) send(t *testing.T, from, session, text string) {
	t.Helper()
	ctx := context.Background()
	p, err := wafake.NewPhone(ctx, t.TempDir(), from)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := x.r.d.sessions.get(session)
	sent := false
	x.s.Each(func(fc *wafake.Conn) {
		if fc.User() == x.users[session] {
			if _, err := p.Send(ctx, fc, s.Conn().Client().Store, text); err != nil {
				t.Error(err)
			}
			sent = true
		}
	})
	if !sent {
		t.Fatalf("no connection of session %s's device", session)
	}
}

// sentBy is whether the server saw a message from the session's device to number.
func (x *twoSessions) sentBy(session, to string) bool {
	return slices.ContainsFunc(x.s.Messages(), func(m wafake.Message) bool { return m.From == x.users[session] && m.To == to })
}

// Two sessions on one remedy: a message to each device reaches the handler saying which
// session received it (body and header), the handler's reply goes out from that same
// device, the send API refuses a send without a session (409) or with an unknown one
// (422) and sends from the one named, and each session has its own readiness check.
func TestTwoSessionsKeepTheirNumbersApart(t *testing.T) {
	t.Parallel()
	x := startTwoSessions(t)
	r := x.r
	x.send(t, "6281100000071", "sales", "hello sales")
	x.send(t, "6281100000072", "support", "hello support")
	r.eventually("both messages handled", func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		return len(x.seen) >= 2
	})
	x.mu.Lock()
	for _, d := range x.seen {
		want := strings.TrimPrefix(d.text, "hello ")
		if d.body != want || d.header != want {
			t.Errorf("%q was delivered with session %q (header %q), want %q", d.text, d.body, d.header, want)
		}
	}
	x.mu.Unlock()
	r.eventually("each reply from its own device", func() bool {
		return x.sentBy("sales", "6281100000071") && x.sentBy("support", "6281100000072")
	})
	if x.sentBy("support", "6281100000071") || x.sentBy("sales", "6281100000072") {
		t.Fatalf("a reply went out from the other session's device: %+v", x.s.Messages())
	}

	code, b := r.do("POST", "/api/v1/messages", `{"to":"+6281100000073","text":"which number?"}`)
	if code != http.StatusConflict || !strings.Contains(b, `"session_required"`) || !strings.Contains(b, "sales, support") {
		t.Fatalf("a send without a session: %d %s", code, b)
	}
	code, b = r.do("POST", "/api/v1/messages", `{"to":"+6281100000073","text":"x","session":"billing"}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(b, `"unknown_session"`) {
		t.Fatalf("a send through an unknown session: %d %s", code, b)
	}
	code, b = r.do("POST", "/api/v1/messages", `{"to":"+6281100000073","text":"from support"}`, "X-Remedy-Session", "support")
	if code != http.StatusAccepted {
		t.Fatalf("a send through support: %d %s", code, b)
	}
	var acc struct{ ID string }
	json.Unmarshal([]byte(b), &acc)
	// One idempotency key used by both numbers' senders is two messages, not a repeat.
	var ids []string
	for _, sess := range []string{"sales", "support"} {
		code, b := r.do("POST", "/api/v1/messages", `{"to":"+6281100000078","text":"same key","idempotency_key":"k-1","session":"`+sess+`"}`)
		var a struct {
			ID        string
			Duplicate bool
		}
		json.Unmarshal([]byte(b), &a)
		if code != http.StatusAccepted || a.Duplicate {
			t.Fatalf("%s with the key k-1: %d %s", sess, code, b)
		}
		ids = append(ids, a.ID)
	}
	if ids[0] == ids[1] {
		t.Fatalf("both sessions' k-1 are message %s", ids[0])
	}
	r.eventually("k-1 from both devices", func() bool { return x.sentBy("sales", "6281100000078") && x.sentBy("support", "6281100000078") })
	if _, b := r.do("GET", "/api/v1/messages/"+ids[1], ""); !strings.Contains(b, `"idempotency_key": "k-1"`) {
		t.Errorf("support's message status does not give its key as sent: %s", b)
	}
	r.eventually("the send API's message from support's device", func() bool { return x.sentBy("support", "6281100000073") })
	if code, b := r.do("GET", "/api/v1/messages/"+acc.ID, ""); code != 200 || !strings.Contains(b, acc.ID) {
		t.Fatalf("the message's status, found in any session: %d %s", code, b)
	}
	if in := r.d.sessions.get("support").Info(context.Background()); in.Name != "support" || in.State != "connected" || !in.Paired ||
		!strings.HasPrefix(in.JID, "6281200000002@") || in.Handler != x.bot {
		t.Errorf("support's info %+v", in)
	}
	code, b = r.do("GET", "/readyz", "")
	if code != 200 || !strings.Contains(b, "whatsapp[sales]") || !strings.Contains(b, "whatsapp[support]") {
		t.Fatalf("readyz %d %s", code, b)
	}
	_, b = r.do("GET", "/metrics", "")
	for _, s := range []string{`remedy_whatsapp_state{session="sales",state="connected"} 1`, `remedy_whatsapp_state{session="support",state="connected"} 1`} {
		if !strings.Contains(b, s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	_, b = r.do("GET", "/api/v1/events?limit=500", "")
	if !strings.Contains(b, `"session": "sales"`) || !strings.Contains(b, `"session": "support"`) {
		t.Errorf("the sessions' events carry no session label: %.2000s", b)
	}

	// The admin chat: !status names every session; !run RECONNECT_WA support reconnects
	// that one.
	ctx := context.Background()
	if st := (chatBackend{r.d}).Status(ctx); !strings.Contains(st, "sales connected") || !strings.Contains(st, "support connected") {
		t.Errorf("!status: %s", st)
	}
	logins := x.s.Logins()
	if _, err := (chatBackend{r.d}).Run(ctx, "", "RECONNECT_WA", "support", "6281100000009"); err != nil {
		t.Fatal(err)
	}
	r.eventually("RECONNECT_WA on support", func() bool {
		_, b := r.do("GET", "/api/v1/actions", "")
		return strings.Contains(b, `"action": "RECONNECT_WA"`) && strings.Contains(b, `\"session\":\"support\"`) && strings.Contains(b, `"outcome": "succeeded"`)
	})
	if n := x.s.Logins() - logins; n != 1 {
		t.Errorf("%d logins after reconnecting one session, want 1", n)
	}
}

// A reload that removes a session stops it alone: its queued items stay in remedy.db and
// are reported (SESSION_REMOVED with the counts, the status), its readiness check goes,
// and the other session, not restarted, keeps delivering both ways.
func TestReloadRemovesOneSessionOnly(t *testing.T) {
	t.Parallel()
	x := startTwoSessions(t)
	r := x.r
	sales := r.d.sessions.get("sales")
	// An item waits in support's outbound queue: the server refuses to take it for now.
	x.s.RefuseTo("6281100000081@s.whatsapp.net", 503)
	if code, b := r.do("POST", "/api/v1/messages", `{"to":"+6281100000081","text":"waits","session":"support"}`); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, b)
	}
	file := filepath.Join(t.TempDir(), "remedy.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf("data_dir: %s\nwhatsapp:\n  handler: {url: %q}\nsessions:\n  - name: sales\n    store: %s\n",
		r.cfg.DataDir, x.bot, x.stores["sales"])), 0o644)
	r.d.cfg.File = file
	if err := r.d.ReloadSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.d.sessions.names(); !slices.Equal(got, []string{"sales"}) || r.d.sessions.get("sales") != sales {
		t.Fatalf("sessions after the reload %v (sales the same: %v)", got, r.d.sessions.get("sales") == sales)
	}
	r.eventually("SESSION_REMOVED with support's queued item", func() bool {
		_, b := r.do("GET", "/api/v1/events?limit=500", "")
		return strings.Contains(b, `"code": "SESSION_REMOVED"`) && strings.Contains(b, `"outbound": "1"`)
	})
	var n int
	if err := r.d.data.Main.Get(context.Background(), &n, `SELECT count(*) FROM queue_items WHERE queue = 'outbound_support'`); err != nil || n != 1 {
		t.Fatalf("support's queued item: %d rows (%v), want it kept", n, err)
	}
	if _, b := r.do("GET", "/api/v1/status", ""); !strings.Contains(b, "session support removed") {
		t.Errorf("the status does not say support was removed: %s", b)
	}
	if _, b := r.do("GET", "/readyz", ""); strings.Contains(b, "whatsapp[support]") || !strings.Contains(b, "whatsapp[sales]") {
		t.Errorf("readyz after the reload: %s", b)
	}
	x.send(t, "6281100000074", "sales", "hello sales")
	r.eventually("sales still answering", func() bool { return x.sentBy("sales", "6281100000074") })
	code, b := r.do("POST", "/api/v1/messages", `{"to":"+6281100000075","text":"only sales now"}`)
	if code != http.StatusAccepted {
		t.Fatalf("with one session left a send needs none: %d %s", code, b)
	}
	r.eventually("the send API through sales", func() bool { return x.sentBy("sales", "6281100000075") })
}

// A session that cannot open (its device store held by another process) is reported —
// SESSION_OPEN_FAILED with its session, its own readiness check failing, the status —
// and the other session runs and delivers.
func TestASessionThatDoesNotOpenLeavesTheOthersRunning(t *testing.T) {
	t.Parallel()
	s, err := wafake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	dir := t.TempDir()
	good, held := filepath.Join(dir, "good.db"), filepath.Join(dir, "held.db")
	if err := wafake.PairedStoreAs(context.Background(), good, "6281200000001"); err != nil {
		t.Fatal(err)
	}
	other, err := whatsapp.Open(context.Background(), whatsapp.Options{StorePath: held, Events: func(engine.Event) {}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	r := startDaemon(t, func(c *config.Config) {
		c.WhatsApp = config.WhatsApp{Enabled: true, SendPerMinute: 10}
		c.SessionList = []config.SessionConfig{{Name: "good", Store: good}, {Name: "held", Store: held}}
	}, WithWhatsAppHTTP(s.HTTPClient()))
	r.eventually("good connected", func() bool { return r.d.sessions.get("good").State() == whatsapp.Connected })
	if names := r.d.sessions.names(); !slices.Equal(names, []string{"good"}) {
		t.Fatalf("running sessions %v", names)
	}
	r.eventually("SESSION_OPEN_FAILED for held", func() bool {
		_, b := r.do("GET", "/api/v1/events?limit=500", "")
		return strings.Contains(b, `"code": "SESSION_OPEN_FAILED"`) && strings.Contains(b, `"session": "held"`)
	})
	code, b := r.do("GET", "/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(b, "whatsapp[held]") || !strings.Contains(b, `"whatsapp[good]":"connected"`) {
		t.Errorf("readyz %d %s", code, b)
	}
	if _, b := r.do("GET", "/api/v1/status", ""); !strings.Contains(b, "session held") {
		t.Errorf("the status does not name the session that did not open: %s", b)
	}
	if _, b := r.do("GET", "/metrics", ""); !strings.Contains(b, `remedy_whatsapp_state{session="held",state="not_opened"} 1`) {
		t.Errorf("/metrics does not show held as not opened")
	}
	if code, b := r.do("POST", "/api/v1/messages", `{"to":"+6281100000076","text":"still here"}`); code != http.StatusAccepted {
		t.Fatalf("the send API with the one running session: %d %s", code, b)
	}
	r.eventually("good's message out", func() bool {
		return slices.ContainsFunc(s.Messages(), func(m wafake.Message) bool { return m.From == "6281200000001" && m.To == "6281100000076" })
	})
	// It pages (the default policy session-open-failed), and once the lock is gone a
	// reload opens it and SESSION_OPENED resolves the page.
	alerts := func() string { _, b := r.do("GET", "/api/v1/alerts?limit=50", ""); return b }
	r.eventually("session-open-failed firing", func() bool { return strings.Contains(alerts(), `"session-open-failed"`) })
	other.Close()
	file := filepath.Join(t.TempDir(), "remedy.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf("data_dir: %s\nsessions:\n  - name: good\n    store: %s\n  - name: held\n    store: %s\n",
		r.cfg.DataDir, good, held)), 0o644)
	r.d.cfg.File = file
	if err := r.d.ReloadSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if names := r.d.sessions.names(); !slices.Equal(names, []string{"good", "held"}) {
		t.Fatalf("running sessions after the reload %v", names)
	}
	r.eventually("session-open-failed resolved", func() bool {
		var as []struct{ Policy, State string }
		json.Unmarshal([]byte(alerts()), &as)
		return slices.ContainsFunc(as, func(a struct{ Policy, State string }) bool {
			return a.Policy == "session-open-failed" && a.State == "resolved"
		})
	})
}

// With no session running, a send says why: WhatsApp is off, or the configured sessions
// did not open (503 no_session naming them), never an internal error.
func TestPickWithoutSessions(t *testing.T) {
	var ss sessionSet
	if _, err := ss.pick(""); !errors.Is(err, ErrWhatsAppOff) {
		t.Fatalf("off: %v", err)
	}
	if _, err := ss.pick("sales"); !errors.Is(err, web.ErrUnknownSession) {
		t.Fatalf("a name: %v", err)
	}
	ss.failed.Store("sales", "session sales: the store is locked")
	var we *web.Error
	if _, err := ss.pick(""); !errors.As(err, &we) || we.Status != http.StatusServiceUnavailable || !strings.Contains(we.Message, "store is locked") {
		t.Fatalf("none opened: %v", err)
	}
}
