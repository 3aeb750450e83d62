package whatsapp

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"go.mau.fi/whatsmeow/types"
)

func openUnpaired(t *testing.T, s *wafake.Server, rec *recorder) *Conn {
	t.Helper()
	c, err := Open(context.Background(), Options{StorePath: filepath.Join(t.TempDir(), "whatsapp.db"), Events: rec.add,
		HTTPClient: s.HTTPClient(), Watchdog: time.Hour, Probe: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type pairRun struct {
	codes chan PairCode
	done  chan error
}

func startPair(c *Conn, ctx context.Context, phone string) *pairRun {
	p := &pairRun{codes: make(chan PairCode, 16), done: make(chan error, 1)}
	go func() { p.done <- c.Pair(ctx, phone, func(pc PairCode) { p.codes <- pc }) }()
	return p
}

func (p *pairRun) next(t *testing.T) PairCode {
	t.Helper()
	select {
	case pc := <-p.codes:
		return pc
	case err := <-p.done:
		t.Fatalf("pairing ended before a code: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no pairing code")
	}
	return PairCode{}
}

func (p *pairRun) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("pairing did not end")
	}
	return nil
}

// The server offers pairing refs; the operator is shown a QR code built from the first
// (ref, noise key, identity key, adv secret); when the server gives up, Pair says so.
func TestPairQRThenTimeout(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	c := openUnpaired(t, s, rec)
	p := startPair(c, context.Background(), "")
	pc := p.next(t)
	parts := strings.Split(pc.QR, ",")
	if len(parts) != 4 || parts[0] != "ref-1" || pc.Phone != "" {
		t.Fatalf("QR %q", pc.QR)
	}
	if c.QR() != pc.QR || c.State() != Pairing {
		t.Fatalf("while pairing: QR() %q, state %s", c.QR(), c.State())
	}
	s.DropAll() // the server stops offering codes
	if err := p.result(t); !errors.Is(err, ErrPairTimeout) {
		t.Fatalf("got %v, want ErrPairTimeout", err)
	}
	if c.QR() != "" || c.State() != Unpaired {
		t.Fatalf("after: QR() %q, state %s", c.QR(), c.State())
	}
	for _, code := range rec.codes() {
		if code == "WA_DISCONNECTED" {
			t.Fatal("the end of a pairing attempt was reported as an outage")
		}
	}
	if s.Registrations() != 1 || s.Logins() != 0 {
		t.Fatalf("registrations %d, logins %d", s.Registrations(), s.Logins())
	}
}

// With a phone number, the operator also gets an 8-character code and the server sees
// the number in international form.
func TestPairPhoneCode(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	c := openUnpaired(t, s, newRecorder())
	ctx, cancel := context.WithCancel(context.Background())
	p := startPair(c, ctx, "+49 151 2345678")
	if pc := p.next(t); pc.QR == "" {
		t.Fatalf("first a QR code, got %+v", pc)
	}
	pc := p.next(t)
	if !regexp.MustCompile(`^[A-Z0-9]{4}-[A-Z0-9]{4}$`).MatchString(pc.Phone) {
		t.Fatalf("phone code %q", pc.Phone)
	}
	if s.LinkPhone() != "491512345678" {
		t.Fatalf("server saw %q", s.LinkPhone())
	}
	cancel()
	if err := p.result(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestPairRefusals(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	c := openUnpaired(t, s, newRecorder())
	err := c.Pair(context.Background(), "0151 234", func(PairCode) {})
	if err == nil || !strings.Contains(err.Error(), "0151 234") {
		t.Fatalf("a local number: %v", err)
	}
	paired := open(t, s, newRecorder())
	if err := paired.Pair(context.Background(), "", func(PairCode) {}); err == nil || !strings.Contains(err.Error(), "already paired") {
		t.Fatalf("paired store: %v", err)
	}
}

// The whole link: the "phone" scans the QR code and signs the device; whatsmeow checks
// the ADV HMAC and the account signature, confirms, and logs in as the new device after
// the server's 515 restart. Pair returns nil and the connection is up.
func TestPairSuccessThenConnected(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	c := openUnpaired(t, s, rec)
	p := startPair(c, context.Background(), "")
	pc := p.next(t)
	jid := types.NewADJID("6281100000001", 0, 7)
	s.Each(func(fc *wafake.Conn) {
		if err := fc.PairSuccess(pc.QR, jid); err != nil {
			t.Error(err)
		}
	})
	if err := p.result(t); err != nil {
		t.Fatalf("pairing: %v", err)
	}
	rec.wait(t, "WA_PAIR_SUCCESS")
	rec.wait(t, "WA_CONNECTED")
	if id := c.Client().Store.ID; id == nil || id.User != "6281100000001" || c.State() != Connected {
		t.Fatalf("after pairing: id %v, state %s", id, c.State())
	}
	if s.Logins() != 1 || s.Registrations() != 1 {
		t.Fatalf("logins %d, registrations %d", s.Logins(), s.Registrations())
	}
	if err := c.Pair(context.Background(), "", func(PairCode) {}); err == nil {
		t.Fatal("pairing again while paired")
	}
}

// A pair-success not signed with this device's ADV secret (a forged or stale phone
// answer) is refused by whatsmeow, and Pair says why.
func TestPairRefusesAForgedIdentity(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	c := openUnpaired(t, s, rec)
	p := startPair(c, context.Background(), "")
	parts := strings.Split(p.next(t).QR, ",")
	parts[3] = base64.StdEncoding.EncodeToString(make([]byte, 32)) // the wrong secret
	s.Each(func(fc *wafake.Conn) { fc.PairSuccess(strings.Join(parts, ","), types.NewADJID("6281100000001", 0, 7)) })
	err := p.result(t)
	if err == nil || !strings.Contains(err.Error(), "HMAC") {
		t.Fatalf("got %v", err)
	}
	if c.Client().Store.ID != nil || c.State() != Unpaired {
		t.Fatalf("after a forged pairing: id %v, state %s", c.Client().Store.ID, c.State())
	}
	rec.wait(t, "WA_PAIR_ERROR")
}
