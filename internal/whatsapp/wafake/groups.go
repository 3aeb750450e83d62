package wafake

import (
	"strconv"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// AddGroup makes the server know a group and its members: the client's group info
// query (which whatsmeow makes before its first send to a group) lists them. An unknown
// group is answered with no members, so a send to it still reaches the server.
func (s *Server) AddGroup(group types.JID, members ...types.JID) {
	s.groups.Store(group.User, append([]types.JID(nil), members...))
}

// groupInfo answers a w:g2 query about the group in the IQ's "to".
func (s *Server) groupInfo(n *waBinary.Node) []waBinary.Node {
	to, _ := n.Attrs["to"].(types.JID)
	var parts []waBinary.Node
	if v, ok := s.groups.Load(to.User); ok {
		for _, m := range v.([]types.JID) {
			parts = append(parts, waBinary.Node{Tag: "participant", Attrs: waBinary.Attrs{"jid": m}})
		}
	}
	return []waBinary.Node{{Tag: "group", Attrs: waBinary.Attrs{"id": to.User, "subject": "group " + to.User,
		"creation": strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10), "addressing_mode": "pn"}, Content: parts}}
}
