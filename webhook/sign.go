package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	// TimestampHeader is the time of the attempt, in Unix seconds.
	TimestampHeader = "X-Remedy-Timestamp"
	// SignatureHeader is "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)),
	// present when a secret is configured: remedy's one signature scheme, on every
	// webhook it posts (whatsapp.handler, alerts.webhook, the WEBHOOK action), so Read
	// and Verify check any of them.
	SignatureHeader = "X-Remedy-Signature-V2"
	// LegacySignatureHeader is the first scheme, "sha256=" + hex(HMAC-SHA256(secret,
	// body)) without a timestamp (a captured request can be replayed at any time). The
	// alert webhook and the WEBHOOK action still send it beside SignatureHeader, for
	// receivers written before; the handler's deliveries never carry it. Verify does not
	// accept it.
	LegacySignatureHeader = "X-Remedy-Signature"
	// DeliveryHeader is the delivery's id: the same on every retry of one delivery, so
	// a handler that saw it already can answer 200 without acting twice.
	DeliveryHeader = "X-Remedy-Delivery"
	// SessionHeader names the remedy session (the bot's WhatsApp number) a delivery
	// comes from, as its body's "session" does.
	SessionHeader = "X-Remedy-Session"
)

// DefaultTolerance is how far a delivery's timestamp may be from the receiver's clock
// (Read's tolerance 0): five minutes, the window Stripe and Slack use for the same
// replay protection.
const DefaultTolerance = 5 * time.Minute

// MaxBody is the largest delivery Read accepts (1 MiB; a message is a few KiB).
const MaxBody = 1 << 20

// Errors Read returns (wrapped).
var (
	ErrNoSignature  = errors.New("webhook: no signature")
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrStale        = errors.New("webhook: timestamp outside the tolerance")
	// ErrEmptySecret: a secret of length 0 would accept a signature anyone can make (an
	// unset variable read with os.Getenv); pass nil to skip the check on purpose.
	ErrEmptySecret = errors.New("webhook: the secret is empty (an unset variable?); nil skips the check")
)

// Sign returns the signature header's value for a body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	return sign(secret, strconv.FormatInt(ts.Unix(), 10), body)
}

func sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature and its timestamp header against body: the timestamp must
// be Unix seconds in decimal digits (as remedy writes it; the HMAC covers the header's
// text exactly, as a verifier in another language computes it) within tolerance of now
// (0: DefaultTolerance), and the signature must match, compared in constant time.
//
// The tolerance bounds replays to its window; within it a captured delivery can be sent
// again, with any X-Remedy-Delivery (that header is not signed): a handler that must act
// once keys on the signed body (a message's id, a send outcome's id and status).
// Errors: ErrEmptySecret, ErrNoSignature, ErrStale, ErrBadSignature.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return ErrEmptySecret
	}
	if signature == "" {
		return ErrNoSignature
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || strings.Trim(timestamp, "0123456789") != "" {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrStale, TimestampHeader, timestamp)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s is %v from now", ErrStale, TimestampHeader, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(signature), []byte(sign(secret, timestamp, body))) {
		return ErrBadSignature
	}
	return nil
}

// Read reads and verifies a delivery from r (secret nil: no check; empty:
// ErrEmptySecret, never a pass) and decodes it; at most MaxBody bytes are read. Answer
// 401 for a signature error (Verify's), 400 for a body that does not decode.
func Read(r *http.Request, secret []byte) (Event, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return Event{}, err
	}
	if len(body) > MaxBody {
		return Event{}, fmt.Errorf("webhook: body over %d bytes", MaxBody)
	}
	if secret != nil {
		if err := Verify(secret, r.Header.Get(TimestampHeader), r.Header.Get(SignatureHeader), body, time.Now(), 0); err != nil {
			return Event{}, err
		}
	}
	var e Event
	if err := e.UnmarshalJSON(body); err != nil {
		return Event{}, fmt.Errorf("webhook: %w", err)
	}
	return e, nil
}
