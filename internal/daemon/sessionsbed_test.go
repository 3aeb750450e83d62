package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// A bed of several sessions against one fake server (issue 22): each session its own
// paired device, number and store, and its own handler URL on one recording bot.

// botDelivery is one webhook delivery as the bot saw it.
type botDelivery struct {
	Path    string // the handler URL's path: /bot/<session>
	Header  string // X-Remedy-Session
	Session string // the body's "session"
	Type    string
	Text    string
	ID      string
}

// sessionBot records every delivery per handler path. A session's handler may be set to
// block until released (a stuck queue) or to answer 500; reply makes it answer each
// message with "echo <text>".
type sessionBot struct {
	srv   *httptest.Server
	reply bool
	// inproc: the bot is remedy's in-process handler (daemon.WithHandler, every
	// session's), not the webhooks; it knows a message's session from its text
	// ("in <phase> <session> <i>") and may panic.
	inproc bool

	mu      sync.Mutex
	got     []botDelivery
	blocked map[string]chan struct{} // session → closed to release
	failing map[string]bool
	panics  map[string]bool
	held    map[string]int // requests hanging in a blocked handler, per session
	failed  map[string]int // requests answered 500, per session
}

func newSessionBot(t *testing.T, reply bool) *sessionBot {
	b := &sessionBot{reply: reply, blocked: map[string]chan struct{}{}, failing: map[string]bool{}, panics: map[string]bool{}, held: map[string]int{}, failed: map[string]int{}}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(func() { b.releaseAll(); b.srv.Close() })
	return b
}

func (b *sessionBot) url(session string) string { return b.srv.URL + "/bot/" + session }

func (b *sessionBot) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body struct{ Type, Session, ID, Text string } // a message's fields are at the top level
	json.Unmarshal(raw, &body)
	d := botDelivery{Path: r.URL.Path, Header: r.Header.Get("X-Remedy-Session"), Session: body.Session, Type: body.Type,
		Text: body.Text, ID: body.ID}
	name := strings.TrimPrefix(r.URL.Path, "/bot/")
	b.mu.Lock()
	block, fail := b.blocked[name], b.failing[name]
	if block != nil {
		b.held[name]++
	}
	if fail {
		b.failed[name]++
	}
	b.mu.Unlock()
	if block != nil {
		select { // a stuck handler: it answers only once released
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	if fail {
		http.Error(w, "the bot is failing", http.StatusInternalServerError)
		return
	}
	b.mu.Lock()
	b.got = append(b.got, d)
	b.mu.Unlock()
	if b.reply && d.Type == "message" {
		json.NewEncoder(w).Encode(map[string]string{"reply": "echo " + d.Text})
		return
	}
	w.Write([]byte(`{}`))
}

// Handle is the in-process handler (inproc): the same rules as the webhooks, and a
// panicking session's messages panic inside remedy's dispatch.
func (b *sessionBot) Handle(ctx context.Context, m chat.Message) (string, error) {
	f := strings.Fields(m.Text)
	if len(f) < 3 {
		return "", nil
	}
	name := f[2]
	b.mu.Lock()
	block, fail, panics := b.blocked[name], b.failing[name], b.panics[name]
	if block != nil {
		b.held[name]++
	}
	if fail || panics {
		b.failed[name]++
	}
	b.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if panics {
		panic("the bot's handler panics on " + name + "'s messages")
	}
	if fail {
		return "", fmt.Errorf("the bot is failing")
	}
	b.mu.Lock()
	b.got = append(b.got, botDelivery{Path: "/bot/" + name, Session: name, Header: name, Type: "message", Text: m.Text, ID: m.ID})
	b.mu.Unlock()
	return "", nil
}

// panic makes session's messages panic in the in-process handler (a failing answer
// from the webhook).
func (b *sessionBot) panic(session string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inproc {
		b.panics[session] = true
	} else {
		b.failing[session] = true
	}
}

// block makes session's handler hang (on) or releases it (off).
func (b *sessionBot) block(session string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch := b.blocked[session]; ch != nil && !on {
		close(ch)
		delete(b.blocked, session)
	} else if ch == nil && on {
		b.blocked[session] = make(chan struct{})
	}
}

func (b *sessionBot) fail(session string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failing[session] = on
}

// counts is how many requests of session hung in its blocked handler, and how many
// were answered 500.
func (b *sessionBot) counts(session string) (held, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held[session], b.failed[session]
}

func (b *sessionBot) releaseAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s, ch := range b.blocked {
		close(ch)
		delete(b.blocked, s)
	}
}

// messages returns the message deliveries at session's handler.
func (b *sessionBot) messages(session string) []botDelivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []botDelivery
	for _, d := range b.got {
		if d.Path == "/bot/"+session && d.Type == "message" {
			out = append(out, d)
		}
	}
	return out
}

// sessionBed is remedy running several sessions against one fake server.
type sessionBed struct {
	r     *running
	s     *wafake.Server
	bot   *sessionBot
	names []string
	devs  map[string]wafake.PairedDevice
	phone *wafake.Phone
}

// startSessions runs remedy with one session per name (default policies, a healthy
// fake host), each on its own paired store; the stores of the sessions in corrupt are
// overwritten with garbage first (a corrupt device store at open). It waits until every
// other session has logged in.
func startSessions(t *testing.T, names []string, corrupt map[string]bool, bot *sessionBot, extra string) *sessionBed {
	t.Helper()
	ctx := context.Background()
	s, err := wafake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close) // before the daemon's: it runs after the daemon stops
	dir := t.TempDir()
	devs, err := wafake.PairedStores(ctx, filepath.Join(dir), len(names))
	if err != nil {
		t.Fatal(err)
	}
	bed := &sessionBed{s: s, bot: bot, names: names, devs: map[string]wafake.PairedDevice{}}
	var y strings.Builder
	fmt.Fprintf(&y, "data_dir: %q\nlisten: 127.0.0.1:0\nsample_interval: 1h\nwhatsapp:\n  enabled: true\n  send_per_minute: 10\n"+
		"  send: {per_minute: 6000, burst: 100, chat_per_minute: 6000, chat_burst: 100}\n%ssessions:\n", filepath.Join(dir, "data"), extra)
	for k, n := range names {
		bed.devs[n] = devs[k]
		if corrupt[n] {
			os.Remove(devs[k].Path + "-wal")
			os.Remove(devs[k].Path + "-shm")
			if err := os.WriteFile(devs[k].Path, []byte("this is not an SQLite database, it was damaged on disk"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&y, "  - name: %s\n    store: %q\n    handler: {url: %q}\n", n, devs[k].Path, bot.url(n))
	}
	cfg, err := config.Parse(filepath.Join(dir, "remedy.yaml"), []byte(y.String()))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y.String())
	}
	cfg.DefaultPolicies = true // the embedded defaults, as remedy run does
	opts := []Option{WithWhatsAppHTTP(s.HTTPClient())}
	if bot.inproc {
		opts = append(opts, WithHandler(bot))
	}
	bed.r = run(t, cfg, dir, opts)
	bed.phone, err = wafake.NewPhone(ctx, t.TempDir(), "6281100000077")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.phone.Close() })
	bed.r.eventually("every sound session logged in", func() bool {
		for _, n := range names {
			if !corrupt[n] && s.ConnOf(bed.devs[n].User) == nil {
				return false
			}
		}
		return true
	})
	return bed
}

// inbound makes the phone write text to session's number; false if the session has no
// connection to deliver over (it is logged out, banned, between reconnects).
func (b *sessionBed) inbound(t *testing.T, session, text string) bool {
	t.Helper()
	d := b.devs[session]
	c := b.s.ConnOf(d.User)
	if c == nil {
		return false
	}
	_, err := b.phone.Send(context.Background(), c, d.Device, text)
	return err == nil
}

// send queues text to the phone on session, as the send API does (Daemon.SendMessage,
// committed when it returns); the message's id.
func (b *sessionBed) send(t *testing.T, session, text string) string {
	t.Helper()
	id, err := b.r.d.SendMessage(context.Background(), session, chat.Outgoing{To: b.phone.JID.User, Text: text})
	if err != nil {
		t.Fatalf("send on %s: %v", session, err)
	}
	return id
}

// sentIDs is the ids of the messages the server got from session's device.
func (b *sessionBed) sentIDs(session string) []string {
	var ids []string
	for _, m := range b.s.MessagesFrom(b.devs[session].User) {
		ids = append(ids, m.ID)
	}
	return ids
}

// texts is the texts of the message deliveries at session's handler.
func (b *sessionBed) texts(session string) []string {
	var out []string
	for _, d := range b.bot.messages(session) {
		out = append(out, d.Text)
	}
	return out
}

// incidentsOf lists the alerts, decisions and actions of the run that concern one of
// sessions: their instance is the session, or one of its queues (inbound_<name>,
// outbound_<name>), or one of the instance's comma-separated group values. A WhatsApp
// policy's row whose instance is no session at all is listed too: it is shared by
// every number.
func (b *sessionBed) incidentsOf(sessions []string) []string {
	b.r.t.Helper()
	var out []string
	for _, path := range []string{"/api/v1/alerts?limit=1000", "/api/v1/decisions?limit=1000", "/api/v1/actions?limit=1000"} {
		_, body := b.r.do("GET", path, "")
		var rows []struct {
			Policy, Instance, Kind, State, Action string
		}
		if err := json.Unmarshal([]byte(body), &rows); err != nil {
			b.r.t.Fatalf("%s: %v: %s", path, err, body)
		}
		for _, row := range rows {
			for _, n := range sessions {
				if concerns(row.Instance, n) {
					out = append(out, fmt.Sprintf("%s %s/%s %s%s%s", path, row.Policy, row.Instance, row.Kind, row.State, row.Action))
				}
			}
			if strings.HasPrefix(row.Policy, "wa-") && !slices.Contains(b.names, row.Instance) {
				// One incident for every number: one number's outage would resolve,
				// silence or throttle another's.
				out = append(out, fmt.Sprintf("%s %s/%q %s%s%s: not per session", path, row.Policy, row.Instance, row.Kind, row.State, row.Action))
			}
		}
	}
	return out
}

// hasIncident reports whether an alert, decision or action names session (or is a
// WhatsApp policy's row shared by every session).
func (b *sessionBed) hasIncident(session string) bool {
	return len(b.incidentsOf([]string{session})) > 0
}

func concerns(instance, session string) bool {
	for _, v := range strings.Split(instance, ",") {
		if v == session || v == "inbound_"+session || v == "outbound_"+session {
			return true
		}
	}
	return false
}

// once reports the first value of want missing from got or present more than once.
func once(got, want []string) (string, bool) {
	for _, w := range want {
		if n := countOf(got, w); n != 1 {
			return fmt.Sprintf("%q %d times", w, n), false
		}
	}
	return "", true
}

func countOf(list []string, v string) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}
