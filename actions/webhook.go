package actions

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	remedyhook "github.com/remedy-run/remedy/webhook"
)

// SignatureHeader carries the first scheme's HMAC-SHA256 of a webhook's body alone:
// "sha256=<hex>" (webhook.LegacySignatureHeader), kept for receivers written before.
const SignatureHeader = remedyhook.LegacySignatureHeader

// Sign returns the first scheme's signature header value for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// SignHeaders signs a webhook's body as every remedy webhook is signed:
// X-Remedy-Timestamp with webhook.SignatureHeader (HMAC over timestamp.body, checked by
// webhook.Verify, bounded replays), and the first scheme's body-only SignatureHeader
// beside it, so receivers written for either verify.
func SignHeaders(h http.Header, secret, body []byte, now time.Time) {
	h.Set(remedyhook.TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	h.Set(remedyhook.SignatureHeader, remedyhook.Sign(secret, now, body))
	h.Set(SignatureHeader, Sign(secret, body))
}

// webhookPayload is what WEBHOOK posts.
type webhookPayload struct {
	Time     time.Time         `json:"time"`
	Policy   string            `json:"policy"`
	Instance string            `json:"instance,omitempty"`
	Severity string            `json:"severity,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Step     int               `json:"step,omitempty"`
	Attempt  int               `json:"attempt,omitempty"`
	Reason   string            `json:"reason,omitempty"`
}

// ErrURLNotAllowed is a WEBHOOK whose url came from a template (event data) and names
// a host outside Deps.WebhookHosts, or is not http(s): refused before anything is sent
// (issue 26, A16: an event's label made remedy post to 127.0.0.1's admin API). The
// audit records the attempt as failed with this error.
var ErrURLNotAllowed = errors.New("webhook url not allowed")

// checkTemplatedURL checks a WEBHOOK url rendered from a template against allowed.
func checkTemplatedURL(raw string, allowed []string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%w: the url comes from a template and is not a plain http(s) URL; nothing was sent", ErrURLNotAllowed)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	for _, a := range allowed {
		a = strings.ToLower(a)
		if a == host || (strings.HasPrefix(a, ".") && strings.HasSuffix(host, a)) {
			return nil
		}
	}
	return fmt.Errorf("%w: the url comes from a template and its host %q is not in webhook_hosts (remedy.yaml); nothing was sent", ErrURLNotAllowed, host)
}

func webhook(ctx context.Context, d Deps, p Params) error {
	if dec, ok := DecisionFrom(ctx); ok && dec.Action != nil && slices.Contains(dec.Action.Templated, "url") {
		if err := checkTemplatedURL(p["url"], d.WebhookHosts); err != nil {
			return err
		}
	}
	pl := webhookPayload{Time: time.Now().UTC()}
	if dec, ok := DecisionFrom(ctx); ok {
		pl.Time, pl.Policy, pl.Instance, pl.Severity, pl.Labels = dec.Time.UTC(), dec.Policy, dec.Instance, string(dec.Severity), dec.Labels
		pl.Reason = dec.Reason.String()
		if dec.Action != nil {
			pl.Step, pl.Attempt = dec.Action.Step, dec.Action.Attempt
		}
	}
	body, err := json.Marshal(pl)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p["url"], bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "remedy")
	if name := p["secret_env"]; name != "" {
		secret := d.Getenv(name)
		if secret == "" {
			return fmt.Errorf("secret_env %s is empty", name)
		}
		SignHeaders(req.Header, []byte(secret), body, time.Now())
	}
	resp, err := d.HTTP.Do(req)
	if err != nil {
		return HideURLError(err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	fmt.Fprintf(Output(ctx), "%s %s\n%s", req.Method, resp.Status, snippet)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
