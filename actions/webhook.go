package actions

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// SignatureHeader carries the HMAC-SHA256 of a webhook's body: "sha256=<hex>".
const SignatureHeader = "X-Remedy-Signature"

// Sign returns the signature header value for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
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

func webhook(ctx context.Context, d Deps, p Params) error {
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
		req.Header.Set(SignatureHeader, Sign([]byte(secret), body))
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
