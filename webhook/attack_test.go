package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"
)

// Forgeries Read must refuse. An unset variable read with os.Getenv is an empty,
// non-nil secret: before, Read checked with it, so anyone could sign with the empty key
// and be believed. A timestamp header that is not plain digits ("+1800000000",
// " 1800000000") verified against the digits' signature, which a by-hand verifier
// (HMAC over the header's text) computes differently. A signature for another body,
// a stale or future timestamp, a missing header: refused, each with its error.
func TestReadRefusesForgeries(t *testing.T) {
	body := []byte(`{"type":"message","id":"3EB0A","from":"6281100000077","chat":"6281100000077@s.whatsapp.net","text":"hi","time":"2026-11-30T09:00:00Z","kind":"text"}`)
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	emptyKey := func(ts string, b []byte) string {
		m := hmac.New(sha256.New, nil)
		m.Write([]byte(ts + "."))
		m.Write(b)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	secret := []byte("s3cret")
	for _, c := range []struct {
		name, ts, sig string
		secret        []byte
		body          []byte
		want          error
	}{
		{"empty-key forgery, unset variable", ts, emptyKey(ts, body), []byte(os.Getenv("REMEDY_TEST_SURELY_UNSET")), body, ErrEmptySecret},
		{"signed, right secret", ts, Sign(secret, now, body), secret, body, nil},
		{"plus sign", "+" + ts, Sign(secret, now, body), secret, body, ErrStale},
		{"leading space", " " + ts, Sign(secret, now, body), secret, body, ErrStale},
		{"another body", ts, Sign(secret, now, []byte(`{}`)), secret, body, ErrBadSignature},
		{"six minutes old", strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10), Sign(secret, now.Add(-6*time.Minute), body), secret, body, ErrStale},
		{"six minutes ahead", strconv.FormatInt(now.Add(6*time.Minute).Unix(), 10), Sign(secret, now.Add(6*time.Minute), body), secret, body, ErrStale},
		{"year 292 billion", "9223372036854775807", sign(secret, "9223372036854775807", body), secret, body, ErrStale},
		{"no timestamp", "", Sign(secret, now, body), secret, body, ErrStale},
		{"no signature", ts, "", secret, body, ErrNoSignature},
		{"upper-case hex", ts, "sha256=" + string(bytes.ToUpper([]byte(Sign(secret, now, body)[7:]))), secret, body, ErrBadSignature},
	} {
		r := httptest.NewRequest("POST", "/hook", bytes.NewReader(c.body))
		if c.ts != "" {
			r.Header.Set(TimestampHeader, c.ts)
		}
		if c.sig != "" {
			r.Header.Set(SignatureHeader, c.sig)
		}
		_, err := Read(r, c.secret)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Over MaxBody: refused before any check.
	r := httptest.NewRequest("POST", "/hook", bytes.NewReader(make([]byte, MaxBody+1)))
	if _, err := Read(r, nil); err == nil {
		t.Error("a body over MaxBody was read")
	}
}
