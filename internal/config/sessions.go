package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/remedy-run/remedy/policies"
)

// DefaultSession is the name of the session the `whatsapp:` block configures when the
// configuration lists no `sessions:` (its store, queues and spool keep their old names).
const DefaultSession = "default"

// SessionNameRE is what a session's name matches.
var SessionNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// SessionConfig is one entry of `sessions:`: a WhatsApp number. A key it leaves out is
// inherited from `whatsapp:` (admins, handler, allowed_actions, command_prefix; each
// key of send whose value is 0).
type SessionConfig struct {
	Name           string   `yaml:"name"`
	Store          string   `yaml:"store"` // default DATA_DIR/sessions/NAME/whatsapp.db ("default": DATA_DIR/whatsapp.db)
	Handler        *Handler `yaml:"handler"`
	Admins         []string `yaml:"admins"`
	AllowedActions []string `yaml:"allowed_actions"`
	CommandPrefix  *string  `yaml:"command_prefix"`
	Send           *Send    `yaml:"send"`
}

// Session is one WhatsApp number as remedy runs it: its name, its device store's
// resolved path, and the `whatsapp:` settings it inherited or overrode.
type Session struct {
	Name  string
	Store string // resolved: never empty
	WhatsApp
}

// Sessions is the effective list of sessions, in the configuration's order: exactly the
// `sessions:` when listed, else the one session "default" (the `whatsapp:` block);
// none when WhatsApp is off (whatsapp.enabled false).
func (c *Config) Sessions() []Session {
	if !c.WhatsApp.Enabled {
		return nil
	}
	if len(c.SessionList) == 0 {
		return []Session{{Name: DefaultSession, Store: c.WhatsAppStore(), WhatsApp: c.WhatsApp}}
	}
	out := make([]Session, 0, len(c.SessionList))
	for _, sc := range c.SessionList {
		s := Session{Name: sc.Name, Store: c.storeOf(sc), WhatsApp: c.WhatsApp}
		s.WhatsApp.Store = s.Store
		if sc.Handler != nil {
			s.Handler = sc.Handler
		}
		if sc.Admins != nil {
			s.Admins = sc.Admins
		}
		if sc.AllowedActions != nil {
			s.AllowedActions = sc.AllowedActions
		}
		if sc.CommandPrefix != nil {
			s.CommandPrefix = *sc.CommandPrefix
		}
		if sc.Send != nil {
			s.Send = mergeSend(c.WhatsApp.Send, *sc.Send)
		}
		out = append(out, s)
	}
	return out
}

// mergeSend is base with each field of over that is not zero.
func mergeSend(base, over Send) Send {
	b, o := reflect.ValueOf(&base).Elem(), reflect.ValueOf(over)
	for i := range o.NumField() {
		if !o.Field(i).IsZero() {
			b.Field(i).Set(o.Field(i))
		}
	}
	return base
}

// storeOf is a session's device store: its store, else whatsapp.store (or
// DATA_DIR/whatsapp.db) for "default" and DATA_DIR/sessions/NAME/whatsapp.db for the
// others.
func (c *Config) storeOf(sc SessionConfig) string {
	switch {
	case sc.Store != "":
		return sc.Store
	case sc.Name == DefaultSession:
		return c.WhatsAppStore()
	}
	return filepath.Join(c.DataDir, "sessions", sc.Name, "whatsapp.db")
}

// remedyFile says whether abs is one of remedy's own databases in the data directory
// (store.RemedyFile, store.MetricsFile): a device store there would write WhatsApp's
// keys into remedy.db, and a store found damaged would be moved aside with it.
func (c *Config) remedyFile(abs string) bool {
	for _, f := range []string{"remedy.db", "monitoring_metrics.sqlite"} {
		if p, err := filepath.Abs(filepath.Join(c.DataDir, f)); err == nil && p == abs {
			return true
		}
	}
	return false
}

// validateSessions checks `sessions:`: names, duplicates, two sessions on one store,
// and each override as `whatsapp:`'s own keys are checked.
func (c *Config) validateSessions(bad func(path, format string, args ...any)) {
	if len(c.SessionList) == 0 && c.WhatsApp.Store != "" {
		if abs, err := filepath.Abs(c.WhatsApp.Store); err == nil && c.remedyFile(abs) {
			bad("whatsapp.store", "whatsapp.store: %s is one of remedy's own databases, not a device store", c.WhatsApp.Store)
		}
	}
	names := map[string]bool{}
	stores := map[string]string{}
	for i, sc := range c.SessionList {
		p := fmt.Sprintf("sessions[%d]", i)
		switch {
		case sc.Name == "":
			bad(p, "%s: a session needs a name", p)
			continue
		case !SessionNameRE.MatchString(sc.Name):
			bad(p+".name", "%s.name: %q is not a session name (lower-case letters, digits, - and _, at most 32, starting with a letter or digit)", p, sc.Name)
		case names[sc.Name]:
			bad(p+".name", "%s.name: session %q is listed twice", p, sc.Name)
			continue
		}
		names[sc.Name] = true
		store := c.storeOf(sc)
		abs, err := filepath.Abs(store)
		if err != nil {
			abs = store
		}
		if other, ok := stores[abs]; ok {
			bad(p+".store", "%s.store: sessions %q and %q would share the device store %s (one number per store)", p, other, sc.Name, store)
		}
		if c.remedyFile(abs) {
			bad(p+".store", "%s.store: %s is one of remedy's own databases, not a device store", p, store)
		}
		stores[abs] = sc.Name
		for j, a := range sc.Admins {
			if !phoneRE.MatchString(strings.TrimSpace(a)) {
				bad(fmt.Sprintf("%s.admins[%d]", p, j), "%s.admins: %q is not a phone number (digits, optional +)", p, a)
			}
		}
		if sc.CommandPrefix != nil {
			if pr := *sc.CommandPrefix; pr != "" && (strings.IndexFunc(pr, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 ||
				!utf8.ValidString(pr) || len(pr) > 16) {
				bad(p+".command_prefix", "%s.command_prefix %q: a word without spaces, at most 16 bytes (\"!\", \"/\", \"!remedy-\")", p, pr)
			}
		}
		if sc.Send != nil {
			sc.Send.check(func(key, format string, args ...any) {
				key = p + strings.TrimPrefix(key, "whatsapp")
				bad(key, "%s", strings.ReplaceAll(fmt.Sprintf(format, args...), "whatsapp.send", p+".send"))
			})
		}
		if sc.Handler != nil {
			checkEndpoint(bad, p+".handler", sc.Handler.Endpoint())
		}
		checkActions(bad, p+".allowed_actions", sc.AllowedActions)
	}
}

// sessionQueue says whether name is a queue of a configured session other than the
// default ("inbound_sales", "outbound_sales").
func (c *Config) sessionQueue(name string) bool {
	for _, s := range c.SessionList {
		if s.Name != DefaultSession && (name == "inbound_"+s.Name || name == "outbound_"+s.Name) {
			return true
		}
	}
	return false
}

// checkEndpoint reports an endpoint whose URL is not http(s).
func checkEndpoint(bad func(path, format string, args ...any), name string, ep *Endpoint) {
	if ep == nil {
		return
	}
	if u, err := url.Parse(ep.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(name+".url", "%s.url: %q is not an http(s) URL", name, ep.URL)
	}
}

// checkActions reports the admin chat's allowed actions that do not exist.
func checkActions(bad func(path, format string, args ...any), path string, actions []string) {
	for i, a := range actions {
		if _, ok := policies.LookupAction(a); !ok {
			bad(fmt.Sprintf("%s[%d]", path, i), "%s: unknown action %q (known: %s)", path, a, actionNames())
		}
	}
}
