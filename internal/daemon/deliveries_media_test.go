package daemon

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"go.mau.fi/whatsmeow/proto/waE2E"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// GET /api/v1/incoming/{id}/media when WhatsApp cannot give the file: its media host
// failing is 502 with the code download_failed (the cause, not the URL), WhatsApp
// disconnected is 503 with Retry-After.
// (The 404 and 410 answers are in TestTypedWebhookWithMediaAndReceipts.)
func TestIncomingMediaUnavailable(t *testing.T) {
	t.Parallel()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) {}, "+6281100000009")
	ctx := context.Background()
	p, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000077")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	picture := bytes.Repeat([]byte("cat "), 500)
	img, err := s.PutImage(picture, "image/jpeg", "")
	if err != nil {
		t.Fatal(err)
	}
	var id string
	s.Each(func(fc *wafake.Conn) {
		n, err := p.PrepareMessage(ctx, r.d.sessions.Default().Conn().Client().Store, &waE2E.Message{ImageMessage: img})
		if err != nil {
			t.Fatal(err)
		}
		id = n.Attrs["id"].(string)
		if err := fc.Send(n); err != nil {
			t.Fatal(err)
		}
	})
	url := "/api/v1/incoming/" + id + "/media"
	r.eventually("the media reference kept", func() bool { code, _ := r.do("GET", url, ""); return code == 200 })

	s.FailMedia(http.StatusInternalServerError)
	code, body := r.do("GET", url, "")
	if code != http.StatusBadGateway || !strings.Contains(body, "download_failed") || strings.Contains(body, "mmg.whatsapp.net") {
		t.Fatalf("media host failing: %d %s", code, body)
	}
	s.FailMedia(0)
	if code, body := r.do("GET", url, ""); code != 200 || body != string(picture) {
		t.Fatalf("the media host back: %d", code)
	}

	s.Down()
	// remedy's own state (not the client's IsConnected, which races whatsmeow's socket close).
	r.eventually("WhatsApp disconnected", func() bool { return r.d.sessions.Default().Conn().State() != whatsapp.Connected })
	resp, err := http.Get(r.base + url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("disconnected: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
