package daemon

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// remedy with three sessions against one fake server (issue 22): each session gets its
// own customer's message at its own handler, the delivery says which session (body and
// X-Remedy-Session), and the bot's reply leaves from that session's device only; the
// send API routes by "session" (or the header), refuses a missing one with 409 and an
// unknown one with 422; GET /api/v1/sessions lists the three connected.
func TestThreeSessions(t *testing.T) {
	t.Parallel()
	names := []string{"sales", "support", "billing"}
	bed := startSessions(t, names, nil, newSessionBot(t, true), "")
	for _, n := range names {
		if !bed.inbound(t, n, "hello "+n) {
			t.Fatalf("no connection for %s", n)
		}
	}
	bed.r.eventually("each message at its handler and each reply out", func() bool {
		for _, n := range names {
			if len(bed.bot.messages(n)) != 1 || len(bed.sentIDs(n)) != 1 {
				return false
			}
		}
		return true
	})
	for _, n := range names {
		d := bed.bot.messages(n)[0]
		if d.Text != "hello "+n {
			t.Fatalf("%s's handler got %+v", n, d)
		}
		if d.Session != n || d.Header != n {
			t.Errorf("%s's delivery names session %q, header X-Remedy-Session %q", n, d.Session, d.Header)
		}
		if m := bed.s.MessagesFrom(bed.devs[n].User); len(m) != 1 || m[0].To != bed.phone.JID.User {
			t.Fatalf("%s's reply: %+v", n, m)
		}
	}
	// The send API: by body, by header; refused without a session, and with an unknown one.
	byBody := bed.send(t, "support", "from the API")
	code, body := bed.r.do("POST", "/api/v1/messages", fmt.Sprintf(`{"to": %q, "text": "by header"}`, bed.phone.JID.User), "X-Remedy-Session", "billing")
	byHeader := accepted(t, code, body)
	code, body = bed.r.do("POST", "/api/v1/messages", fmt.Sprintf(`{"to": %q, "text": "whose?"}`, bed.phone.JID.User))
	if code != 409 || !strings.Contains(body, `"session_required"`) || !strings.Contains(body, "sales") {
		t.Fatalf("no session: %d %s", code, body)
	}
	code, body = bed.r.do("POST", "/api/v1/messages", fmt.Sprintf(`{"session": "marketing", "to": %q, "text": "who?"}`, bed.phone.JID.User))
	if code != 422 || !strings.Contains(body, `"unknown_session"`) {
		t.Fatalf("unknown session: %d %s", code, body)
	}
	bed.r.eventually("the API's messages at the server", func() bool {
		return len(bed.sentIDs("support")) == 2 && len(bed.sentIDs("billing")) == 2
	})
	if !slices.Contains(bed.sentIDs("support"), byBody) || !slices.Contains(bed.sentIDs("billing"), byHeader) || len(bed.sentIDs("sales")) != 1 {
		t.Fatalf("sent from the wrong device: support %v (want %s), billing %v (want %s), sales %v",
			bed.sentIDs("support"), byBody, bed.sentIDs("billing"), byHeader, bed.sentIDs("sales"))
	}
	for _, id := range []string{byBody, byHeader} {
		bed.r.messageStatus(id, "sent")
	}
	// A dropped connection is one session's: it is reconnected (wa-reconnect, through
	// RECONNECT_WA on that session), the others are not touched.
	bed.s.DropDevice(bed.devs["sales"].User)
	t.Cleanup(func() {
		if t.Failed() {
			_, a := bed.r.do("GET", "/api/v1/actions?limit=20", "")
			_, d := bed.r.do("GET", "/api/v1/decisions?limit=20", "")
			_, e := bed.r.do("GET", "/api/v1/events?limit=20", "")
			t.Logf("actions %s\ndecisions %s\nevents %s", a, d, e)
		}
	})
	bed.r.eventually("sales reconnected", func() bool {
		// The server's login comes before the client's own "connected": wait for both.
		return bed.s.LoginsOf(bed.devs["sales"].User) == 2 && bed.s.ConnOf(bed.devs["sales"].User) != nil &&
			bed.r.d.sessions.get("sales").State() == "connected"
	})
	for _, n := range []string{"support", "billing"} {
		if l := bed.s.LoginsOf(bed.devs[n].User); l != 1 {
			t.Errorf("%s logged in %d times after sales's drop", n, l)
		}
	}
	_, body = bed.r.do("GET", "/api/v1/sessions", "")
	var list []struct {
		Name, State string
		Paired      bool
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list) != 3 {
		t.Fatalf("sessions: %v %s", err, body)
	}
	for _, s := range list {
		if !slices.Contains(names, s.Name) || s.State != "connected" || !s.Paired {
			t.Fatalf("session %+v in %s", s, body)
		}
	}
}
