package yamlerr

import (
	"fmt"
	"testing"

	"gopkg.in/yaml.v3"
)

// Each broken document with the position and message Locate must give.
func TestLocate(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"a: 1\nb: 2\nc: [1, 2\nd: 4\n", `3:4: "[" is not closed (expected ',' or ']')`},
		{"a: {b: 1\n", `1:4: "{" is not closed (expected ',' or '}')`},
		{"a: 1\n  b: 2\n", `2:3: mapping values are not allowed in this context`},
		{"a:\n\t- 1\n", `2:1: found character that cannot start any token`},
		{"- a\nb: 1\n", `2:1: did not find expected '-' indicator`},
		// yaml.v3 names the line where the list or mapping opened (2 and 2); the broken
		// line is the one that steps back to an indentation nothing opened.
		{"services:\n  - name: a\n    command: [x]\n   - name: b\n", `4:4: did not find expected '-' indicator`},
		{"whatsapp:\n  admins: [x]\n\n  # note\n enabled: true\n", `5:2: did not find expected key`},
		{"policies:\n  - name: wa\n    on: [WA_DISCONNECTED\n    severity: error\n", `3:9: "[" is not closed (expected ',' or ']')`},
	} {
		var n yaml.Node
		err := yaml.Unmarshal([]byte(tc.src), &n)
		if err == nil {
			t.Fatalf("%q parsed", tc.src)
		}
		line, col, msg := Locate([]byte(tc.src), err)
		if got := fmt.Sprintf("%d:%d: %s", line, col, msg); got != tc.want {
			t.Errorf("%q (%v):\n got %s\nwant %s", tc.src, err, got, tc.want)
		}
	}
}
