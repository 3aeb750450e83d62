package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// GET /api/v1/messages/{id} names the session that sent the message: once sent (no
// longer in any queue), and when its session was removed by a reload (the item waits in
// remedy.db) — not whichever session happens to answer first.
func TestMessageStatusNamesItsOwnSession(t *testing.T) {
	t.Parallel()
	x := startTwoSessions(t)
	r := x.r
	sessionOf := func(id string) string {
		t.Helper()
		code, b := r.do("GET", "/api/v1/messages/"+id, "")
		if code != http.StatusOK {
			t.Fatalf("GET message %s: %d %s", id, code, b)
		}
		var st struct{ Session, Status string }
		if err := json.Unmarshal([]byte(b), &st); err != nil {
			t.Fatal(err)
		}
		return st.Session
	}
	post := func(body string) string {
		t.Helper()
		code, b := r.do("POST", "/api/v1/messages", body)
		if code != http.StatusAccepted {
			t.Fatalf("%d %s", code, b)
		}
		var m struct{ ID string }
		json.Unmarshal([]byte(b), &m)
		return m.ID
	}
	sent := post(`{"to":"+6281100000082","text":"from support","session":"support"}`)
	r.eventually("support's message sent", func() bool { return x.sentBy("support", "6281100000082") })
	r.eventually("its status says sent", func() bool {
		_, b := r.do("GET", "/api/v1/messages/"+sent, "")
		return !strings.Contains(b, `"status": "queued"`)
	})
	if got := sessionOf(sent); got != "support" {
		t.Errorf("a sent message of support: session %q, want support", got)
	}
	// An item waits in sales's queue; a reload removes sales.
	x.s.RefuseTo("6281100000083@s.whatsapp.net", 503)
	waits := post(`{"to":"+6281100000083","text":"waits","session":"sales"}`)
	file := filepath.Join(t.TempDir(), "remedy.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf("data_dir: %s\nwhatsapp:\n  handler: {url: %q}\nsessions:\n  - name: support\n    store: %s\n",
		r.cfg.DataDir, x.bot, x.stores["support"])), 0o644)
	r.d.cfg.File = file
	if err := r.d.ReloadSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sessionOf(waits); got != "sales" {
		t.Errorf("a queued message of the removed session sales: session %q, want sales", got)
	}
	if _, b := r.do("GET", "/api/v1/messages/"+waits, ""); !strings.Contains(b, `"status": "queued"`) || !strings.Contains(b, "session sales is not running") {
		t.Errorf("a queued message of the removed session sales does not say why it waits: %s", b)
	}
	if got := sessionOf(sent); got != "support" {
		t.Errorf("after the reload, support's sent message: session %q, want support", got)
	}
}

// A reload with a broken configuration keeps every session as it was — same sessions,
// no new login — and says so with the error's position: SESSION_RELOAD_FAILED and the
// status, until a good reload (which adds a session without touching the others).
func TestSessionsReloadRefusedThenAdded(t *testing.T) {
	t.Parallel()
	x := startTwoSessions(t)
	r := x.r
	sales, support := r.d.sessions.get("sales"), r.d.sessions.get("support")
	logins := func() [2]int { return [2]int{x.s.LoginsOf(x.users["sales"]), x.s.LoginsOf(x.users["support"])} }
	before := logins()
	file := filepath.Join(t.TempDir(), "remedy.yaml")
	good := fmt.Sprintf("data_dir: %s\nwhatsapp:\n  handler: {url: %q}\nsessions:\n  - name: sales\n    store: %s\n  - name: support\n    store: %s\n",
		r.cfg.DataDir, x.bot, x.stores["sales"], x.stores["support"])
	os.WriteFile(file, []byte(good+"  - name: Bad Name\n"), 0o644)
	r.d.cfg.File = file
	if err := r.d.ReloadSessions(context.Background()); err == nil {
		t.Fatal("a broken configuration was reloaded")
	}
	r.eventually("SESSION_RELOAD_FAILED with the position", func() bool {
		_, b := r.do("GET", "/api/v1/events?limit=500", "")
		return strings.Contains(b, `"code": "SESSION_RELOAD_FAILED"`) && strings.Contains(b, "remedy.yaml:9:11")
	})
	if _, b := r.do("GET", "/api/v1/status", ""); !strings.Contains(b, "sessions not reloaded") {
		t.Errorf("the status does not say the reload was refused: %s", b)
	}
	// A good reload adds ops (unpaired) and clears the words.
	os.WriteFile(file, []byte(good+fmt.Sprintf("  - name: ops\n    store: %s\n", filepath.Join(t.TempDir(), "ops.db"))), 0o644)
	if err := r.d.ReloadSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.d.sessions.get("sales") != sales || r.d.sessions.get("support") != support || r.d.sessions.get("ops") == nil {
		t.Fatalf("sessions after the reloads: %v (sales, support the same: %v %v)", r.d.sessions.names(),
			r.d.sessions.get("sales") == sales, r.d.sessions.get("support") == support)
	}
	if _, b := r.do("GET", "/api/v1/status", ""); strings.Contains(b, "sessions not reloaded") {
		t.Errorf("the status still says the reload was refused: %s", b)
	}
	if got := logins(); got != before {
		t.Errorf("logins of sales and support %v, before the reloads %v: a reload touched them", got, before)
	}
}

// An admin of one session acts on that session: `!run RECONNECT_WA` with no target
// reconnects the number written to, and an action on another session (its name, or one
// of its queues) is refused unless the admin is that session's admin too. Host-wide
// targets stay open to every admin.
func TestAdminCommandsStayInTheirSession(t *testing.T) {
	t.Parallel()
	x := startTwoSessions(t)
	r := x.r
	const salesOnly, both = "+6281100000091", "+6281100000092"
	file := filepath.Join(t.TempDir(), "remedy.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf("data_dir: %s\nwhatsapp:\n  handler: {url: %q}\n  allowed_actions: [RECONNECT_WA, CLEAR_QUEUE]\nsessions:\n"+
		"  - name: sales\n    store: %s\n    admins: [%q, %q]\n  - name: support\n    store: %s\n    admins: [%q]\n",
		r.cfg.DataDir, x.bot, x.stores["sales"], salesOnly, both, x.stores["support"], both)), 0o644)
	r.d.cfg.File = file
	if err := r.d.ReloadSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitWhatsApp("connected")
	b, ctx := chatBackend{r.d}, context.Background()
	for _, c := range []struct{ action, target string }{{"RECONNECT_WA", "support"}, {"CLEAR_QUEUE", "outbound_support"}, {"CLEAR_QUEUE", "inbound_support"}} {
		if _, err := b.Run(ctx, "sales", c.action, c.target, salesOnly); err == nil || !strings.Contains(err.Error(), "not an admin of session support") {
			t.Errorf("sales's admin ran %s %s on support: error %v", c.action, c.target, err)
		}
		if _, err := b.Run(ctx, "sales", c.action, c.target, both); err != nil {
			t.Errorf("an admin of both sessions, %s %s on support from sales: %v", c.action, c.target, err)
		}
	}
	if _, err := b.Run(ctx, "sales", "CLEAR_QUEUE", "outbound_sales", salesOnly); err != nil {
		t.Errorf("sales's admin on sales's own queue: %v", err)
	}
	// No target: the number written to, not "default" (there is none here).
	logins := x.s.LoginsOf(x.users["sales"])
	if _, err := b.Run(ctx, "sales", "RECONNECT_WA", "", salesOnly); err != nil {
		t.Fatal(err)
	}
	r.eventually("sales reconnected by its admin", func() bool { return x.s.LoginsOf(x.users["sales"]) > logins })
}

// One session logged out (the phone unlinked it) while another's connection drops: the
// other reconnects through its own policy (the embedded defaults) and answers; the
// logged-out one stays out and is not logged in again.
func TestLogoutOfOneWhileAnotherDrops(t *testing.T) {
	t.Parallel()
	bed := startSessions(t, []string{"sales", "support"}, nil, newSessionBot(t, true), "")
	sales, support := bed.devs["sales"].User, bed.devs["support"].User
	state := func(name string) string {
		var list []struct{ Name, State string }
		_, b := bed.r.do("GET", "/api/v1/sessions", "")
		json.Unmarshal([]byte(b), &list)
		for _, s := range list {
			if s.Name == name {
				return s.State
			}
		}
		return ""
	}
	// Both connected as remedy sees it (not only logged in at the server), then the faults.
	bed.r.eventually("both connected", func() bool { return state("sales") == "connected" && state("support") == "connected" })
	logins := bed.s.LoginsOf(support)
	bed.s.OnLoginOf(sales, func(c *wafake.Conn) { c.Failure(401, nil) })
	bed.s.EachOf(sales, func(c *wafake.Conn) { c.StreamError("401", "device_removed") })
	bed.s.DropDevice(support)
	bed.r.eventually("support reconnected", func() bool { return bed.s.LoginsOf(support) > logins && state("support") == "connected" })
	bed.r.eventually("sales logged out", func() bool { s := state("sales"); t.Log("sales:", s); return s == "logged_out" })
	if !bed.inbound(t, "support", "still there?") {
		t.Fatal("support has no connection")
	}
	bed.r.eventually("support answering", func() bool { return len(bed.sentIDs("support")) == 1 })
	if bed.s.ConnOf(sales) != nil {
		t.Error("the logged-out sales has a connection")
	}
}

// A session removed by a reload with an item queued: after a restart without it, the
// item is still in remedy.db, its status says whose it is and why it waits, and the
// operator is told at start (the status names the session whose queue is left).
func TestRemovedSessionsItemsSurviveARestart(t *testing.T) {
	t.Parallel()
	x := startTwoSessions(t)
	r := x.r
	x.s.RefuseTo("6281100000084@s.whatsapp.net", 503)
	code, b := r.do("POST", "/api/v1/messages", `{"to":"+6281100000084","text":"waits","session":"support"}`)
	if code != http.StatusAccepted {
		t.Fatalf("%d %s", code, b)
	}
	var m struct{ ID string }
	json.Unmarshal([]byte(b), &m)
	file := filepath.Join(t.TempDir(), "remedy.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf("data_dir: %s\nwhatsapp:\n  handler: {url: %q}\nsessions:\n  - name: sales\n    store: %s\n",
		r.cfg.DataDir, x.bot, x.stores["sales"])), 0o644)
	r.d.cfg.File = file
	if err := r.d.ReloadSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.cfg.SessionList = r.cfg.SessionList[:1] // sales only, as the file now says
	r = r.restart()
	var n int
	if err := r.d.data.Main.Get(context.Background(), &n, `SELECT count(*) FROM queue_items WHERE queue = 'outbound_support'`); err != nil || n != 1 {
		t.Fatalf("support's queued item after the restart: %d rows (%v), want it kept", n, err)
	}
	if _, b := r.do("GET", "/api/v1/messages/"+m.ID, ""); !strings.Contains(b, `"session": "support"`) || !strings.Contains(b, "not running") {
		t.Errorf("the status of support's waiting message after the restart: %s", b)
	}
	if _, b := r.do("GET", "/api/v1/status", ""); !strings.Contains(b, "session support is not configured; its queued items stay in remedy.db (1 in outbound_support)") {
		t.Errorf("after the restart the status does not tell of support's queued item: %s", b)
	}
}
