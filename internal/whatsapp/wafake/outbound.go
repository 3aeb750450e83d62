package wafake

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// What the send path needs of the server: groups and their members, recipients that
// refuse messages (an error code in the ack, as the real server answers 463 or 479),
// receipts from the recipients, and the media host for uploads (whatsmeow asks for
// media_conn, then posts the encrypted file over HTTPS to the host named there; the
// client's HTTP client dials this server whatever the host, so uploads stay on
// loopback).

// Upload is a file the client uploaded: its path (/mms/<kind>/<token>), the size of the
// encrypted body, and whether the token is the body's SHA-256 as whatsmeow computes it.
type Upload struct {
	Kind    string
	Size    int
	TokenOK bool
	At      time.Time
}

// Uploads returns the uploads so far, in order.
func (s *Server) Uploads() []Upload {
	s.out.Lock()
	defer s.out.Unlock()
	return append([]Upload(nil), s.out.uploads...)
}

// AddGroup makes a group (JID user part, e.g. "120363000000000001") with members
// (user parts of phone JIDs); the bot is a member until LeaveGroup.
func (s *Server) AddGroup(id string, members ...string) {
	s.out.Lock()
	defer s.out.Unlock()
	if s.out.groups == nil {
		s.out.groups = map[string][]string{}
	}
	s.out.groups[id] = members
	delete(s.out.left, id)
}

// LeaveGroup removes the bot from a group: its info query answers 403 (forbidden).
func (s *Server) LeaveGroup(id string) {
	s.out.Lock()
	defer s.out.Unlock()
	if s.out.left == nil {
		s.out.left = map[string]bool{}
	}
	s.out.left[id] = true
}

// RefuseTo makes the server answer messages to a JID (user@server) with an error code
// in the ack (0: accept them again).
func (s *Server) RefuseTo(jid string, code int) {
	s.out.Lock()
	defer s.out.Unlock()
	if s.out.refuse == nil {
		s.out.refuse = map[string]int{}
	}
	if code == 0 {
		delete(s.out.refuse, jid)
		return
	}
	s.out.refuse[jid] = code
}

// AutoReceipts makes the recipients send these receipts for every message the server
// accepts, in order ("" delivered, "read"); none by default.
func (s *Server) AutoReceipts(kinds ...string) {
	s.out.Lock()
	defer s.out.Unlock()
	s.out.receipts = kinds
}

// OnMessage runs f for each message the server accepts, before the client gets the
// ack (a crash test's record of what reached WhatsApp: nothing acknowledged is missing
// from it).
func (s *Server) OnMessage(f func(Message)) {
	s.out.Lock()
	defer s.out.Unlock()
	s.out.onMessage = f
}

// ReceiptAcks returns how many receipts the server sent and how many of them the
// client acknowledged: a test closes the client only once they are equal (whatsmeow
// sends the acks on goroutines, and a Disconnect racing one trips its own data race).
func (s *Server) ReceiptAcks() (sent, acked int) {
	s.out.Lock()
	defer s.out.Unlock()
	return s.out.receiptsSent, s.out.receiptAcks
}

// noteAck counts the client's acks of receipts.
func (s *Server) noteAck(n *waBinary.Node) {
	if n.Attrs["class"] == "receipt" {
		s.out.Lock()
		s.out.receiptAcks++
		s.out.Unlock()
	}
}

// refusal is the error code for a message to jid (0: accepted).
func (s *Server) refusal(to types.JID) int {
	s.out.Lock()
	defer s.out.Unlock()
	return s.out.refuse[to.String()]
}

// afterAck sends the configured receipts for an accepted message.
func (s *Server) afterAck(c *Conn, to types.JID, id string, participants []string) {
	s.out.Lock()
	kinds := s.out.receipts
	s.out.Unlock()
	for _, k := range kinds {
		from := []types.JID{to}
		if to.Server == types.GroupServer {
			from = nil
			for _, p := range participants {
				if j, err := types.ParseJID(p); err == nil {
					from = append(from, j)
				}
			}
		}
		for _, f := range from {
			attrs := waBinary.Attrs{"id": id, "from": to, "t": strconv.FormatInt(time.Now().Unix(), 10)}
			if to.Server == types.GroupServer {
				attrs["participant"] = f.ToNonAD()
			}
			if k != "" {
				attrs["type"] = k
			}
			if c.Send(waBinary.Node{Tag: "receipt", Attrs: attrs}) == nil {
				s.out.Lock()
				s.out.receiptsSent++
				s.out.Unlock()
			}
		}
	}
}

// outboundIQ answers the IQs of the send path: media_conn, and group info. It reports
// whether it answered.
func (s *Server) outboundIQ(c *Conn, n *waBinary.Node, res waBinary.Node) bool {
	xmlns, _ := n.Attrs["xmlns"].(string)
	switch {
	case xmlns == "w:m":
		if _, ok := n.GetOptionalChildByTag("media_conn"); !ok {
			return false
		}
		res.Content = []waBinary.Node{{Tag: "media_conn", Attrs: waBinary.Attrs{"auth": "fake-auth", "ttl": "3600",
			"auth_ttl": "3600", "max_buckets": "12"}, Content: []waBinary.Node{{Tag: "host", Attrs: waBinary.Attrs{"hostname": "mmg.whatsapp.net"}}}}}
	case xmlns == "w:g2":
		to, _ := n.Attrs["to"].(types.JID)
		s.out.Lock()
		members, ok := s.out.groups[to.User]
		left := s.out.left[to.User]
		s.out.Unlock()
		switch {
		case !ok:
			_ = c.Send(iqError(res, 404, "item-not-found"))
			return true
		case left:
			_ = c.Send(iqError(res, 403, "forbidden"))
			return true
		}
		var parts []waBinary.Node
		for _, m := range members {
			parts = append(parts, waBinary.Node{Tag: "participant", Attrs: waBinary.Attrs{"jid": types.NewJID(m, types.DefaultUserServer)}})
		}
		res.Content = []waBinary.Node{{Tag: "group", Attrs: waBinary.Attrs{"id": to.User, "creation": "1700000000",
			"subject": "test group"}, Content: parts}}
	default:
		return false
	}
	_ = c.Send(res)
	return true
}

func iqError(res waBinary.Node, code int, text string) waBinary.Node {
	res.Attrs["type"] = "error"
	res.Content = []waBinary.Node{{Tag: "error", Attrs: waBinary.Attrs{"code": strconv.Itoa(code), "text": text}}}
	return res
}

// upload is the media host: it takes the encrypted file, checks the token whatsmeow
// derives from it, and answers the URL and direct path whatsmeow puts into the message.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/mms/"), "/")
	sum := sha256.Sum256(b)
	up := Upload{Kind: parts[0], Size: len(b), At: time.Now(),
		TokenOK: len(parts) == 2 && parts[1] == base64.URLEncoding.EncodeToString(sum[:]) && r.URL.Query().Get("auth") == "fake-auth"}
	s.out.Lock()
	s.out.uploads = append(s.out.uploads, up)
	n := len(s.out.uploads)
	s.out.Unlock()
	path := "/v/t62/fake-" + strconv.Itoa(n)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"url": "https://mmg.whatsapp.net" + path, "direct_path": path})
}

// outbound is the send path's state (its own lock: the server's mu guards the rest).
type outbound struct {
	sync.Mutex
	groups    map[string][]string
	left      map[string]bool
	refuse    map[string]int
	receipts  []string
	uploads   []Upload
	onMessage func(Message)

	receiptsSent, receiptAcks int
}
