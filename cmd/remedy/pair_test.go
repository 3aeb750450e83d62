package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// `remedy pair` against the fake server: the QR code and the phone code are printed;
// when the server stops offering codes the command says so and exits 1.
func TestPairPrintsCodesAndReportsTimeout(t *testing.T) {
	s, err := wafake.New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pairHTTPClient = s.HTTPClient()
	defer func() { pairHTTPClient = nil }()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "remedy.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), []string{"pair", "--config", cfg, "--phone", "+44 7700 900123"}, nil, &stdout, &stderr)
	}()
	waitFor(t, "the phone code", func() bool { return strings.Contains(stdout.String(), "Link with phone number") })
	out := stdout.String()
	if !strings.Contains(out, "Scan with WhatsApp") || !strings.ContainsAny(out, "▀▄█") {
		t.Fatalf("no QR code in\n%s", out)
	}
	if s.LinkPhone() != "447700900123" {
		t.Fatalf("server saw %q", s.LinkPhone())
	}
	s.DropAll()
	if code := <-done; code != exitFailed || !strings.Contains(stderr.String(), "pairing timed out") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "whatsapp.db")); err != nil {
		t.Fatalf("device store: %v", err)
	}
}
