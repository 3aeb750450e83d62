package chat

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Backend is what the admin commands act on (the daemon).
type Backend interface {
	Status(ctx context.Context) string
	Alerts(ctx context.Context) string
	Ack(ctx context.Context, id int64, by string) error
	Silence(ctx context.Context, d time.Duration, policy, by string) (int64, error)
	Unsilence(ctx context.Context, id int64) error
	// Run starts an allowed action for an admin (by) who wrote to the session named
	// session; what it may act on is the backend's to decide.
	Run(ctx context.Context, session, action, target, by string) (string, error)
	Report(ctx context.Context) string
	Policies(ctx context.Context) string
	// Refused records a command from a number that is not an admin (the audit).
	Refused(ctx context.Context, from, text string)
}

// Commands answers remedy's own admin commands: a message from an admin number that is
// the prefix ("!" by default) followed by one of remedy's command names (Names). Every
// other message is the bot's, including a customer's "!menu" and an admin's unknown
// "!command": many bots have "!" commands of their own, and remedy must not swallow them.
// One of remedy's command names from a number that is not an admin is recorded
// (Backend.Refused) and handed to the bot too.
type Commands struct {
	Prefix  string   // default "!"; whatsapp.command_prefix
	Admins  []string // phone numbers
	Allowed []string // actions `run` may start
	Session string   // the session (number) the commands arrive through
	Backend Backend
}

// Names are remedy's command names; a prefixed word outside this list is the bot's.
var Names = []string{"help", "status", "alerts", "ack", "silence", "unsilence", "run", "report", "policies"}

const help = `remedy commands:
!status — connection, database, what fires
!alerts — recent alerts (ids for ack)
!ack ID — acknowledge an alert
!silence DURATION [policy] — e.g. !silence 2h wa-flapping (all policies if none)
!unsilence ID — end a silence
!run ACTION [target] — run an allowed recovery action now
!report — the daily report now
!policies — what fires, and where
!help — this`

// Command returns the command name ("status", …) if text is one of remedy's commands
// with this prefix, else "".
func (c *Commands) Command(text string) string {
	prefix := c.Prefix
	if prefix == "" {
		prefix = "!"
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), prefix)
	if r, _ := utf8.DecodeRuneInString(rest); !ok || rest == "" || unicode.IsSpace(r) {
		// The name follows the prefix directly: "! status" and a bare "!" are the bot's.
		return ""
	}
	f := strings.Fields(rest)
	name := strings.ToLower(f[0])
	if !contains(Names, name) {
		return ""
	}
	return name
}

// Handle answers m if it is one of remedy's commands from an admin. handled is false for
// every other message, which goes to the bot's handler.
func (c *Commands) Handle(ctx context.Context, m Message) (reply string, handled bool) {
	if c.Command(m.Text) == "" {
		return "", false
	}
	text := strings.TrimSpace(m.Text)
	if !c.isAdmin(m.From) {
		// Recorded (someone tried remedy's command), answered by nobody but the bot.
		c.Backend.Refused(ctx, m.From, text)
		return "", false
	}
	prefix := c.Prefix
	if prefix == "" {
		prefix = "!"
	}
	f := strings.Fields(strings.TrimPrefix(text, prefix))
	by := "+" + Digits(m.From)
	switch strings.ToLower(f[0]) {
	case "help":
		return strings.ReplaceAll(help, "\n!", "\n"+prefix), true
	case "status":
		return c.Backend.Status(ctx), true
	case "alerts":
		return c.Backend.Alerts(ctx), true
	case "report":
		return c.Backend.Report(ctx), true
	case "policies":
		return c.Backend.Policies(ctx), true
	case "ack":
		id, err := idArg(f)
		if err != nil {
			return "usage: !ack ID (see !alerts)", true
		}
		if err := c.Backend.Ack(ctx, id, by); err != nil {
			return "ack failed: " + err.Error(), true
		}
		return fmt.Sprintf("alert #%d acknowledged; no more repeats until it resolves or gets worse", id), true
	case "silence":
		if len(f) < 2 {
			return "usage: !silence DURATION [policy], e.g. !silence 2h wa-flapping", true
		}
		d, err := time.ParseDuration(f[1])
		if err != nil || d <= 0 || d > 30*24*time.Hour {
			return "the duration is like 30m or 2h (at most 720h)", true
		}
		policy := "*"
		if len(f) > 2 {
			policy = f[2]
		}
		id, err := c.Backend.Silence(ctx, d, policy, by)
		if err != nil {
			return "silence failed: " + err.Error(), true
		}
		return fmt.Sprintf("silence #%d: alerts of %s held for %v (!unsilence %d to end it)", id, policy, d, id), true
	case "unsilence":
		id, err := idArg(f)
		if err != nil {
			return "usage: !unsilence ID", true
		}
		if err := c.Backend.Unsilence(ctx, id); err != nil {
			return "unsilence failed: " + err.Error(), true
		}
		return fmt.Sprintf("silence #%d ended", id), true
	case "run":
		if len(f) < 2 {
			return "usage: !run ACTION [target]; allowed: " + c.allowed(), true
		}
		action := strings.ToUpper(f[1])
		if !contains(c.Allowed, action) {
			return fmt.Sprintf("%s is not allowed from the chat; allowed: %s", action, c.allowed()), true
		}
		target := ""
		if len(f) > 2 {
			target = f[2]
		}
		out, err := c.Backend.Run(ctx, c.Session, action, target, by)
		if err != nil {
			return fmt.Sprintf("%s failed: %v", action, err), true
		}
		return out, true
	}
	return "", false // not reached: Command checked the name
}

func (c *Commands) isAdmin(from string) bool {
	d := Digits(from)
	if d == "" {
		return false
	}
	for _, a := range c.Admins {
		if Digits(a) == d {
			return true
		}
	}
	return false
}

func (c *Commands) allowed() string {
	if len(c.Allowed) == 0 {
		return "none (whatsapp.allowed_actions)"
	}
	a := append([]string(nil), c.Allowed...)
	sort.Strings(a)
	return strings.Join(a, ", ")
}

func idArg(f []string) (int64, error) {
	if len(f) < 2 {
		return 0, fmt.Errorf("no id")
	}
	return strconv.ParseInt(strings.TrimPrefix(f[1], "#"), 10, 64)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
