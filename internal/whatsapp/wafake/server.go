// Package wafake is a WhatsApp server for tests, on loopback. It speaks just enough of
// the protocol — the Noise handshake with a certificate chain, frames, binary XML, login
// and IQ answers — to drive the real whatsmeow client, and lets a test make it fail in
// each of the ways WHATSAPP.md lists. It must never be used outside tests.
package wafake

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/whatsmeow"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waCert"
	"go.mau.fi/whatsmeow/proto/waWa6"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"
	"google.golang.org/protobuf/proto"
)

// Server is a fake WhatsApp server. Its zero behaviour accepts every login.
type Server struct {
	srv      *httptest.Server
	mem      *memNet // set by NewInMemory instead of srv
	static   *keys.KeyPair
	root     [32]byte // the certificate chain's root key (whatsmeow.WACertPubKey)
	chain    []byte
	upgrader websocket.Upgrader

	down        atomic.Bool // refuse connections (an outage)
	answerPings atomic.Bool
	logins      atomic.Int64
	connects    atomic.Int64
	attempts    atomic.Int64 // every connection attempt, refused ones included
	registers   atomic.Int64
	refuseMsgs  atomic.Bool
	media       sync.Map // path → encrypted file (media.go)
	mediaFail   atomic.Int32

	mu         sync.Mutex
	conns      map[*Conn]struct{}
	onLogin    func(*Conn) // what happens after a login; default Success
	onRegister func(*Conn) // what happens when an unpaired client connects; default PairDevice
	linkPhone  string      // the number of the last phone-code pairing request
	messages   []Message
	out        outbound // groups, refusals, receipts, uploads (outbound.go)
	receipts   []string // ids of the messages the client acknowledged, in order
	loginTimes []time.Time

	// Per device (devices.go), keyed by the number a connection logged in as.
	onLoginOf  map[string]func(*Conn)
	loginsOf   map[string]int
	receiptsOf map[string][]string
	refuseFrom map[string]bool
	connSeq    uint64

	// CloseDelay is how long the server waits after a failure or stream error before it
	// closes the connection. whatsmeow drops nodes still queued when the socket closes,
	// and a real server gives the client a moment to read the error.
	CloseDelay time.Duration
}

// New starts a server and makes whatsmeow trust it. Every server in a process signs its
// certificate chain with the same root key (whatsmeow.WACertPubKey is a process global,
// set once), so tests using fake servers may run in parallel.
func New() (*Server, error) {
	s, err := newCore()
	if err != nil {
		return nil, err
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s, nil
}

// processRoot is the root key of every fake server's certificate chain in this process.
// whatsmeow reads its trusted root from a process global (whatsmeow.WACertPubKey) at each
// handshake; one root, set once before any server exists, means no server's start
// changes what another test's client trusts, and no write races a client's read.
var processRoot = sync.OnceValue(func() *keys.KeyPair {
	root := keys.NewKeyPair()
	trustRoot(*root.Pub)
	return root
})

var (
	trustMu  sync.Mutex
	trusted  [32]byte
	trustSet bool
)

// trustRoot makes whatsmeow trust root, writing the global only when it changes: a
// process writes it once (its own servers' root, or the root a parent process gave it).
func trustRoot(root [32]byte) {
	trustMu.Lock()
	defer trustMu.Unlock()
	if trustSet && trusted == root {
		return
	}
	whatsmeow.WACertPubKey = root
	trusted, trustSet = root, true
}

// newCore makes a server with its keys and certificates, not yet listening.
func newCore() (*Server, error) {
	root := processRoot()
	inter := keys.NewKeyPair()
	s := &Server{static: keys.NewKeyPair(), conns: map[*Conn]struct{}{}, CloseDelay: 200 * time.Millisecond}
	s.answerPings.Store(true)
	s.root = *root.Pub
	now := uint64(time.Now().Unix())
	interDetails, _ := proto.Marshal(&waCert.CertChain_NoiseCertificate_Details{Serial: proto.Uint32(1), IssuerSerial: proto.Uint32(0),
		Key: inter.Pub[:], NotBefore: proto.Uint64(now - 3600), NotAfter: proto.Uint64(now + 86400)})
	leafDetails, _ := proto.Marshal(&waCert.CertChain_NoiseCertificate_Details{Serial: proto.Uint32(2), IssuerSerial: proto.Uint32(1),
		Key: s.static.Pub[:], NotBefore: proto.Uint64(now - 3600), NotAfter: proto.Uint64(now + 86400)})
	interSig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*root.Priv), interDetails)
	leafSig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*inter.Priv), leafDetails)
	chain, err := proto.Marshal(&waCert.CertChain{
		Intermediate: &waCert.CertChain_NoiseCertificate{Details: interDetails, Signature: interSig[:]},
		Leaf:         &waCert.CertChain_NoiseCertificate{Details: leafDetails, Signature: leafSig[:]},
	})
	if err != nil {
		return nil, err
	}
	s.chain = chain
	s.upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	return s, nil
}

// Close stops the server.
func (s *Server) Close() {
	s.DropAll()
	if s.mem != nil {
		s.mem.close()
		return
	}
	s.srv.Close()
}

// HTTPClient is what the client must use (SetWebsocketHTTPClient): every dial goes to
// this server on loopback, whatever the host name, and TLS trusts its certificate.
func (s *Server) HTTPClient() *http.Client {
	if s.mem != nil {
		return s.mem.client()
	}
	base := s.srv.Client().Transport.(*http.Transport).Clone()
	base.TLSClientConfig = base.TLSClientConfig.Clone()
	base.TLSClientConfig.ServerName = "example.com" // httptest's certificate
	addr := s.srv.Listener.Addr().String()
	base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		if s.down.Load() {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	base.TLSClientConfig.NextProtos = []string{"http/1.1"}
	_ = tls.VersionTLS12
	return &http.Client{Transport: base}
}

// Logins counts successful handshakes with a login payload.
func (s *Server) Logins() int { return int(s.logins.Load()) }

// Attempts counts every connection attempt, also those refused while Down: each is a
// login a client tried to make.
func (s *Server) Attempts() int { return int(s.attempts.Load()) }

func (s *Server) login(c *Conn) {
	s.logins.Add(1)
	s.mu.Lock()
	s.loginTimes = append(s.loginTimes, time.Now())
	if s.loginsOf == nil {
		s.loginsOf = map[string]int{}
	}
	s.loginsOf[c.User()]++
	s.mu.Unlock()
}

// LoginTimes returns when each login happened, in order.
func (s *Server) LoginTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.loginTimes...)
}

// Connections is the number of open client connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// OnLogin sets what the server does after each login (nil: send <success/>).
func (s *Server) OnLogin(f func(*Conn)) {
	s.mu.Lock()
	s.onLogin = f
	s.mu.Unlock()
}

// AnswerPings sets whether keepalive pings are answered.
func (s *Server) AnswerPings(on bool) { s.answerPings.Store(on) }

// DropAll closes every connection, as a network drop or a server restart does.
func (s *Server) DropAll() {
	s.mu.Lock()
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Down makes the server unreachable (connections refused) and drops everyone; Up ends
// the outage.
func (s *Server) Down() { s.down.Store(true); s.DropAll() }

// RefuseNew refuses new connections (on) while keeping the open ones, as a network
// blip that starts just as the client is about to reconnect does.
func (s *Server) RefuseNew(on bool) { s.down.Store(on) }

// Up ends an outage.
func (s *Server) Up() { s.down.Store(false) }

// Each runs f on every open connection.
func (s *Server) Each(f func(*Conn)) {
	s.mu.Lock()
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		f(c)
	}
}

// Registrations is how many unpaired clients connected to pair.
func (s *Server) Registrations() int { return int(s.registers.Load()) }

// OnRegister replaces what happens when an unpaired client connects.
func (s *Server) OnRegister(f func(*Conn)) {
	s.mu.Lock()
	s.onRegister = f
	s.mu.Unlock()
}

// LinkPhone is the phone number of the last pairing-code request ("" if none).
func (s *Server) LinkPhone() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.linkPhone
}

// PairDevice offers pairing references; the client turns each into a QR code.
func (c *Conn) PairDevice(refs ...string) error {
	var kids []waBinary.Node
	for _, r := range refs {
		kids = append(kids, waBinary.Node{Tag: "ref", Content: []byte(r)})
	}
	return c.Send(waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{"id": "pair-1", "type": "set", "xmlns": "md", "from": types.ServerJID},
		Content: []waBinary.Node{{Tag: "pair-device", Content: kids}}})
}

// Conn is one client connection after the handshake.
type Conn struct {
	ws          *websocket.Conn
	read, write cipher.AEAD
	rctr, wctr  uint32
	wmu         sync.Mutex
	closed      atomic.Bool
	muted       atomic.Bool
	Payload     *waWa6.ClientPayload
	srv         *Server
	seq         uint64 // order of connection (ConnOf picks the newest)
}

// User is the account the client logged in as (its device's user part, "" while pairing).
func (c *Conn) User() string {
	if c.Payload == nil || c.Payload.Username == nil {
		return ""
	}
	return strconv.FormatUint(c.Payload.GetUsername(), 10)
}

// Send writes a node to the client.
func (c *Conn) Send(n waBinary.Node) error {
	data, err := waBinary.Marshal(n)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ct := c.write.Seal(nil, iv(c.wctr), data, nil)
	c.wctr++
	return c.ws.WriteMessage(websocket.BinaryMessage, frame(ct))
}

// Mute makes the connection half-open: the server keeps reading but never answers
// again (no FIN, pings unanswered), as when a NAT or the server drops the session
// silently. Other connections are unaffected.
func (c *Conn) Mute() { c.muted.Store(true) }

// Close closes the connection.
func (c *Conn) Close() {
	if c.closed.CompareAndSwap(false, true) {
		c.ws.Close()
	}
}

// Success logs the client in.
func (c *Conn) Success() error {
	return c.Send(waBinary.Node{Tag: "success", Attrs: waBinary.Attrs{"t": strconv.FormatInt(time.Now().Unix(), 10)}})
}

// Failure refuses the login with a reason (401 logged out, 402 temporary ban, 405
// client outdated, …) and closes; attrs add e.g. "code" and "expire" for a ban.
func (c *Conn) Failure(reason int, attrs map[string]string) error {
	a := waBinary.Attrs{"reason": strconv.Itoa(reason)}
	for k, v := range attrs {
		a[k] = v
	}
	err := c.Send(waBinary.Node{Tag: "failure", Attrs: a})
	c.closeSoon()
	return err
}

func (c *Conn) closeSoon() {
	time.AfterFunc(c.srv.CloseDelay, c.Close)
}

// StreamError sends <stream:error code=…> with an optional <conflict type=…/> and closes.
func (c *Conn) StreamError(code, conflict string) error {
	n := waBinary.Node{Tag: "stream:error", Attrs: waBinary.Attrs{}}
	if code != "" {
		n.Attrs["code"] = code
	}
	if conflict != "" {
		n.Content = []waBinary.Node{{Tag: "conflict", Attrs: waBinary.Attrs{"type": conflict}}}
	}
	err := c.Send(n)
	c.closeSoon()
	return err
}

func frame(data []byte) []byte {
	out := make([]byte, 3+len(data))
	out[0], out[1], out[2] = byte(len(data)>>16), byte(len(data)>>8), byte(len(data))
	copy(out[3:], data)
	return out
}

// frameReader splits websocket messages into frames (3-byte length + data); the first
// bytes of a connection are the "WA" header.
type frameReader struct {
	ws     *websocket.Conn
	buf    []byte
	header []byte
}

func (r *frameReader) next() ([]byte, error) {
	for {
		if r.header == nil && len(r.buf) >= 4 {
			r.header, r.buf = append([]byte{}, r.buf[:4]...), r.buf[4:]
		}
		if r.header != nil && len(r.buf) >= 3 {
			n := int(r.buf[0])<<16 | int(r.buf[1])<<8 | int(r.buf[2])
			if len(r.buf) >= 3+n {
				f := append([]byte{}, r.buf[3:3+n]...)
				r.buf = r.buf[3+n:]
				return f, nil
			}
		}
		_, msg, err := r.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		r.buf = append(r.buf, msg...)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/mms/") && r.Method == http.MethodPost {
		s.upload(w, r) // the media host (outbound.go)
		return
	}
	if s.serveMedia(w, r) { // downloads (media.go)
		return
	}
	s.attempts.Add(1)
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.connects.Add(1)
	fr := &frameReader{ws: ws}
	c, err := s.handshake(ws, fr)
	if err != nil {
		ws.Close()
		return
	}
	s.mu.Lock()
	s.connSeq++
	c.seq = s.connSeq
	s.conns[c] = struct{}{}
	onLogin := s.onLogin
	if f := s.onLoginOf[c.User()]; f != nil {
		onLogin = f
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	s.mu.Lock()
	onRegister := s.onRegister
	s.mu.Unlock()
	switch {
	case c.Payload.Username == nil && onRegister != nil:
		s.registers.Add(1)
		onRegister(c)
	case c.Payload.Username == nil:
		// An unpaired client: offer it pairing references, as the real server does.
		s.registers.Add(1)
		if err := c.PairDevice("ref-1", "ref-2"); err != nil {
			return
		}
	case onLogin != nil:
		s.login(c)
		onLogin(c)
	default:
		s.login(c)
		if err := c.Success(); err != nil {
			return
		}
	}
	for !c.closed.Load() {
		f, err := fr.next()
		if err != nil {
			return
		}
		pt, err := c.read.Open(nil, iv(c.rctr), f, nil)
		c.rctr++
		if err != nil {
			return
		}
		data, err := waBinary.Unpack(pt)
		if err != nil {
			continue
		}
		n, err := waBinary.Unmarshal(data)
		if err != nil {
			continue
		}
		s.answer(c, n)
	}
}

// answer replies to the client's IQs: a result with the same id; 50 pre-keys on the
// server for the encrypt count; pings only while AnswerPings is on.
func (s *Server) answer(c *Conn, n *waBinary.Node) {
	if c.muted.Load() {
		return
	}
	if n.Tag == "message" {
		s.message(c, n)
		return
	}
	if n.Tag == "receipt" {
		s.receipt(c, n)
		return
	}
	if n.Tag == "ack" {
		s.noteAck(n) // outbound.go
		return
	}
	if n.Tag != "iq" {
		return
	}
	if confirmed(n) {
		// The real server restarts the stream so the client logs in as the new device.
		_ = c.StreamError("515", "")
		return
	}
	if t := n.Attrs["type"]; t == "result" || t == "error" {
		return // the client's answers to the server's own IQs
	}
	id, _ := n.Attrs["id"].(string)
	xmlns, _ := n.Attrs["xmlns"].(string)
	if xmlns == "w:p" && !s.answerPings.Load() {
		return
	}
	res := waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{"id": id, "type": "result", "from": "s.whatsapp.net"}}
	if s.outboundIQ(c, n, res) {
		return
	}
	if xmlns == "encrypt" && n.Attrs["type"] == "get" {
		if q, ok := n.GetOptionalChildByTag("key"); ok {
			res.Content = preKeys(q)
		} else {
			res.Content = []waBinary.Node{{Tag: "count", Attrs: waBinary.Attrs{"value": "50"}}}
		}
	}
	if q, ok := n.GetOptionalChildByTag("usync"); ok && xmlns == "usync" {
		res.Content = devices(q)
	}
	if reg, ok := n.GetOptionalChildByTag("link_code_companion_reg"); ok && xmlns == "md" {
		// Pairing with a phone code: remember the number and hand back a pairing ref.
		jid, _ := reg.Attrs["jid"].(types.JID)
		s.mu.Lock()
		s.linkPhone = jid.User
		s.mu.Unlock()
		res.Content = []waBinary.Node{{Tag: "link_code_companion_reg", Content: []waBinary.Node{
			{Tag: "link_code_pairing_ref", Content: []byte("link-ref-1")}}}}
	}
	_ = c.Send(res)
}

func (s *Server) handshake(ws *websocket.Conn, fr *frameReader) (*Conn, error) {
	f, err := fr.next()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(fr.header[:2], []byte("WA")) {
		return nil, errors.New("bad header")
	}
	var hello waWa6.HandshakeMessage
	if err := proto.Unmarshal(f, &hello); err != nil || len(hello.GetClientHello().GetEphemeral()) != 32 {
		return nil, fmt.Errorf("client hello: %v", err)
	}
	clientEph := hello.GetClientHello().GetEphemeral()
	n := newNoise(fr.header)
	n.mixHash(clientEph)
	eph := keys.NewKeyPair()
	n.mixHash(eph.Pub[:])
	if err := n.mixKey(eph.Priv[:], clientEph); err != nil {
		return nil, err
	}
	encStatic := n.encrypt(s.static.Pub[:])
	if err := n.mixKey(s.static.Priv[:], clientEph); err != nil {
		return nil, err
	}
	encCert := n.encrypt(s.chain)
	out, _ := proto.Marshal(&waWa6.HandshakeMessage{ServerHello: &waWa6.HandshakeMessage_ServerHello{
		Ephemeral: eph.Pub[:], Static: encStatic, Payload: encCert}})
	if err := ws.WriteMessage(websocket.BinaryMessage, frame(out)); err != nil {
		return nil, err
	}
	f, err = fr.next()
	if err != nil {
		return nil, err
	}
	var finish waWa6.HandshakeMessage
	if err := proto.Unmarshal(f, &finish); err != nil {
		return nil, err
	}
	clientStatic, err := n.decrypt(finish.GetClientFinish().GetStatic())
	if err != nil {
		return nil, fmt.Errorf("client static: %w", err)
	}
	if err := n.mixKey(eph.Priv[:], clientStatic); err != nil {
		return nil, err
	}
	payloadBytes, err := n.decrypt(finish.GetClientFinish().GetPayload())
	if err != nil {
		return nil, fmt.Errorf("client payload: %w", err)
	}
	var payload waWa6.ClientPayload
	if err := proto.Unmarshal(payloadBytes, &payload); err != nil {
		return nil, err
	}
	read, write := n.transport()
	return &Conn{ws: ws, read: read, write: write, Payload: &payload, srv: s}, nil
}

// PairedStore writes a device store at path holding a logged-in device, as if pairing
// had happened, for tests against this server. Its number is DefaultUser.
func PairedStore(ctx context.Context, path string) error {
	return PairedStoreAs(ctx, path, DefaultUser)
}

// PairedStoreAs is PairedStore for the account user (digits): devices of different
// accounts are told apart on the server (Conn.User, Message.From), as several remedy
// sessions are.
func PairedStoreAs(ctx context.Context, path, user string) error {
	_, err := pairedDevice(ctx, path, user)
	return err
}
