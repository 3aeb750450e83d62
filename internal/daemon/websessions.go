package daemon

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/remedy-run/remedy/web"
)

// webSessions is the dashboard's and API's view of the sessions (web.Sessions): the
// running ones, and the configured ones that do not run (state not_opened) so that a
// number that failed to open still has its card.
type webSessions struct{ d *Daemon }

func (w webSessions) List(ctx context.Context) []web.SessionInfo {
	var out []web.SessionInfo
	for _, s := range w.d.sessions.all() {
		out = append(out, s.Info(ctx))
	}
	w.d.sessions.failed.Range(func(k, v any) bool {
		if w.d.sessions.get(k.(string)) == nil {
			out = append(out, web.SessionInfo{Name: k.(string), State: "not_opened", PairFailure: fmt.Sprint(v)})
		}
		return true
	})
	slices.SortFunc(out, func(a, b web.SessionInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (w webSessions) QR(name string) (string, error) {
	s := w.d.sessions.get(name)
	if s == nil {
		return "", fmt.Errorf("%w: no session %q runs", web.ErrNotFound, name)
	}
	return s.QR(), nil
}

func (w webSessions) Pair(name string) error {
	s := w.d.sessions.get(name)
	if s == nil {
		return fmt.Errorf("%w: no session %q runs", web.ErrNotFound, name)
	}
	return s.Pair()
}

func (w webSessions) PairFailure(name string) string {
	if s := w.d.sessions.get(name); s != nil {
		return s.PairFailure()
	}
	return ""
}
