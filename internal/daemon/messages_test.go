package daemon

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/config"
)

func fastSend(c *config.Config) {
	c.WhatsApp.Send = config.Send{PerMinute: 6000, Burst: 100, ChatPerMinute: 6000, ChatBurst: 100}
}

func pngFile(t *testing.T) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// status polls a message until it has the status (or failed, which ends the wait).
func (r *running) messageStatus(id, want string) map[string]any {
	r.t.Helper()
	var st map[string]any
	r.eventually("message "+id+" "+want, func() bool {
		_, b := r.do("GET", "/api/v1/messages/"+id, "")
		st = nil
		json.Unmarshal([]byte(b), &st)
		return st["status"] == want
	})
	return st
}

func accepted(t *testing.T, code int, body string) string {
	t.Helper()
	var a struct{ ID, Status string }
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &a) != nil || a.ID == "" || a.Status != "queued" && a.Status != "sent" {
		t.Fatalf("send: %d %s", code, body)
	}
	return a.ID
}

// The send API of a running remedy against the fake WhatsApp server: texts (quoted,
// mentioning), a reaction, media inline and by upload reference, a group; statuses from
// queued through the recipients' receipts to read; the idempotency key; refusals as
// failed dead letters with events and the failures metric.
func TestSendAPIThroughTheDaemon(t *testing.T) {
	t.Parallel()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) { c.Token = "operator-token-0123456789"; fastSend(c) })
	s.AutoReceipts("", "read")
	s.AddGroup("120363000000000001", "6281100000002", "6281100000003")
	img := pngFile(t)
	bodies := []string{
		`{"to": "+62 811-0000-0002", "text": "hello @6281100000003", "reply_to": "3EB0AAAA", "mentions": ["+6281100000003"]}`,
		`{"to": "6281100000002@s.whatsapp.net", "reaction": {"message_id": "3EB0AAAA", "emoji": "👍"}}`,
		fmt.Sprintf(`{"to": "6281100000002", "text": "a picture", "media": {"data": %q}}`, base64.StdEncoding.EncodeToString(img)),
		`{"to": "120363000000000001@g.us", "text": "hello group"}`,
	}
	var ids []string
	for _, b := range bodies {
		code, body := r.do("POST", "/api/v1/messages", b)
		ids = append(ids, accepted(t, code, body))
	}
	// An upload, then a message that refers to it.
	req, _ := http.NewRequest("POST", r.base+"/api/v1/media?file_name=report.pdf", bytes.NewReader([]byte("%PDF-1.4 test")))
	req.Header.Set("Content-Type", "application/pdf")
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct{ ID, Kind string }
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || up.Kind != "document" || len(up.ID) != 64 {
		t.Fatalf("upload: %d %+v", resp.StatusCode, up)
	}
	code, body := r.do("POST", "/api/v1/messages", fmt.Sprintf(`{"to": "6281100000002", "text": "the report", "media": {"id": %q}}`, up.ID))
	ids = append(ids, accepted(t, code, body))
	for _, id := range ids {
		r.messageStatus(id, "read")
		// The receipts may beat the commit of the server's acknowledgement; the send
		// time is recorded all the same, and the status stays read.
		r.eventually("the send time of "+id, func() bool {
			_, b := r.do("GET", "/api/v1/messages/"+id, "")
			return strings.Contains(b, `"sent_at"`) && strings.Contains(b, `"status": "read"`)
		})
	}
	if n := len(s.Messages()); n != len(ids) || len(s.Uploads()) != 2 {
		t.Fatalf("server got %d messages, %d uploads", n, len(s.Uploads()))
	}
	// The idempotency key: the second post queues nothing and answers the first id.
	first, b1 := r.do("POST", "/api/v1/messages", `{"to": "6281100000002", "text": "once"}`, "Idempotency-Key", "order-42")
	again, b2 := r.do("POST", "/api/v1/messages", `{"to": "6281100000002", "text": "once"}`, "Idempotency-Key", "order-42")
	id := accepted(t, first, b1)
	// The repeat answers with the first message's status as it is now: queued, sent, or
	// already delivered or read when the fake server was quick.
	var rep struct {
		ID        string
		Duplicate bool
	}
	if again != http.StatusAccepted || json.Unmarshal([]byte(b2), &rep) != nil || rep.ID != id || !rep.Duplicate {
		t.Fatalf("repeat: %s / %d %s", b1, again, b2)
	}
	// The key reused for another message: refused, nothing queued.
	if code, b := r.do("POST", "/api/v1/messages", `{"to": "6281100000002", "text": "twice"}`, "Idempotency-Key", "order-42"); code != 422 ||
		!strings.Contains(b, `"idempotency_key_reused"`) || !strings.Contains(b, id) {
		t.Fatalf("key reused: %d %s", code, b)
	}
	r.messageStatus(id, "read")
	count := 0
	for _, m := range s.Messages() {
		if m.ID == id {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("the server got the idempotent message %d times", count)
	}
	// A recipient that refuses: failed with the reason, a dead letter, an event, the metric.
	s.RefuseTo("6281100000004@s.whatsapp.net", 463)
	code, body = r.do("POST", "/api/v1/messages", `{"to": "+6281100000004", "text": "refused"}`)
	rid := accepted(t, code, body)
	st := r.messageStatus(rid, "failed")
	if !strings.Contains(fmt.Sprint(st["reason"]), "refused") {
		t.Fatalf("failed message %v", st)
	}
	// The event is journaled by its writer after the dead letter's transaction: waited for.
	r.eventually("WA_SEND_FAILED journaled", func() bool {
		_, evs := r.do("GET", "/api/v1/events", "")
		return strings.Contains(evs, `"WA_SEND_FAILED"`)
	})
	_, dl := r.do("GET", "/api/v1/deadletters?queue=outbound", "")
	_, evs := r.do("GET", "/api/v1/events", "")
	_, metrics := r.do("GET", "/metrics", "")
	if !strings.Contains(dl, rid) || !strings.Contains(evs, `"WA_SEND_FAILED"`) ||
		!strings.Contains(metrics, `remedy_whatsapp_send_failures_total{reason="refused",session="default"} 1`) {
		t.Fatalf("dead letters %s\nevents %s\nmetrics %s", dl, evs, metrics)
	}
	// whatsmeow acknowledges receipts on goroutines; stopping under one races inside it.
	r.eventually("every receipt acknowledged", func() bool { sent, acked := s.ReceiptAcks(); return sent == acked })
}

// Bad requests to the send API: each gets its status and the JSON error, and nothing is
// queued.
func TestSendAPIRefusesBadInput(t *testing.T) {
	t.Parallel()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) { c.Token = "operator-token-0123456789"; fastSend(c) })
	big := base64.StdEncoding.EncodeToString(append(pngFile(t), make([]byte, 6<<20)...))
	cases := []struct {
		body string
		code int
		want string
	}{
		{`{"to": "0811-000-000", "text": "x"}`, 422, "international format"},
		{`{"to": "status@broadcast", "text": "x"}`, 422, "not @broadcast"},
		{`{"to": "6281100000002:3@s.whatsapp.net", "text": "x"}`, 422, "device JID"},
		{`{"to": "6281100000002"}`, 422, "give text"},
		{`{"to": "6281100000002", "text": " \t "}`, 422, "not only spaces"},
		{`{"to": "62+81100000002", "text": "x"}`, 422, "+ first"},
		{`{"to": "` + strings.Repeat("1", 5000) + `@g.us", "text": "x"}`, 422, "at most 40"},
		{`{"to": "6281100000002", "text": "x", "media": {"id": "` + strings.Repeat("ab", 32) + `", "data": "AAAA"}}`, 422, "not both"},
		{`{"to": "6281100000002", "text": "x", "reaction": {"message_id": "A", "emoji": "x"}}`, 422, "reaction is a message of its own"},
		{`{"to": "6281100000002", "text": "x", "mentions": ["120363000000000001@g.us"]}`, 422, "mentions[0]"},
		{`{"to": "6281100000002", "media": {"data": "AAAA", "mime": "video/x-msvideo"}}`, 415, "unknown media type"},
		{`{"to": "6281100000002", "media": {"data": "AAAA", "kind": "image", "mime": "image/gif"}}`, 415, "image/jpeg, image/png"},
		{`{"to": "6281100000002", "media": {"data": "` + big + `"}}`, 413, "at most 5242880 bytes"},
		{`{"to": "6281100000002", "media": {"id": "` + strings.Repeat("ab", 32) + `"}}`, 422, "no such upload"},
		{`{"to": "6281100000002", "text": "x", "colour": "red"}`, 400, "unknown field"},
	}
	for _, c := range cases {
		code, body := r.do("POST", "/api/v1/messages", c.body)
		if code != c.code || !strings.Contains(body, c.want) || !strings.Contains(body, `"error"`) {
			t.Errorf("%.80s: %d %s, want %d with %q", c.body, code, body, c.code, c.want)
		}
	}
	// The whole upload above the limit: 413 naming the limit, before anything is read in full.
	huge := `{"to": "6281100000002", "media": {"data": "` + strings.Repeat("A", 24<<20) + `"}}`
	if code, body := r.do("POST", "/api/v1/messages", huge); code != 413 || !strings.Contains(body, "16777216") {
		t.Errorf("huge: %d %.200s", code, body)
	}
	// Security: no token, a cross-site page, a form post.
	tok := r.token
	r.token = ""
	if code, _ := r.do("POST", "/api/v1/messages", `{"to": "6281100000002", "text": "x"}`); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := r.do("GET", "/api/v1/messages/3EB0", ""); code != 401 {
		t.Errorf("status without token: %d", code)
	}
	r.token = tok
	if code, _ := r.do("POST", "/api/v1/messages", `{"to": "6281100000002", "text": "x"}`,
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); code != 403 {
		t.Errorf("cross-site: %d", code)
	}
	if code, _ := r.do("POST", "/api/v1/media", "hello", "Content-Type", "text/plain", "Origin", r.base, "Sec-Fetch-Site", "same-origin"); code != 415 {
		t.Errorf("a page's text/plain upload: %d", code)
	}
	if code, body := r.do("GET", "/api/v1/messages/3EB0NOPE", ""); code != 404 || !strings.Contains(body, "not_found") {
		t.Errorf("unknown id: %d %s", code, body)
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("%d messages sent from bad requests", n)
	}
}

// A message posted during a WhatsApp outage waits for the connection and goes out when
// it is back — with the default policies on, so queue-stuck's CLEAR_QUEUE would take it
// if the outbound queue counted as stuck (stuck_after is 2 s here, the outage longer).
func TestSendsWaitOutAnOutage(t *testing.T) {
	t.Parallel()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) {
		c.Policies, c.DefaultPolicies = "", true
		c.CheckInterval = time.Second
		c.Queues = map[string]config.Queue{"outbound": {StuckAfter: 2 * time.Second}}
		fastSend(c)
	})
	s.Down()
	r.waitWhatsApp("disconnected")
	code, body := r.do("POST", "/api/v1/messages", `{"to": "+6281100000002", "text": "sent during an outage"}`)
	id := accepted(t, code, body)
	// The outage lasts until the message was tried three times (1 s, 2 s apart): longer
	// than stuck_after and two watchdog checks.
	r.eventually("three tries during the outage", func() bool {
		_, b := r.do("GET", "/api/v1/messages/"+id, "")
		var st struct{ Attempts int }
		json.Unmarshal([]byte(b), &st)
		return st.Attempts >= 3
	})
	s.Up()
	r.messageStatus(id, "sent")
	_, evs := r.do("GET", "/api/v1/events", "")
	_, dl := r.do("GET", "/api/v1/deadletters?queue=outbound", "")
	if strings.Contains(evs, `"queue": "outbound"`) && strings.Contains(evs, "QUEUE_STUCK") || strings.Contains(dl, id) {
		t.Fatalf("the outbound queue was taken for stuck:\n%s\n%s", evs, dl)
	}
}
