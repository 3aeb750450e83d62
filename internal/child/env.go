// Package child starts remedy's children (supervised services and EXEC actions) the way
// systemd starts a unit's processes: with a clean environment, and in a process group
// that is gone, every member of it, before a stop counts as done.
package child

import (
	"sort"
	"strings"
)

// BaseNames are the variables every child gets from remedy's environment when they are
// set: the ones systemd gives a service by default (PATH, LANG, USER, LOGNAME, HOME,
// SHELL; systemd.exec(5), "Environment variables in spawned processes") plus the locale,
// TZ and TMPDIR. None of them is a secret; everything else must be listed in pass_env.
var BaseNames = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR"}

// DefaultPath is the PATH a child gets when remedy has none (systemd's default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Env builds a child's environment as a sorted "NAME=value" list: the base names and
// the LC_* locale variables from remedy's environment (environ, as os.Environ gives it),
// then the names listed in pass (systemd's PassEnvironment=: copied when set, skipped
// when not), then set (systemd's Environment=: wins over both). Nothing else of remedy's
// environment passes, so REMEDY_TOKEN and the variables named by token_env, secret_env
// and the like stay with remedy unless the operator lists them in pass.
func Env(environ []string, pass []string, set map[string]string) []string {
	have := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			have[k] = v
		}
	}
	out := map[string]string{}
	for _, k := range BaseNames {
		if v, ok := have[k]; ok {
			out[k] = v
		}
	}
	for k, v := range have {
		if strings.HasPrefix(k, "LC_") {
			out[k] = v
		}
	}
	if _, ok := out["PATH"]; !ok {
		out["PATH"] = DefaultPath
	}
	for _, k := range pass {
		if v, ok := have[k]; ok {
			out[k] = v
		}
	}
	for k, v := range set {
		out[k] = v
	}
	list := make([]string, 0, len(out))
	for k, v := range out {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}
