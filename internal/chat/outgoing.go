package chat

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"go.mau.fi/whatsmeow/types"

	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
)

// Outgoing is a message the bot sends: a text, a media message (Text is its caption),
// or a reaction. It is what SendMessage queues and the outbound queue delivers, as JSON.
type Outgoing struct {
	// ID is the WhatsApp message id, chosen when the message is queued (SendMessage sets
	// it): every try sends the same id, so a retry after a crash is one message to the
	// recipient's phone, and receipts name it.
	ID string `json:"id"`
	// To is the recipient as given: a phone number in international format ("+62 811…"),
	// a user JID (…@s.whatsapp.net, …@lid) or a group JID (…@g.us).
	To string `json:"to"`
	// Chat is To as a JID (SendMessage sets it); messages to one chat go out in order.
	Chat string `json:"chat"`
	Text string `json:"text,omitempty"`
	// ReplyTo quotes the message with this id; ReplyToSender is who wrote it (needed in
	// groups; in a direct chat it defaults to the other person).
	ReplyTo       string `json:"reply_to,omitempty"`
	ReplyToSender string `json:"reply_to_sender,omitempty"`
	// Mentions are users (numbers or JIDs) the text mentions ("@6281…" in Text).
	Mentions []string  `json:"mentions,omitempty"`
	Reaction *Reaction `json:"reaction,omitempty"`
	Media    *Media    `json:"media,omitempty"`
	// IdempotencyKey: a second SendMessage of the same message with the same key queues
	// nothing and returns the first one's id (Stripe's Idempotency-Key, kept for as long
	// as the message's row); of a different message, ErrKeyReused.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Reaction reacts to a message with an emoji ("" removes the reaction).
type Reaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
	// Sender wrote the message reacted to: "me" for one of the bot's own, a user for an
	// incoming one (default: the chat's other person; give it in groups).
	Sender string `json:"sender,omitempty"`
}

// Media is an attachment: an earlier upload (ID from SaveMedia) or, to SendMessage
// only, the bytes themselves (Data), which are saved first.
type Media struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"` // image, video, audio, document, sticker
	MIME     string `json:"mime"`
	FileName string `json:"file_name,omitempty"`
	Size     int64  `json:"size"`
	Data     []byte `json:"-"`
}

// Message statuses, in the order they happen; a status never goes back.
const (
	StatusQueued    = "queued"
	StatusSent      = "sent"      // WhatsApp's server acknowledged it
	StatusDelivered = "delivered" // a receipt from the recipient's device
	StatusRead      = "read"      // a read (or played) receipt
	StatusFailed    = "failed"    // dead-lettered: Reason says why; a replay queues it again
)

// Status is where a message is.
type Status struct {
	ID       string    `json:"id"`
	Chat     string    `json:"chat"`
	Status   string    `json:"status"`
	Reason   string    `json:"reason,omitempty"`   // why it failed, or the last try's error while queued
	Attempts int       `json:"attempts"`           // tries so far (while queued or failed)
	Created  time.Time `json:"created"`            // when it was queued
	Updated  time.Time `json:"updated"`            // the last change of status
	SentAt   time.Time `json:"sent_at,omitzero"`   // the server's acknowledgement
	Replayed bool      `json:"replayed,omitempty"` // it failed before and was replayed
	Key      string    `json:"idempotency_key,omitempty"`
	// Session is the session that queued it ("" for a message queued before sessions:
	// the session "default").
	Session string `json:"session,omitempty"`
}

// Errors of SendMessage; the API maps them to statuses.
var (
	// ErrInvalid: the message cannot be sent as given (422).
	ErrInvalid = errors.New("invalid message")
	// ErrNotFound: no message with that id (404).
	ErrNotFound = errors.New("no such message")
	// ErrKeyReused: the idempotency key was used before for a different message (422,
	// as the IETF Idempotency-Key draft answers a key reused with another payload).
	ErrKeyReused = fmt.Errorf("%w: idempotency key already used for a different message", ErrInvalid)
)

// Limits of a message (WhatsApp's own: a text of at most 65,536 characters).
const (
	MaxText     = 65536
	maxMentions = 256
	maxKey      = 255
	maxIDLen    = 128
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ParseRecipient turns a phone number in international format, a user JID or a group
// JID into the JID a message goes to. It returns an error wrapping ErrInvalid for
// anything else (a number starting with 0, a device JID, a broadcast list).
func ParseRecipient(to string) (types.JID, error) {
	to = strings.TrimSpace(to)
	if to == "" {
		return types.JID{}, invalid("to: a phone number in international format, a user JID or a group JID")
	}
	if !strings.Contains(to, "@") {
		d := Digits(to)
		if strings.Trim(to, "+0123456789 -().") != "" || strings.Contains(strings.TrimPrefix(to, "+"), "+") {
			return types.JID{}, invalid("to %q: a phone number has only digits, spaces, - ( ) and . (and + first)", to)
		}
		// E.164: at most 15 digits; the shortest numbers in use have 7 or so.
		if len(d) < 7 || len(d) > 15 || d[0] == '0' {
			return types.JID{}, invalid("to %q: a phone number in international format (country code first, 7 to 15 digits)", to)
		}
		return types.NewJID(d, types.DefaultUserServer), nil
	}
	jid, err := types.ParseJID(to)
	if err != nil {
		return types.JID{}, invalid("to %q: %v", to, err)
	}
	switch {
	case jid.Device != 0 || jid.RawAgent != 0:
		return types.JID{}, invalid("to %q: a device JID; send to the user (without :device)", to)
	case jid.Server == types.DefaultUserServer && (Digits(jid.User) != jid.User || len(jid.User) < 7 || len(jid.User) > 15):
		return types.JID{}, invalid("to %q: the user of a …@%s JID is a phone number's digits", to, types.DefaultUserServer)
	case jid.Server == types.GroupServer && !groupUser(jid.User):
		return types.JID{}, invalid("to %q: a group JID is digits (or the creator's number, -, a time) before @%s, at most %d characters",
			to, types.GroupServer, maxJIDUser)
	case jid.Server == types.HiddenUserServer && (jid.User == "" || Digits(jid.User) != jid.User || len(jid.User) > maxJIDUser):
		return types.JID{}, invalid("to %q: a …@%s JID is digits, at most %d", to, types.HiddenUserServer, maxJIDUser)
	case jid.Server != types.DefaultUserServer && jid.Server != types.GroupServer && jid.Server != types.HiddenUserServer:
		return types.JID{}, invalid("to %q: remedy sends to users (@%s, @%s) and groups (@%s), not @%s", to,
			types.DefaultUserServer, types.HiddenUserServer, types.GroupServer, jid.Server)
	}
	return jid, nil
}

// maxJIDUser bounds a group's or a LID's user part: group ids are 18 digits today
// ("120363…"), older ones a number, "-" and a Unix time (at most 26); LIDs about 15.
const maxJIDUser = 40

// groupUser reports whether s is a group JID's user: digits, or digits-digits.
func groupUser(s string) bool {
	a, b, two := strings.Cut(s, "-")
	return len(s) <= maxJIDUser && a != "" && Digits(a) == a && (!two || b != "" && Digits(b) == b)
}

// check validates a message and fills in Chat and the mentions' JIDs. Media must have
// been resolved (ID set) before.
func (o *Outgoing) check() error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	jid, err := ParseRecipient(o.To)
	if err != nil {
		return err
	}
	o.Chat = jid.String()
	switch n := utf8.RuneCountInString(o.Text); {
	case !utf8.ValidString(o.Text):
		add("text: not valid UTF-8")
	case n > MaxText:
		add("text: %d characters, WhatsApp takes at most %d", n, MaxText)
	}
	kinds := 0
	for _, set := range []bool{strings.TrimSpace(o.Text) != "" && o.Media == nil, o.Media != nil, o.Reaction != nil} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		add("give text (not only spaces), media (with text as its caption) or a reaction")
	case o.Reaction != nil && kinds > 1 || o.Reaction != nil && o.Text != "":
		add("a reaction is a message of its own: no text or media with it")
	}
	if o.Reaction != nil {
		if o.Reaction.MessageID == "" || len(o.Reaction.MessageID) > maxIDLen {
			add("reaction.message_id: the id of the message reacted to (at most %d characters)", maxIDLen)
		}
		if utf8.RuneCountInString(o.Reaction.Emoji) > 16 {
			add("reaction.emoji: one emoji (\"\" removes the reaction)")
		}
		if s := o.Reaction.Sender; s != "" && s != "me" {
			if j, err := ParseRecipient(s); err != nil || j.Server == types.GroupServer {
				add("reaction.sender %q: \"me\" or the user who wrote the message", s)
			} else {
				o.Reaction.Sender = j.String()
			}
		}
	}
	if o.Media != nil && o.Text != "" && (o.Media.Kind == "audio" || o.Media.Kind == "sticker") {
		add("text: an %s has no caption in WhatsApp", o.Media.Kind)
	}
	if len(o.ReplyTo) > maxIDLen {
		add("reply_to: a message id of at most %d characters", maxIDLen)
	}
	if o.ReplyToSender != "" {
		if o.ReplyTo == "" {
			add("reply_to_sender without reply_to")
		} else if j, err := ParseRecipient(o.ReplyToSender); err != nil || j.Server == types.GroupServer {
			add("reply_to_sender %q: the user who wrote the quoted message", o.ReplyToSender)
		} else {
			o.ReplyToSender = j.String()
		}
	}
	if len(o.Mentions) > maxMentions {
		add("mentions: at most %d", maxMentions)
	}
	for i, m := range o.Mentions {
		j, err := ParseRecipient(m)
		if err != nil || j.Server == types.GroupServer {
			add("mentions[%d] %q: a user's number or JID", i, m)
			continue
		}
		o.Mentions[i] = j.String()
	}
	if len(o.IdempotencyKey) > maxKey {
		add("idempotency_key: at most %d characters", maxKey)
	}
	if len(errs) > 0 {
		return invalid("%s", strings.Join(errs, "; "))
	}
	return nil
}

// fingerprint is the SHA-256 of what a checked message sends (not its id or key):
// the same message posted again has the same one, whatever the recipient's spelling
// ("+62 811…" or the JID) or whether its media came inline or as the upload's id.
func (o *Outgoing) fingerprint() string {
	c := *o
	c.ID, c.To, c.IdempotencyKey = "", "", ""
	if c.Media != nil {
		m := *c.Media
		m.Data = nil
		c.Media = &m
	}
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// SendMessage queues a message for sending and returns its id once it is on disk: the
// message row and its queue item are committed in one transaction (with inline media
// saved before). The outbound queue then delivers it in order per chat, at the send
// rate, across disconnects and restarts; MessageStatus follows it.
//
// With an IdempotencyKey already used for the same message, nothing is queued and the
// first message's id is returned; used for a different message, ErrKeyReused. Errors: ErrInvalid (wrapped, with every problem), a *MediaError for
// media over its limit or of a type WhatsApp does not take, queue.ErrFull (wrapped)
// when the outbound queue is at capacity, or the store's error.
func (p *Pipeline) SendMessage(ctx context.Context, o Outgoing) (string, error) {
	id, _, err := p.Enqueue(ctx, o)
	return id, err
}

// Enqueue is SendMessage that also says whether the idempotency key was used before
// (duplicate: nothing was queued, id is the first message's).
func (p *Pipeline) Enqueue(ctx context.Context, o Outgoing) (id string, duplicate bool, err error) {
	o.ID, o.Chat = "", ""
	o.Mentions = append([]string(nil), o.Mentions...)
	if o.Reaction != nil {
		r := *o.Reaction
		o.Reaction = &r
	}
	if o.Media != nil {
		m, err := p.resolveMedia(ctx, *o.Media)
		if err != nil {
			return "", false, err
		}
		o.Media = &m
	}
	if err := o.check(); err != nil {
		return "", false, err
	}
	var key any // NULL: no key (UNIQUE ignores NULLs)
	fp := ""
	if o.IdempotencyKey != "" {
		key, fp = p.storedKey(o.IdempotencyKey), o.fingerprint()
	}
	id = p.newID()
	queued := false
	err = p.db.WithTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		queued = false
		if key != nil {
			var prev struct {
				ID          string `db:"id"`
				Fingerprint string `db:"fingerprint"`
			}
			err := tx.Get(ctx, &prev, `SELECT id, fingerprint FROM outgoing WHERE idem_key = ?`, key)
			if err == nil && prev.Fingerprint != "" && prev.Fingerprint != fp {
				return fmt.Errorf("%w: %q is message %s", ErrKeyReused, o.IdempotencyKey, prev.ID)
			}
			if err == nil {
				id = prev.ID
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		o.ID = id
		now := time.Now().UnixMilli()
		if _, err := tx.Exec(ctx, `INSERT INTO outgoing(id, idem_key, fingerprint, chat, status, created, updated, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, key, fp, o.Chat, StatusQueued, now, now, p.session); err != nil {
			return err
		}
		if _, err := p.Out.EnqueueTx(ctx, tx, o); err != nil {
			return err
		}
		queued = true
		return nil
	})
	if err != nil {
		return "", false, err
	}
	if queued {
		p.Out.Notify()
	}
	return id, !queued, nil
}

// MessageStatus is where a message sent with SendMessage is. It returns an error
// wrapping ErrNotFound for an unknown id.
func (p *Pipeline) MessageStatus(ctx context.Context, id string) (Status, error) {
	var row struct {
		ID      string         `db:"id"`
		Key     sql.NullString `db:"idem_key"`
		Chat    string         `db:"chat"`
		Status  string         `db:"status"`
		Created int64          `db:"created"`
		Updated int64          `db:"updated"`
		SentAt  int64          `db:"sent_at"`
		Session string         `db:"session"`
	}
	err := p.db.Get(ctx, &row, `SELECT id, idem_key, chat, status, created, updated, sent_at, session FROM outgoing WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Status{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Status{}, err
	}
	st := Status{ID: row.ID, Chat: row.Chat, Status: row.Status, Key: bareKey(row.Key.String), Created: time.UnixMilli(row.Created),
		Updated: time.UnixMilli(row.Updated), Session: row.Session}
	if row.SentAt > 0 {
		st.SentAt = time.UnixMilli(row.SentAt)
	}
	st.Replayed = p.wasReplayed(ctx, id)
	if row.Status != StatusQueued {
		return st, nil
	}
	// Queued: still in the queue (with its tries so far), or dead-lettered (failed).
	var item struct {
		Attempts  int    `db:"attempts"`
		LastError string `db:"last_error"`
	}
	err = p.db.Get(ctx, &item, `SELECT attempts, last_error FROM queue_items WHERE queue = ? AND json_extract(payload, '$.id') = ?
		ORDER BY id DESC LIMIT 1`, p.Out.Name(), id)
	switch {
	case err == nil:
		st.Attempts, st.Reason = item.Attempts, item.LastError
		return st, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Status{}, err
	}
	dls, err := p.deadLetters(ctx, id)
	if err != nil {
		return Status{}, err
	}
	for _, d := range dls {
		if d.Replayed == 0 {
			st.Status, st.Reason, st.Attempts, st.Updated = StatusFailed, d.Reason, d.Attempts, time.UnixMilli(d.DeadAt)
			return st, nil
		}
	}
	// Neither: it is being completed right now (the row turns "sent" in the same
	// transaction that removes the item), so it is still queued as far as anyone knows.
	return st, nil
}

// storedKey is an idempotency key as the outgoing table keeps it: as given for the
// session "default" (and a pipeline without one), "NAME\x1f" + key for the others, so
// that two numbers' senders never share a key (the second message would be taken for
// the first one's repeat and not sent).
func (p *Pipeline) storedKey(k string) string {
	if p.session == "" || p.session == "default" {
		return k
	}
	return p.session + "\x1f" + k
}

// bareKey is storedKey undone, whichever session stored it (MessageStatus may be asked
// of another session's pipeline once the message left).
func bareKey(k string) string {
	if name, rest, ok := strings.Cut(k, "\x1f"); ok && sessionName.MatchString(name) {
		return rest
	}
	return k
}

// sessionName is a session's name (config.SessionNameRE).
var sessionName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Holds reports whether the message id is in this pipeline's outbound queue or among
// its dead letters: which of several pipelines (sessions) a message still waiting or
// failed belongs to. A message that left holds no item anywhere.
func (p *Pipeline) Holds(ctx context.Context, id string) bool {
	var n int
	err := p.db.Get(ctx, &n, `SELECT (SELECT count(*) FROM queue_items WHERE queue = ? AND json_extract(payload, '$.id') = ?) +
		(SELECT count(*) FROM dead_letters WHERE queue = ? AND json_extract(payload, '$.id') = ?)`, p.Out.Name(), id, p.Out.Name(), id)
	return err == nil && n > 0
}

func (p *Pipeline) deadLetters(ctx context.Context, id string) ([]queue.DeadLetter, error) {
	var dls []queue.DeadLetter
	err := p.db.Select(ctx, &dls, `SELECT id, queue, item_id, payload, reason, attempts, enqueued, dead_at, replayed FROM dead_letters
		WHERE queue = ? AND json_extract(payload, '$.id') = ? ORDER BY id DESC`, p.Out.Name(), id)
	return dls, err
}

func (p *Pipeline) wasReplayed(ctx context.Context, id string) bool {
	dls, err := p.deadLetters(ctx, id)
	return err == nil && len(dls) > 0
}

// markSent records the server's acknowledgement, in the transaction that removes the
// item from the queue (queue.Options.Complete): exactly once, even across a kill -9.
func markSent(ctx context.Context, tx *store.Tx, id string) error {
	now := time.Now().UnixMilli()
	// A receipt may have come first (it races the acknowledgement's commit): then the
	// status stays delivered or read, and only the send time is recorded.
	_, err := tx.Exec(ctx, `UPDATE outgoing SET status = CASE status WHEN ? THEN ? ELSE status END, updated = max(updated, ?),
		sent_at = ? WHERE id = ? AND sent_at = 0`, StatusQueued, StatusSent, now, now, id)
	return err
}

// randomID is a message id in WhatsApp Web's shape ("3EB0" and hex), for a pipeline
// without a client to ask (PipelineOptions.NewID).
func randomID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return "3EB0" + strings.ToUpper(hex.EncodeToString(b))
}

// statusRank orders the statuses a receipt may move a message through.
var statusRank = map[string]int{StatusQueued: 0, StatusSent: 1, StatusDelivered: 2, StatusRead: 3}
