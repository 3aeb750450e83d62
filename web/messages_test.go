package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeMessages accepts what has a recipient and refuses media as the real backend
// classifies it (type by the "mime" given, size by the limit).
type fakeMessages struct {
	mu   sync.Mutex
	sent []OutgoingMessage
}

func (f *fakeMessages) Send(ctx context.Context, m OutgoingMessage) (MessageAccepted, error) {
	if m.To == "" {
		return MessageAccepted{}, fmt.Errorf("%w: to: a phone number", ErrInvalid)
	}
	if m.Media != nil && m.Media.MIME == "video/x-msvideo" {
		return MessageAccepted{}, &Error{Status: 415, Code: "unsupported_media_type", Message: "unknown media type"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	return MessageAccepted{ID: fmt.Sprintf("3EB0%d", len(f.sent)), Status: "queued"}, nil
}

func (f *fakeMessages) MessageStatus(ctx context.Context, id string) (MessageStatus, error) {
	return MessageStatus{}, fmt.Errorf("%w: %s", ErrNotFound, id)
}

func (f *fakeMessages) SaveMedia(ctx context.Context, m MediaIn) (MediaUpload, error) {
	return MediaUpload{ID: strings.Repeat("a", 64), MIME: m.MIME, Size: int64(len(m.Data))}, nil
}

func messagesServer(max int64) (*fakeMessages, *Server) {
	fm := &fakeMessages{}
	return fm, NewServer(Options{Backend: &fake{}, Hub: NewHub(), ListenHost: "127.0.0.1", Messages: fm, MaxMedia: max})
}

// The send API's own rules before the backend: the media limit's 413 names it; an
// upload takes its file's type, but the types a page may send without a preflight only
// from a program; a repeated Idempotency-Key header must agree with the body; with
// WhatsApp off, every route is 404.
func TestSendRoutes(t *testing.T) {
	fm, s := messagesServer(1000)
	do := func(method, path, body string, hdr ...string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Host = "127.0.0.1:8080"
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	big := fmt.Sprintf(`{"to": "62811", "media": {"data": %q}}`, strings.Repeat("QUFB", 400)) // 1,200 bytes
	cases := []struct {
		method, path, body string
		hdr                []string
		code               int
		want               string
	}{
		{"POST", "/api/v1/messages", `{"to": "62811", "text": "hi"}`, nil, 202, `"id": "3EB01"`},
		{"POST", "/api/v1/messages", `{"text": "hi"}`, nil, 422, "to: a phone number"},
		{"POST", "/api/v1/messages", big, nil, 413, "limit of 1000 bytes"},
		{"POST", "/api/v1/messages", `{"to": "62811", "media": {"data": "AAAA", "mime": "video/x-msvideo"}}`, nil, 415, "unknown media type"},
		{"POST", "/api/v1/messages", `{"to": "62811", "text": "x", "idempotency_key": "a"}`, []string{"Idempotency-Key", "b"}, 422, "differ"},
		{"POST", "/api/v1/media", strings.Repeat("x", 1001), []string{"Content-Type", "application/pdf"}, 413, "limit of 1000 bytes"},
		{"POST", "/api/v1/media", "%PDF", []string{"Content-Type", "application/pdf"}, 201, `"size": 4`},
		{"POST", "/api/v1/media", "hello", []string{"Content-Type", "text/plain"}, 201, `"mime": "text/plain"`},
		{"POST", "/api/v1/media", "hello", []string{"Content-Type", "text/plain", "Sec-Fetch-Site", "same-origin"}, 415, "JSON body"},
		{"POST", "/api/v1/media", "a=b", []string{"Content-Type", "multipart/form-data; boundary=x", "Origin", "http://127.0.0.1:8080"}, 415, "JSON body"},
		{"GET", "/api/v1/messages/3EB0X", "", nil, 404, "not_found"},
	}
	for _, c := range cases {
		code, body := do(c.method, c.path, c.body, c.hdr...)
		if code != c.code || !strings.Contains(body, c.want) || !json.Valid([]byte(body)) {
			t.Errorf("%s %s %.60s: %d %s, want %d with %q", c.method, c.path, c.body, code, body, c.code, c.want)
		}
	}
	if len(fm.sent) != 1 {
		t.Fatalf("the backend got %d messages", len(fm.sent))
	}
	off := NewServer(Options{Backend: &fake{}, Hub: NewHub(), ListenHost: "127.0.0.1"})
	for _, p := range []string{"/api/v1/messages", "/api/v1/media"} {
		req := httptest.NewRequest("POST", p, strings.NewReader(`{"to": "1"}`))
		req.Host = "127.0.0.1"
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		off.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "whatsapp_off") {
			t.Errorf("WhatsApp off, %s: %d %s", p, rec.Code, rec.Body)
		}
	}
}

// Any body to POST /api/v1/messages gets a JSON answer with one of its statuses (never
// a panic or a 5xx).
func FuzzMessages(f *testing.F) {
	for _, seed := range []string{`{"to":"62811","text":"hi"}`, `{"to":"62811","media":{"data":"AAAA"}}`, `{"to":1}`, `[]`,
		`{"to":"62811","reaction":{"message_id":"A","emoji":"x"}}`, `{"to":"62811","media":{"data":"!!"}}`,
		`{"to":"62811","text":"hi","session":"sales"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, s := messagesServer(1 << 20)
		fuzzPost(t, s, "/api/v1/messages", body, 202, 400, 413, 415, 422)
	})
}
