package bot_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/bot"
)

// bot.Config's fields are held to the configuration file's rules: before, they were
// applied after the file was checked, so Listen "0.0.0.0:…" without a token exposed the
// API to other machines, and a CommandPrefix with a space (or a Unicode space the file
// check missed) made remedy's commands unreachable.
func TestConfigFieldsAreChecked(t *testing.T) {
	for _, c := range []struct {
		cfg  bot.Config
		want string
	}{
		{bot.Config{Listen: "0.0.0.0:0"}, "listen: 0.0.0.0:0 is reachable from other machines; set a token"},
		{bot.Config{CommandPrefix: "remedy "}, `whatsapp.command_prefix "remedy "`},
		{bot.Config{CommandPrefix: "!\u00a0"}, `whatsapp.command_prefix "!\u00a0"`},
		{bot.Config{CommandPrefix: "\u200b!"}, `whatsapp.command_prefix "\u200b!"`},
		{bot.Config{Admins: []string{"the boss"}}, `whatsapp.admins: "the boss" is not a phone number`},
	} {
		c.cfg.DataDir = filepath.Join(t.TempDir(), "data")
		_, err := bot.New(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), "bot.Config: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
