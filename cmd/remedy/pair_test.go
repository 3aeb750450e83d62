package main

import (
	"context"
	"errors"
	"net"
	"net/http"
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

// A number WhatsApp cannot send a code to is refused before anything is opened or
// dialled (before, `--phone 12` connected first and failed at the server).
func TestPairChecksThePhoneFirst(t *testing.T) {
	dials := 0
	pairHTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		return nil, errors.New("no network in this test")
	}}}
	defer func() { pairHTTPClient = nil }()
	dir := t.TempDir()
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+filepath.Join(dir, "data")+"\n")
	for phone, want := range map[string]string{
		"12":                `"12" is not a phone number WhatsApp can send a code to: 2 digits are too few; write it in international form, country code first (e.g. +49 151 23456789)`,
		"0151 2345678":      "it starts with 0, a national prefix",
		"+49 151 2345 678x": "only digits, spaces, dashes and a leading + are allowed",
		"+1234567890123456": "16 digits are too many (at most 15)",
	} {
		code, _, errs := run(t, "", "pair", "--config", cfg, "--phone", phone)
		if code != exitBadInput || !strings.Contains(errs, want) {
			t.Errorf("%q: %d %s", phone, code, errs)
		}
	}
	if dials != 0 {
		t.Fatalf("dialled %d times", dials)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Fatal("the device store was created for a refused number")
	}
}

// With WhatsApp unreachable, `remedy pair` says so in words with the next step (before,
// it printed only the Go error chain: "pairing: cannot reach WhatsApp: failed to dial …").
func TestPairUnreachableSaysWhatToDo(t *testing.T) {
	pairHTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, errors.New("lookup web.whatsapp.com: no such host")
	}}}
	defer func() { pairHTTPClient = nil }()
	dir := t.TempDir()
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+filepath.Join(dir, "data")+"\n")
	code, _, errs := run(t, "", "pair", "--config", cfg, "--phone", "+44 7700 900123")
	if code != exitFailed || !strings.HasPrefix(errs, "remedy pair: cannot reach WhatsApp's servers: this machine seems to have no internet access") ||
		!strings.Contains(errs, "Check the connection, then run remedy pair again.") || !strings.Contains(errs, "no such host") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}
