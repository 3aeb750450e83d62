package wafake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"go.mau.fi/libsignal/ecc"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"
	"google.golang.org/protobuf/proto"
)

// PairSuccess plays the phone that scanned qr: it signs a device identity for the
// client's identity key with a fresh account key, authenticates it with the ADV secret
// from the code, and sends <pair-success> for jid. When the client confirms, the server
// sends stream error 515 and the client logs in with its new identity.
func (c *Conn) PairSuccess(qr string, jid types.JID) error {
	parts := strings.Split(qr, ",")
	if len(parts) != 4 {
		return errors.New("not a WhatsApp pairing code")
	}
	identity, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	adv, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil {
		return err
	}
	details, _ := proto.Marshal(&waAdv.ADVDeviceIdentity{RawID: proto.Uint32(7), Timestamp: proto.Uint64(uint64(time.Now().Unix())),
		KeyIndex: proto.Uint32(1)})
	account := keys.NewKeyPair()
	msg := append(append([]byte{6, 0}, details...), identity...) // the account signature prefix
	sig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*account.Priv), msg)
	signed, _ := proto.Marshal(&waAdv.ADVSignedDeviceIdentity{Details: details, AccountSignatureKey: account.Pub[:], AccountSignature: sig[:]})
	mac := hmac.New(sha256.New, adv)
	mac.Write(signed)
	container, _ := proto.Marshal(&waAdv.ADVSignedDeviceIdentityHMAC{Details: signed, HMAC: mac.Sum(nil)})
	lid := types.NewJID("1"+jid.User, types.HiddenUserServer)
	lid.Device = jid.Device
	return c.Send(waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{"id": "pair-2", "type": "set", "xmlns": "md", "from": types.ServerJID},
		Content: []waBinary.Node{{Tag: "pair-success", Content: []waBinary.Node{
			{Tag: "device-identity", Content: container},
			{Tag: "device", Attrs: waBinary.Attrs{"jid": jid, "lid": lid}},
			{Tag: "platform", Attrs: waBinary.Attrs{"name": "android"}},
		}}}})
}

// confirmed reports whether n is the client's answer to <pair-success>.
func confirmed(n *waBinary.Node) bool {
	_, ok := n.GetOptionalChildByTag("pair-device-sign")
	return ok && n.Attrs["type"] == "result"
}
