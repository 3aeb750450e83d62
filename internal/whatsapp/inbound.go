package whatsapp

import (
	"cmp"
	"encoding/hex"
	"math"
	"net/url"
	"strings"
	"time"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/remedy-run/remedy/webhook"
)

// MediaPath is where remedy's API serves an incoming message's media: webhook.Media.URL
// is MediaPath + the path-escaped message id + "/media".
const MediaPath = "/api/v1/incoming/"

// inbound maps an incoming message to the handler's shape. ok is false for what is not
// a message for the bot (protocol messages: history sync, key distribution, edits'
// envelopes, …).
func inbound(e *events.Message) (m webhook.Message, media downloadable, ok bool) {
	info := e.Info
	m = webhook.Message{ID: info.ID, From: info.Sender.User, Chat: info.Chat.String(), Time: info.Timestamp,
		Sender: info.Sender.ToNonAD().String(), SenderName: info.PushName}
	if info.IsGroup {
		m.Group = info.Chat.String()
	}
	if info.Sender.Server == types.HiddenUserServer && !info.SenderAlt.IsEmpty() {
		m.From = info.SenderAlt.User // a group that hides numbers: the number when WhatsApp gave it
	}
	msg := e.Message
	if msg == nil {
		return m, nil, false
	}
	var ctxInfo *waE2E.ContextInfo
	switch {
	case msg.Conversation != nil:
		m.Kind, m.Text = webhook.KindText, msg.GetConversation()
	case msg.ExtendedTextMessage != nil:
		x := msg.GetExtendedTextMessage()
		m.Kind, m.Text, ctxInfo = webhook.KindText, x.GetText(), x.GetContextInfo()
	case msg.ImageMessage != nil:
		x := msg.GetImageMessage()
		m.Kind, m.Text, ctxInfo, media = webhook.KindImage, x.GetCaption(), x.GetContextInfo(), x
		m.Media = &webhook.Media{MIME: x.GetMimetype(), Size: x.GetFileLength(), SHA256: hex.EncodeToString(x.GetFileSHA256())}
	case msg.VideoMessage != nil:
		x := msg.GetVideoMessage()
		m.Kind, m.Text, ctxInfo, media = webhook.KindVideo, x.GetCaption(), x.GetContextInfo(), x
		m.Media = &webhook.Media{MIME: x.GetMimetype(), Size: x.GetFileLength(), SHA256: hex.EncodeToString(x.GetFileSHA256()), Seconds: x.GetSeconds()}
	case msg.AudioMessage != nil:
		x := msg.GetAudioMessage()
		m.Kind, ctxInfo, media = webhook.KindAudio, x.GetContextInfo(), x
		m.Media = &webhook.Media{MIME: x.GetMimetype(), Size: x.GetFileLength(), SHA256: hex.EncodeToString(x.GetFileSHA256()), Seconds: x.GetSeconds()}
	case msg.DocumentMessage != nil:
		x := msg.GetDocumentMessage()
		m.Kind, m.Text, ctxInfo, media = webhook.KindDocument, x.GetCaption(), x.GetContextInfo(), x
		m.Media = &webhook.Media{MIME: x.GetMimetype(), Size: x.GetFileLength(), SHA256: hex.EncodeToString(x.GetFileSHA256()), FileName: x.GetFileName()}
	case msg.StickerMessage != nil:
		x := msg.GetStickerMessage()
		m.Kind, ctxInfo, media = webhook.KindSticker, x.GetContextInfo(), x
		m.Media = &webhook.Media{MIME: x.GetMimetype(), Size: x.GetFileLength(), SHA256: hex.EncodeToString(x.GetFileSHA256())}
	case msg.LocationMessage != nil:
		x := msg.GetLocationMessage()
		m.Kind, ctxInfo = webhook.KindLocation, x.GetContextInfo()
		m.Location = &webhook.Location{Latitude: x.GetDegreesLatitude(), Longitude: x.GetDegreesLongitude(), Name: x.GetName(), Address: x.GetAddress()}
	case msg.LiveLocationMessage != nil:
		x := msg.GetLiveLocationMessage()
		m.Kind, m.Text, ctxInfo = webhook.KindLocation, x.GetCaption(), x.GetContextInfo()
		m.Location = &webhook.Location{Latitude: x.GetDegreesLatitude(), Longitude: x.GetDegreesLongitude()}
	case msg.ContactMessage != nil:
		x := msg.GetContactMessage()
		m.Kind, ctxInfo = webhook.KindContact, x.GetContextInfo()
		m.Contact = &webhook.Contact{Name: x.GetDisplayName(), VCard: x.GetVcard()}
	case msg.ReactionMessage != nil:
		x := msg.GetReactionMessage()
		m.Kind = webhook.KindReaction
		m.Reaction = &webhook.Reaction{MessageID: x.GetKey().GetID(), Emoji: x.GetText()}
	case msg.ProtocolMessage != nil, msg.SenderKeyDistributionMessage != nil && len(msgFields(msg)) == 1:
		return m, nil, false
	default:
		m.Kind = webhook.KindOther
	}
	if l := m.Location; l != nil && !(finite(l.Latitude) && finite(l.Longitude)) {
		// NaN or ±Inf degrees (a sender may write any double) cannot be JSON: the message
		// could never be queued and WhatsApp would deliver it again on every connect.
		m.Kind, m.Location = webhook.KindOther, nil
	}
	if ctxInfo != nil {
		m.QuotedID = ctxInfo.GetStanzaID()
		m.Mentions = ctxInfo.GetMentionedJID()
	}
	if m.Media != nil {
		m.Media.URL = MediaPath + url.PathEscape(m.ID) + "/media"
	}
	return m, media, true
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// msgFields lists the fields set on a message (to tell a bare key distribution, which
// precedes a sender's first group message, from a message that carries one).
func msgFields(msg *waE2E.Message) []string {
	var out []string
	msg.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		out = append(out, string(fd.Name()))
		return true
	})
	return out
}

// receipt maps a receipt to the handler's shape.
func receipt(e *events.Receipt) webhook.Receipt {
	status := string(e.Type)
	switch e.Type {
	case types.ReceiptTypeDelivered:
		status = "delivered"
	case types.ReceiptTypeRead:
		status = "read"
	case types.ReceiptTypePlayed:
		status = "played"
	}
	return webhook.Receipt{MessageIDs: append([]string(nil), e.MessageIDs...), Chat: e.Chat.String(),
		From: e.Sender.User, Status: strings.ReplaceAll(status, "-", "_"), Time: e.Timestamp}
}

// message hands an incoming message on: its media reference is written first (so the
// handler's download URL works), then Messages keeps it. false (Messages failed) leaves
// the message unacknowledged, for WhatsApp to deliver again.
func (c *Conn) message(e *events.Message) bool {
	if e.Info.IsFromMe || c.opts.Messages == nil {
		return true
	}
	if isStatus(e.Info.Chat) {
		// A contact's status update (a "story"): not a chat with the bot, and an answer
		// to it would be posted as the bot's own status to all its contacts (b3-01).
		return true
	}
	if ch, ok := change(e); ok {
		if c.opts.Changes == nil {
			return true
		}
		if err := c.opts.Changes(ch); err != nil {
			c.opts.Logger.Error("incoming edit or deletion not kept; left unacknowledged for WhatsApp to deliver again", "id", e.Info.ID, "error", err)
			return false
		}
		return true
	}
	m, media, ok := inbound(e)
	if !ok {
		return true
	}
	if media != nil {
		if err := c.keepMedia(m.ID, e.Message); err != nil {
			c.opts.Logger.Warn("incoming media: its reference was not kept; the download URL will answer 404", "id", m.ID, "error", err)
		}
	}
	if err := c.opts.Messages(m); err != nil {
		c.opts.Logger.Error("incoming message not kept; left unacknowledged for WhatsApp to deliver again", "id", m.ID, "error", err)
		return false
	}
	return true
}

// isStatus reports whether a chat is WhatsApp's status broadcast (status@broadcast),
// where contacts' status updates arrive.
func isStatus(chat types.JID) bool {
	return chat.Server == types.BroadcastServer && chat.User == types.StatusBroadcastJID.User
}

// change maps an edit or a deletion for everyone of an earlier message (protocol
// messages) to its delivery; ok is false for anything else.
func change(e *events.Message) (webhook.Event, bool) {
	pm := e.Message.GetProtocolMessage()
	if pm == nil {
		return webhook.Event{}, false
	}
	info := e.Info
	from := info.Sender.User
	if info.Sender.Server == types.HiddenUserServer && !info.SenderAlt.IsEmpty() {
		from = info.SenderAlt.User
	}
	group := ""
	if info.IsGroup {
		group = info.Chat.String()
	}
	at := info.Timestamp
	if ms := pm.GetTimestampMS(); ms > 0 {
		at = time.UnixMilli(ms).UTC()
	}
	switch pm.GetType() {
	case waE2E.ProtocolMessage_MESSAGE_EDIT:
		// The new content is a message like any other: the same mapping gives its kind
		// and text.
		m, _, _ := inbound(&events.Message{Info: info, Message: pm.GetEditedMessage()})
		ev, err := webhook.New(webhook.TypeEdit, at, webhook.Edit{ID: info.ID, MessageID: pm.GetKey().GetID(), Chat: info.Chat.String(),
			From: from, Sender: info.Sender.ToNonAD().String(), Group: group, Kind: cmp.Or(m.Kind, webhook.KindOther), Text: m.Text, Time: at})
		return ev, err == nil
	case waE2E.ProtocolMessage_REVOKE:
		ev, err := webhook.New(webhook.TypeDelete, at, webhook.Delete{ID: info.ID, MessageID: pm.GetKey().GetID(), Chat: info.Chat.String(),
			From: from, Sender: info.Sender.ToNonAD().String(), Group: group, Time: at})
		return ev, err == nil
	}
	return webhook.Event{}, false
}
