package daemon

import (
	"strings"
	"testing"
)

// Silences take the durations policies take (1d) and refuse a matcher key no alert can
// carry (before: `colour` was accepted and silenced nothing; `1d` was refused), in a
// message that starts with the problem (before: "invalid: bad silence: matchers: …").
func TestSilenceMatchersAndDurations(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"matchers":{"policy":"custom-*"},"duration":"1d","author":"ops"}`, 201, `"author": "ops"`},
		{`{"matchers":{"part":"cache","severity":"error"},"duration":"90m","author":"ops"}`, 201, `"part": "cache"`},
		{`{"matchers":{"colour":"red"},"duration":"2h","author":"ops"}`, 422,
			`"message": "matchers: unknown key \"colour\": it would never match (known: policy, severity, instance, or a label: `},
		{`{"matchers":{"policy":"x"},"duration":"31d","author":"ops"}`, 422, "duration: like 30m, 2h or 1d, at most 30d"},
	} {
		code, body := r.do("POST", "/api/v1/silences", c.body)
		if code != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s", c.body, code, body)
		}
	}
}
