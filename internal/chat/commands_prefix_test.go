package chat

import "testing"

// The prefix edge cases: the default for an empty prefix, multi-character and
// multi-byte prefixes, the name right after the prefix (a space between, a bare prefix,
// a longer word, another prefix's command are the bot's), case-insensitive names,
// surrounding space.
func TestCommandPrefixEdges(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ prefix, text, want string }{
		{"", "!status", "status"},
		{"", "  !STATUS  ", "status"},
		{"", "!status now", "status"},
		{"", "! status", ""}, // before: remedy's
		{"", "!", ""},
		{"", "!!status", ""},
		{"", "!statusx", ""},
		{"", "/status", ""},
		{"/", "/help", "help"},
		{"/", "!help", ""},
		{"!remedy-", "!remedy-status", "status"},
		{"!remedy-", "!remedy- status", ""}, // before: remedy's
		{"!remedy-", "!REMEDY-status", ""},  // the prefix is matched exactly
		{"!remedy-", "!remedy-", ""},
		{"!remedy-", "!status", ""},
		{"¡", "¡alerts", "alerts"},
		{"🤖", "🤖report 1", "report"},
		{"🤖", "🤖 report", ""},
		{"रे", "रेpolicies", "policies"},
		{"रे", "र", ""}, // a prefix's first byte(s) only
	} {
		cm := &Commands{Prefix: c.prefix}
		if got := cm.Command(c.text); got != c.want {
			t.Errorf("prefix %q, %q: %q, want %q", c.prefix, c.text, got, c.want)
		}
	}
}
