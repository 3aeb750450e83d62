package daemon

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/internal/config"
)

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// dataMaps hold the operator's or the bot's own keys (label names, metric names, action
// parameters), not the API's.
var dataMaps = map[string]bool{"labels": true, "sample": true, "values": true, "annotations": true, "with": true,
	"identifiers": true, "params": true, "matchers": true}

// Every key of every JSON answer of the API is snake_case (before, services[] in
// /api/v1/status carried Go field names: Name, Up, LastExit).
func TestAPIKeysAreSnakeCase(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) {
		c.Services = []config.Service{{Name: "bot", Command: []string{"sleep", "3600"}}}
	})
	r.do("POST", "/api/v1/events", `{"code":"CUSTOM_FAULT","labels":{"part":"x"}}`)
	r.do("POST", "/api/v1/samples", `{"values":{"burn":9}}`)
	r.do("POST", "/api/v1/silences", `{"matchers":{"policy":"slow-burn"},"duration":"1h","author":"ops","reason":"test"}`)
	r.eventually("the action", func() bool {
		_, b := r.do("GET", "/api/v1/actions", "")
		return strings.Contains(b, "EXEC")
	})
	r.eventually("the service up", func() bool {
		_, b := r.do("GET", "/api/v1/status", "")
		return strings.Contains(strings.ToLower(b), `"up": true`)
	})
	for _, path := range []string{"/api/v1/status", "/api/v1/policies", "/api/v1/alerts", "/api/v1/silences", "/api/v1/events",
		"/api/v1/decisions", "/api/v1/actions", "/api/v1/deadletters", "/api/v1/outbox", "/api/v1/history?since=1h"} {
		code, body := r.do("GET", path, "")
		if code != 200 {
			t.Errorf("%s: %d %s", path, code, body)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		walkKeys(t, path, v)
	}
	code, body := r.do("POST", "/api/v1/policies/custom-fault/try", `{"event":{"code":"CUSTOM_FAULT","labels":{"part":"x"}}}`)
	var v any
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("try: %d %s", code, body)
	}
	walkKeys(t, "try", v)
}

func walkKeys(t *testing.T, at string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			if !snakeCase.MatchString(k) {
				t.Errorf("%s: key %q is not snake_case", at, k)
			}
			if !dataMaps[k] {
				walkKeys(t, at+"."+k, sub)
			}
		}
	case []any:
		for _, sub := range v {
			walkKeys(t, at+"[]", sub)
		}
	}
}
