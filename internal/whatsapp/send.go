package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.mau.fi/whatsmeow"
	waE2E "go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/remedy-run/remedy/internal/chat"
)

// SendMessage sends a message of the send API (chat.Outgoing) with its own id, so a
// retry is the same message to WhatsApp and receipts name it. Media is uploaded first
// (whatsmeow encrypts it and posts it to the media host WhatsApp names). Errors are
// *chat.SendError: not_connected, timeout, server_error (5xx) and media upload
// failures are worth a retry; refused (4xx: not authorized, not in the group, no such
// user) and invalid are not.
func (c *Conn) SendMessage(ctx context.Context, m chat.Outgoing, media []byte) error {
	if !c.cli.IsConnected() || !c.cli.IsLoggedIn() {
		return &chat.SendError{Reason: chat.ReasonNotConnected, Err: whatsmeow.ErrNotConnected}
	}
	to, err := types.ParseJID(m.Chat)
	if err != nil {
		return &chat.SendError{Reason: chat.ReasonInvalid, Permanent: true, Err: err}
	}
	msg, err := c.build(ctx, to, m, media)
	if err != nil {
		return err
	}
	// whatsmeow closes a response's channel when the caller's context ends, without
	// checking whether the answer, taken off its waiters a moment before, is being sent
	// on it (request.go: cancelResponse against receiveResponse): a data race, and "send
	// on closed channel" if it falls badly; seen under -race with a busy machine, a
	// daemon stopping while a send waited for its ack. So whatsmeow gets a context that
	// never ends (its own 75 s request timeout and a disconnect still end the wait), and
	// the caller stops waiting when ctx ends, as before: the send's outcome is unknown
	// either way, and the queue retries it with the same id.
	done := make(chan error, 1)
	go func() {
		_, err := c.cli.SendMessage(context.WithoutCancel(ctx), to, msg, whatsmeow.SendRequestExtra{ID: types.MessageID(m.ID)})
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return classify(err)
}

// build makes the protobuf message: text (extended when it quotes or mentions), media
// with its caption, or a reaction.
func (c *Conn) build(ctx context.Context, to types.JID, m chat.Outgoing, media []byte) (*waE2E.Message, error) {
	if r := m.Reaction; r != nil {
		sender := to
		switch {
		case r.Sender == "me":
			sender = types.EmptyJID
		case r.Sender != "":
			sender, _ = types.ParseJID(r.Sender)
		case to.Server == types.GroupServer:
			sender = types.EmptyJID // a group: without a sender, the bot's own message
		}
		return c.cli.BuildReaction(to, sender, types.MessageID(r.MessageID), r.Emoji), nil
	}
	var ci *waE2E.ContextInfo
	if m.ReplyTo != "" || len(m.Mentions) > 0 {
		ci = &waE2E.ContextInfo{MentionedJID: m.Mentions}
		if m.ReplyTo != "" {
			ci.StanzaID = proto.String(m.ReplyTo)
			ci.QuotedMessage = &waE2E.Message{Conversation: proto.String("")}
			switch {
			case m.ReplyToSender != "":
				ci.Participant = proto.String(m.ReplyToSender)
			case to.Server != types.GroupServer:
				ci.Participant = proto.String(to.String())
			}
		}
	}
	if m.Media == nil {
		if ci == nil {
			return &waE2E.Message{Conversation: proto.String(m.Text)}, nil
		}
		return &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String(m.Text), ContextInfo: ci}}, nil
	}
	kind := map[string]whatsmeow.MediaType{"image": whatsmeow.MediaImage, "sticker": whatsmeow.MediaImage,
		"video": whatsmeow.MediaVideo, "audio": whatsmeow.MediaAudio, "document": whatsmeow.MediaDocument}[m.Media.Kind]
	if kind == "" {
		return nil, &chat.SendError{Reason: chat.ReasonInvalid, Permanent: true, Err: fmt.Errorf("media kind %q", m.Media.Kind)}
	}
	up, err := c.cli.Upload(ctx, media, kind)
	if err != nil {
		if serr := classify(err); errors.As(serr, new(*chat.SendError)) && !isUnknown(serr) {
			return nil, serr
		}
		return nil, &chat.SendError{Reason: chat.ReasonMedia, Err: err}
	}
	mime, caption, length := proto.String(m.Media.MIME), optional(m.Text), proto.Uint64(up.FileLength)
	out := &waE2E.Message{}
	switch m.Media.Kind {
	case "image":
		out.ImageMessage = &waE2E.ImageMessage{URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, Mimetype: mime,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: length, Caption: caption, ContextInfo: ci}
	case "sticker":
		out.StickerMessage = &waE2E.StickerMessage{URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, Mimetype: mime,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: length, ContextInfo: ci}
	case "video":
		out.VideoMessage = &waE2E.VideoMessage{URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, Mimetype: mime,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: length, Caption: caption, ContextInfo: ci}
	case "audio":
		out.AudioMessage = &waE2E.AudioMessage{URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, Mimetype: mime,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: length, ContextInfo: ci}
	case "document":
		name := m.Media.FileName
		if name == "" {
			name = "document"
		}
		out.DocumentMessage = &waE2E.DocumentMessage{URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, Mimetype: mime,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: length, Caption: caption, ContextInfo: ci,
			FileName: proto.String(name), Title: proto.String(name)}
	}
	return out, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return proto.String(s)
}

func isUnknown(err error) bool {
	var s *chat.SendError
	return errors.As(err, &s) && s.Reason == chat.ReasonUnknown
}

// classify turns whatsmeow's send errors into a reason and whether to retry.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var iq *whatsmeow.IQError
	var disc *whatsmeow.DisconnectedError
	switch {
	case errors.Is(err, whatsmeow.ErrNotConnected), errors.Is(err, whatsmeow.ErrNotLoggedIn), errors.As(err, &disc):
		return &chat.SendError{Reason: chat.ReasonNotConnected, Err: err}
	case errors.Is(err, whatsmeow.ErrMessageTimedOut), errors.Is(err, whatsmeow.ErrIQTimedOut), errors.Is(err, context.DeadlineExceeded):
		return &chat.SendError{Reason: chat.ReasonTimeout, Err: err}
	case errors.Is(err, whatsmeow.ErrServerReturnedError):
		// "server returned error 479": the ack's error attribute.
		code, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(err.Error(), whatsmeow.ErrServerReturnedError.Error())))
		return codeError(code, err)
	case errors.As(err, &iq) && iq.Code != 0:
		// A failed query on the way (group members, devices): 403 not in the group, 404 no such group.
		return codeError(iq.Code, err)
	case errors.Is(err, whatsmeow.ErrRecipientADJID), errors.Is(err, whatsmeow.ErrUnknownServer),
		errors.Is(err, whatsmeow.ErrBroadcastListUnsupported):
		return &chat.SendError{Reason: chat.ReasonInvalid, Permanent: true, Err: err}
	}
	return &chat.SendError{Reason: chat.ReasonUnknown, Err: err}
}

// codeError: a 4xx answer is a refusal (a retry gets the same), anything else is the
// server's trouble and is retried.
func codeError(code int, err error) error {
	if code >= 400 && code < 500 && code != 408 && code != 429 {
		return &chat.SendError{Reason: chat.ReasonRefused, Code: code, Permanent: true, Err: err}
	}
	return &chat.SendError{Reason: chat.ReasonServerError, Code: code, Err: err}
}

// receipt hands a receipt for the bot's own messages to Options.Receipts.
func (c *Conn) receipt(e *events.Receipt) {
	if c.opts.Receipts == nil || !e.IsFromMe && e.MessageSender.User != "" && e.MessageSender.User != c.cli.Store.GetJID().User {
		return
	}
	var status string
	switch e.Type {
	case types.ReceiptTypeDelivered:
		status = chat.StatusDelivered
	case types.ReceiptTypeRead, types.ReceiptTypePlayed:
		status = chat.StatusRead
	default:
		return // the bot's own devices' read-self, retries, server errors: not the recipient's
	}
	ids := make([]string, len(e.MessageIDs))
	for i, id := range e.MessageIDs {
		ids[i] = string(id)
	}
	c.opts.Receipts(ids, status, e.Timestamp)
}
