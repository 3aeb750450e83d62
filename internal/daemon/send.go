package daemon

import (
	"context"

	"github.com/remedy-run/remedy/internal/chat"
)

// SendMessage queues a message of any kind on the durable outbound queue of the named
// session ("": the only one) and returns its id once it is on disk
// (chat.Pipeline.SendMessage). Errors: ErrWhatsAppOff with no session,
// web.ErrSessionRequired with several and none named, web.ErrUnknownSession.
func (d *Daemon) SendMessage(ctx context.Context, session string, o chat.Outgoing) (string, error) {
	s, err := d.sessions.pick(session)
	if err != nil {
		return "", err
	}
	return s.SendMessage(ctx, o)
}
