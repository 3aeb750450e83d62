package wafake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/keys/prekey"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/session"
	"go.mau.fi/libsignal/util/optional"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	waLog "go.mau.fi/whatsmeow/util/log"
	"google.golang.org/protobuf/proto"
)

// Phone is another WhatsApp user (an admin, a customer) who writes to the client. It
// keeps real Signal sessions in its own store, so the client decrypts what it sends
// exactly as it would a message from a phone.
type Phone struct {
	JID       types.JID
	container *sqlstore.Container
	dev       *store.Device
}

// NewPhone makes a user with a number, its keys in a store under dir.
func NewPhone(ctx context.Context, dir, number string) (*Phone, error) {
	c, err := sqlstore.New(ctx, "sqlite", "file:"+filepath.Join(dir, "phone-"+number+".db")+"?_pragma=foreign_keys(1)", waLog.Noop)
	if err != nil {
		return nil, err
	}
	dev := c.NewDevice()
	jid := types.NewJID(number, types.DefaultUserServer)
	dev.ID = &jid
	dev.Account = &waAdv.ADVSignedDeviceIdentity{Details: []byte{0}, AccountSignatureKey: make([]byte, 32),
		AccountSignature: make([]byte, 64), DeviceSignature: make([]byte, 64)}
	if err := dev.Save(ctx); err != nil { // saving wires up the device's Signal stores
		c.Close()
		return nil, err
	}
	return &Phone{JID: jid, container: c, dev: dev}, nil
}

// Close closes the phone's store.
func (p *Phone) Close() error { return p.container.Close() }

// Send encrypts text for the client device to (its keys from its store, as the server
// would hand them out) and delivers it over c.
func (p *Phone) Send(ctx context.Context, c *Conn, to *store.Device, text string) (string, error) {
	n, err := p.Prepare(ctx, to, text)
	if err != nil {
		return "", err
	}
	return n.Attrs["id"].(string), c.Send(n)
}

// Prepare encrypts text for the client device to and returns the message node, ready for
// Conn.Send (a load test encrypts ahead, so that only delivery is measured). Messages
// must be sent in the order they were prepared: each advances the Signal session.
func (p *Phone) Prepare(ctx context.Context, to *store.Device, text string) (waBinary.Node, error) {
	return p.PrepareMessage(ctx, to, &waE2E.Message{Conversation: proto.String(text)})
}

// PrepareMessage is Prepare for any message (an image, a location, a reaction, a quote).
func (p *Phone) PrepareMessage(ctx context.Context, to *store.Device, msg *waE2E.Message) (waBinary.Node, error) {
	if to.ID == nil || to.SignedPreKey == nil {
		return waBinary.Node{}, errors.New("the client is not paired")
	}
	addr := to.ID.SignalAddress()
	builder := session.NewBuilderFromSignal(p.dev, addr, store.SignalProtobufSerializer)
	if ok, err := p.dev.ContainsSession(ctx, addr); err != nil {
		return waBinary.Node{}, err
	} else if !ok {
		spk := to.SignedPreKey
		bundle := prekey.NewBundle(to.RegistrationID, uint32(to.ID.Device), optional.NewEmptyUint32(), spk.KeyID,
			nil, ecc.NewDjbECPublicKey(*spk.Pub), *spk.Signature, identity.NewKey(ecc.NewDjbECPublicKey(*to.IdentityKey.Pub)))
		if err := builder.ProcessBundle(ctx, bundle); err != nil {
			return waBinary.Node{}, err
		}
	}
	plain, err := proto.Marshal(msg)
	if err != nil {
		return waBinary.Node{}, err
	}
	ct, err := session.NewCipher(builder, addr).Encrypt(ctx, pad(plain))
	if err != nil {
		return waBinary.Node{}, err
	}
	encType := "msg"
	if ct.Type() == protocol.PREKEY_TYPE {
		encType = "pkmsg"
	}
	var idb [8]byte
	rand.Read(idb[:])
	id := "3EB0" + strings.ToUpper(hex.EncodeToString(idb[:]))
	return waBinary.Node{Tag: "message", Attrs: waBinary.Attrs{"from": p.JID, "id": id, "type": "text",
		"t": strconv.FormatInt(time.Now().Unix(), 10), "notify": "Admin"},
		Content: []waBinary.Node{{Tag: "enc", Attrs: waBinary.Attrs{"v": "2", "type": encType}, Content: ct.Serialize()}}}, nil
}

// CorruptMAC flips the last byte of the Signal message inside a prepared message node:
// its MAC no longer matches ("Bad MAC", as after a session corruption) while the
// envelope still parses, so the client tries and fails to decrypt it.
func CorruptMAC(n waBinary.Node) (waBinary.Node, error) {
	enc := n.GetChildren()[0]
	ct := append([]byte(nil), enc.Content.([]byte)...)
	inner := ct
	if enc.Attrs["type"] == "pkmsg" {
		pk, err := protocol.NewPreKeySignalMessageFromBytes(ct, store.SignalProtobufSerializer.PreKeySignalMessage,
			store.SignalProtobufSerializer.SignalMessage)
		if err != nil {
			return n, err
		}
		raw := pk.WhisperMessage().Serialize()
		at := bytes.Index(ct, raw)
		if at < 0 {
			return n, errors.New("inner Signal message not found")
		}
		inner = ct[at : at+len(raw)]
	}
	inner[len(inner)-1] ^= 0xff
	enc.Content = ct
	n.Content = []waBinary.Node{enc}
	return n, nil
}

// pad adds WhatsApp's random padding: n bytes of value n, 1 ≤ n ≤ 15.
func pad(b []byte) []byte {
	var r [1]byte
	rand.Read(r[:])
	n := int(r[0]&0xf) | 1
	for range n {
		b = append(b, byte(n))
	}
	return b
}
