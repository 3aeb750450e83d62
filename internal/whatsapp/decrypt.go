package whatsapp

import (
	"go.mau.fi/whatsmeow/types/events"
)

// undecryptable reports an incoming message that could not be decrypted (a broken Signal
// session: "Bad MAC", no session, no sender key) as WA_DECRYPT_FAILED with who sent it
// and in which chat — never its content, which nobody could read anyway. whatsmeow has
// already asked the sender to resend (a retry receipt, up to 4 per message, and once a
// request to the account's phone); a resend that decrypts arrives as a normal message,
// one that does not is reported again. whatsmeow emits nothing when a retry receipt
// cannot be sent or when it stops after the fourth (it only logs), so these events and
// the counter are the whole record of lost messages.
func (c *Conn) undecryptable(e *events.UndecryptableMessage) {
	kind := "bad_ciphertext"
	if e.IsUnavailable {
		kind = "unavailable" // the sender sent this device no ciphertext at all
	}
	labels := map[string]string{"sender": e.Info.Sender.User, "chat": e.Info.Chat.String(), "kind": kind}
	if e.DecryptFailMode != "" {
		labels["fail_mode"] = string(e.DecryptFailMode)
	}
	if c.opts.Undecryptable != nil {
		c.opts.Undecryptable(e.Info.Sender.User, e.Info.Chat.String())
	}
	c.emit("WA_DECRYPT_FAILED", labels, "message "+e.Info.ID+" could not be decrypted", 0)
}
