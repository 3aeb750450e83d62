// Package webhook is what remedy posts to a bot's handler (whatsapp.handler): the JSON
// payloads, one per incoming message, receipt, send outcome, edit or deletion (more types may come), and their HMAC
// signature. A bot written in Go verifies and decodes a delivery with Read; the Go
// embedding (package bot) hands the same Message to its Handler. The package has no
// dependencies outside the standard library, so a handler can import it alone.
//
// Every delivery is a JSON object with a "type". For "message" the message's fields are
// at the top level (id, from, chat, text, time: the shape handlers had before types
// existed); any other type carries its data under the key named by the type, e.g.
// {"type":"receipt","time":…,"receipt":{…}}; a delivery about a chat also names it at
// the top level ("chat"), so that every delivery of one chat is found the same way (remedy
// hands a chat's deliveries to the handler one at a time, in order). Handlers ignore
// types and fields they do not know:
// new ones may be added. Every delivery also names the remedy session (the bot's
// WhatsApp number) it is about: "session" at the top level and the SessionHeader.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Delivery types.
const (
	TypeMessage = "message" // an incoming message: Message at the top level
	TypeReceipt = "receipt" // a delivery/read receipt for messages the bot sent: Receipt
	// TypeSendOutcome is the end of a message the bot sent (sent, or failed with a
	// reason): SendOutcome. Delivered and read come as receipts.
	TypeSendOutcome = "send_outcome"
	// TypeEdit is an earlier message edited by its sender: Edit. It is not a new
	// message: no reply is sent for it.
	TypeEdit = "edit"
	// TypeDelete is an earlier message deleted for everyone by its sender (or a group
	// admin): Delete. A bot that keeps messages should forget or hide it.
	TypeDelete = "delete"
)

// Send outcomes (SendOutcome.Status).
const (
	OutcomeSent   = "sent"   // WhatsApp's server acknowledged the message
	OutcomeFailed = "failed" // dead-lettered, not sent: Reason says why; a replay queues it again
)

// Message kinds (Message.Kind).
const (
	KindText     = "text"
	KindImage    = "image"
	KindVideo    = "video"
	KindAudio    = "audio"
	KindDocument = "document"
	KindSticker  = "sticker"
	KindLocation = "location"
	KindContact  = "contact"
	KindReaction = "reaction"
	KindOther    = "other" // a kind remedy does not type (polls, calls, …): only id, chat, sender
)

// Message is an incoming WhatsApp message. Times are RFC 3339 in JSON.
type Message struct {
	ID   string `json:"id"`   // WhatsApp's message id: quote or react to it with this
	From string `json:"from"` // the sender's phone number, digits only ("6281100000077")
	// Chat is where the message was received and where a reply goes: the sender's JID
	// ("6281100000077@s.whatsapp.net") or a group's ("120363…@g.us"). Send to it as is.
	Chat string    `json:"chat"`
	Text string    `json:"text"` // the text, or a media caption ("" if none)
	Time time.Time `json:"time"` // when WhatsApp says it was sent
	Kind string    `json:"kind"` // one of the Kind* constants
	// Sender is the sender's JID ("…@s.whatsapp.net", or "…@lid" in groups that hide
	// numbers); SenderName the name the sender gave WhatsApp (push name; may be empty).
	Sender     string `json:"sender,omitempty"`
	SenderName string `json:"sender_name,omitempty"`
	// Group is the group's JID when the message came from a group ("" otherwise).
	Group string `json:"group,omitempty"`
	// QuotedID is the id of the message this one replies to (quotes); "" if none.
	QuotedID string `json:"quoted_id,omitempty"`
	// Mentions are the JIDs the message mentions.
	Mentions []string  `json:"mentions,omitempty"`
	Media    *Media    `json:"media,omitempty"`
	Location *Location `json:"location,omitempty"`
	Contact  *Contact  `json:"contact,omitempty"`
	Reaction *Reaction `json:"reaction,omitempty"`
	// Session is the remedy session (the bot's WhatsApp number, config `sessions:`) that
	// received the message: "default" without `sessions:`. Answer through the same one.
	Session string `json:"session,omitempty"`
}

// Media describes an image, video, audio, document or sticker. The file stays on
// WhatsApp's servers until it is asked for: GET URL on remedy's API (with remedy's API
// token if it has one) downloads and decrypts it then.
type Media struct {
	URL      string `json:"url"`                 // remedy's API path: /api/v1/incoming/{message id}/media
	MIME     string `json:"mime,omitempty"`      // "image/jpeg"
	Size     uint64 `json:"size,omitempty"`      // bytes
	FileName string `json:"file_name,omitempty"` // documents
	SHA256   string `json:"sha256,omitempty"`    // of the decrypted file, hex
	Seconds  uint32 `json:"seconds,omitempty"`   // audio and video length
}

// Location is a shared place.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name,omitempty"`
	Address   string  `json:"address,omitempty"`
}

// Contact is a shared contact card.
type Contact struct {
	Name  string `json:"name"`
	VCard string `json:"vcard"`
}

// Reaction is an emoji put on (or, with Emoji "", taken off) an earlier message.
type Reaction struct {
	MessageID string `json:"message_id"` // the message reacted to
	Emoji     string `json:"emoji"`
}

// Receipt says that messages were delivered to or read by a recipient.
type Receipt struct {
	MessageIDs []string  `json:"message_ids"`
	Chat       string    `json:"chat"`
	From       string    `json:"from"`   // whose device sent the receipt, digits only
	Status     string    `json:"status"` // delivered, read, played, sender (another of the account's devices), or WhatsApp's own word
	Time       time.Time `json:"time"`
}

// SendOutcome is how a message the bot sent through the send API (POST
// /api/v1/messages, bot.Send, bot.Reply) ended: "sent" when WhatsApp's server
// acknowledged it, or "failed" when it was dead-lettered (a replay that then succeeds is followed by "sent"). Receipts
// ("receipt" deliveries) report delivered and read afterwards.
type SendOutcome struct {
	ID       string `json:"id"`     // the message's id, as the send API (or bot.Send) answered it
	Chat     string `json:"chat"`   // the recipient's JID
	Status   string `json:"status"` // OutcomeSent or OutcomeFailed
	Reason   string `json:"reason,omitempty"`
	Attempts int    `json:"attempts"` // tries it took (1: the first)
	// IdempotencyKey is the key the message was sent with, if any.
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	Time           time.Time `json:"time"`
}

// Edit is a message its sender edited: the new content of message MessageID. Kind and
// Text are the edited message's, as in Message.
type Edit struct {
	ID        string    `json:"id"`         // the edit's own id
	MessageID string    `json:"message_id"` // the message edited
	Chat      string    `json:"chat"`
	From      string    `json:"from"` // the sender's number, digits only
	Sender    string    `json:"sender,omitempty"`
	Group     string    `json:"group,omitempty"`
	Kind      string    `json:"kind"`
	Text      string    `json:"text"`
	Time      time.Time `json:"time"` // when the edit was made
}

// Delete is a message deleted for everyone ("This message was deleted").
type Delete struct {
	ID        string    `json:"id"`         // the deletion's own id
	MessageID string    `json:"message_id"` // the message deleted
	Chat      string    `json:"chat"`
	From      string    `json:"from"` // who deleted it, digits only
	Sender    string    `json:"sender,omitempty"`
	Group     string    `json:"group,omitempty"`
	Time      time.Time `json:"time"`
}

// Event is one delivery, decoded: Type, and the data of that type (Message for
// "message", Receipt for "receipt", SendOutcome for "send_outcome", Edit for "edit",
// Delete for "delete"; for other types Data holds the raw JSON under the type's key).
type Event struct {
	Type string
	Time time.Time
	// Session is the remedy session the delivery is about ("session" in the JSON, and
	// the SessionHeader); for a message, Message.Session.
	Session     string
	Message     *Message
	Receipt     *Receipt
	SendOutcome *SendOutcome
	Edit        *Edit
	Delete      *Delete
	Data        json.RawMessage
}

// NewMessage is the delivery of an incoming message.
func NewMessage(m Message) Event { return Event{Type: TypeMessage, Time: m.Time, Message: &m} }

// New is a delivery of another type with its data (JSON-encodable).
func New(typ string, at time.Time, data any) (Event, error) {
	if typ == "" || typ == TypeMessage {
		return Event{}, fmt.Errorf("webhook: type %q needs its own constructor", typ)
	}
	b, err := json.Marshal(data)
	if err != nil {
		return Event{}, err
	}
	e := Event{Type: typ, Time: at, Data: b}
	if err := e.decodeData(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// decodeData fills the typed field of a known type from Data.
func (e *Event) decodeData() error {
	if e.Data == nil {
		return nil
	}
	switch e.Type {
	case TypeReceipt:
		var r Receipt
		if err := json.Unmarshal(e.Data, &r); err != nil {
			return err
		}
		e.Receipt = &r
	case TypeSendOutcome:
		var o SendOutcome
		if err := json.Unmarshal(e.Data, &o); err != nil {
			return err
		}
		e.SendOutcome = &o
	case TypeEdit:
		var x Edit
		if err := json.Unmarshal(e.Data, &x); err != nil {
			return err
		}
		e.Edit = &x
	case TypeDelete:
		var x Delete
		if err := json.Unmarshal(e.Data, &x); err != nil {
			return err
		}
		e.Delete = &x
	}
	return nil
}

// MarshalJSON writes the wire shape (see the package comment).
func (e Event) MarshalJSON() ([]byte, error) {
	if e.Type == TypeMessage {
		if e.Message == nil {
			return nil, errors.New("webhook: a message event without its message")
		}
		type plain Message // no methods: no recursion
		m := plain(*e.Message)
		if m.Session == "" {
			m.Session = e.Session
		}
		return json.Marshal(struct {
			Type string `json:"type"`
			plain
		}{e.Type, m})
	}
	data := e.Data
	var typed any
	switch {
	case e.Receipt != nil:
		typed = e.Receipt
	case e.SendOutcome != nil:
		typed = e.SendOutcome
	case e.Edit != nil:
		typed = e.Edit
	case e.Delete != nil:
		typed = e.Delete
	}
	if data == nil && typed != nil {
		b, err := json.Marshal(typed)
		if err != nil {
			return nil, err
		}
		data = b
	}
	if data == nil {
		data = json.RawMessage("null")
	}
	t, _ := json.Marshal(e.Time)
	out := map[string]json.RawMessage{"type": mustJSON(e.Type), "time": t, e.Type: data}
	if e.Session != "" {
		out["session"] = mustJSON(e.Session)
	}
	if c := e.chat(); c != "" {
		out["chat"] = mustJSON(c)
	}
	return json.Marshal(out)
}

// chat is the chat a typed delivery is about ("" for none, or data of an untyped kind).
func (e Event) chat() string {
	switch {
	case e.Receipt != nil:
		return e.Receipt.Chat
	case e.SendOutcome != nil:
		return e.SendOutcome.Chat
	case e.Edit != nil:
		return e.Edit.Chat
	case e.Delete != nil:
		return e.Delete.Chat
	}
	return ""
}

// UnmarshalJSON reads the wire shape.
func (e *Event) UnmarshalJSON(b []byte) error {
	var head map[string]json.RawMessage
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	var typ string
	if err := json.Unmarshal(head["type"], &typ); err != nil || typ == "" {
		return errors.New("webhook: a delivery without a type")
	}
	*e = Event{Type: typ}
	if typ == TypeMessage {
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		e.Message, e.Time, e.Session = &m, m.Time, m.Session
		return nil
	}
	if t, ok := head["time"]; ok {
		_ = json.Unmarshal(t, &e.Time)
	}
	if s, ok := head["session"]; ok {
		_ = json.Unmarshal(s, &e.Session)
	}
	e.Data = head[typ]
	return e.decodeData()
}

func mustJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
