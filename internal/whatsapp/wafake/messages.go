package wafake

import (
	"encoding/binary"
	"strconv"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"
)

// Message is a message the client sent, as the server saw it: encrypted for each of the
// recipient's devices, so only who, which id and how many ciphertexts are known.
type Message struct {
	ID, To       string // To: the recipient's user part ("6281…", a group's "120363…")
	From         string // the sending client's account (Conn.User)
	Chat         string // the recipient's whole JID ("6281…@s.whatsapp.net", "120363…@g.us")
	Type         string // the node's type: text, media, reaction
	Ciphertexts  int
	ReceivedAt   time.Time
	Participants []string
}

// Messages returns the messages received so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Receipts returns the ids of the messages the client sent a receipt for (acknowledged:
// a real server would not deliver them again), in order.
func (s *Server) Receipts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.receipts...)
}

func (s *Server) receipt(c *Conn, n *waBinary.Node) {
	if n.Attrs["type"] == "retry" {
		return // a request to send again, not an acknowledgement
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	if id, ok := n.Attrs["id"].(string); ok {
		ids = append(ids, id)
	}
	if list, ok := n.GetOptionalChildByTag("list"); ok { // several messages in one receipt
		for _, it := range list.GetChildren() {
			if id, ok := it.Attrs["id"].(string); ok {
				ids = append(ids, id)
			}
		}
	}
	s.receipts = append(s.receipts, ids...)
	if s.receiptsOf == nil {
		s.receiptsOf = map[string][]string{}
	}
	u := c.User()
	s.receiptsOf[u] = append(s.receiptsOf[u], ids...)
}

// RefuseMessages makes the server answer every message with error 500 (on) or accept
// them again (off).
func (s *Server) RefuseMessages(on bool) { s.refuseMsgs.Store(on) }

// message acknowledges a <message> and records it. Every recipient has one device (0),
// whose keys the server makes up: the client encrypts for real, nobody decrypts.
func (s *Server) message(c *Conn, n *waBinary.Node) {
	id, _ := n.Attrs["id"].(string)
	to, _ := n.Attrs["to"].(types.JID)
	ack := waBinary.Node{Tag: "ack", Attrs: waBinary.Attrs{"class": "message", "id": id, "from": to,
		"t": strconv.FormatInt(time.Now().Unix(), 10)}}
	if s.refuseMsgs.Load() || s.refusesFrom(c.User()) {
		ack.Attrs["error"] = "500"
		_ = c.Send(ack)
		return
	}
	if code := s.refusal(to); code != 0 {
		ack.Attrs["error"] = strconv.Itoa(code)
		_ = c.Send(ack)
		return
	}
	m := Message{ID: id, To: to.User, From: c.User(), Chat: to.String(), ReceivedAt: time.Now()}
	m.Type, _ = n.Attrs["type"].(string)
	if parts, ok := n.GetOptionalChildByTag("participants"); ok {
		for _, p := range parts.GetChildren() {
			if jid, ok := p.Attrs["jid"].(types.JID); ok {
				m.Participants = append(m.Participants, jid.String())
			}
			m.Ciphertexts += len(p.GetChildren())
		}
	}
	s.mu.Lock()
	s.messages = append(s.messages, m)
	s.mu.Unlock()
	s.out.Lock()
	on := s.out.onMessage
	s.out.Unlock()
	if on != nil {
		on(m)
	}
	_ = c.Send(ack)
	s.afterAck(c, to, id, m.Participants)
}

// devices answers a usync device query: each user has only a phone (device 0).
func devices(q waBinary.Node) []waBinary.Node {
	list, _ := q.GetOptionalChildByTag("list")
	var users []waBinary.Node
	for _, u := range list.GetChildren() {
		jid, ok := u.Attrs["jid"].(types.JID)
		if !ok {
			continue
		}
		users = append(users, waBinary.Node{Tag: "user", Attrs: waBinary.Attrs{"jid": jid.ToNonAD()}, Content: []waBinary.Node{
			{Tag: "devices", Content: []waBinary.Node{{Tag: "device-list", Content: []waBinary.Node{
				{Tag: "device", Attrs: waBinary.Attrs{"id": "0"}}}}}}}})
	}
	return []waBinary.Node{{Tag: "usync", Content: []waBinary.Node{{Tag: "list", Content: users}}}}
}

// preKeys answers a pre-key fetch with a fresh, correctly signed bundle per device.
func preKeys(q waBinary.Node) []waBinary.Node {
	var users []waBinary.Node
	for _, u := range q.GetChildren() {
		jid, ok := u.Attrs["jid"].(types.JID)
		if !ok {
			continue
		}
		identity := keys.NewKeyPair()
		signed := identity.CreateSignedPreKey(1)
		one := keys.NewPreKey(2)
		reg := make([]byte, 4)
		binary.BigEndian.PutUint32(reg, 4242)
		users = append(users, waBinary.Node{Tag: "user", Attrs: waBinary.Attrs{"jid": jid}, Content: []waBinary.Node{
			{Tag: "registration", Content: reg},
			{Tag: "type", Content: []byte{5}}, // DJB
			{Tag: "identity", Content: identity.Pub[:]},
			keyNode("skey", signed),
			keyNode("key", one),
		}})
	}
	return []waBinary.Node{{Tag: "list", Content: users}}
}

func keyNode(tag string, k *keys.PreKey) waBinary.Node {
	id := make([]byte, 4)
	binary.BigEndian.PutUint32(id, k.KeyID)
	kids := []waBinary.Node{{Tag: "id", Content: id[1:]}, {Tag: "value", Content: k.Pub[:]}}
	if k.Signature != nil {
		kids = append(kids, waBinary.Node{Tag: "signature", Content: k.Signature[:]})
	}
	return waBinary.Node{Tag: tag, Content: kids}
}
