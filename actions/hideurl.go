package actions

import (
	"errors"
	"fmt"
	"net/url"
)

// HideURL keeps a URL's scheme and host only. Webhook URLs often carry their secret in
// the path or the query (Slack's and Discord's incoming webhooks do), and delivery
// errors end up in the log, the dashboard's outbox, ALERT_UNDELIVERED events and alert
// texts; net/url's own redaction hides only a password.
func HideURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "the configured URL"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// HideURLError returns err with the URL of an HTTP client's *url.Error shortened by
// HideURL; the cause stays wrapped (errors.Is still finds context.DeadlineExceeded).
func HideURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("%s %s: %w", ue.Op, HideURL(ue.URL), ue.Err)
}
