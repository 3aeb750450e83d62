package wafake

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// noise is the responder's side of Noise_XX_25519_AESGCM_SHA256 as WhatsApp uses it
// (WHATSAPP.md, "Testing against the real client on loopback").
type noise struct {
	hash, salt []byte
	key        cipher.AEAD
	counter    uint32
}

const pattern = "Noise_XX_25519_AESGCM_SHA256\x00\x00\x00\x00"

func gcm(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

func iv(n uint32) []byte {
	v := make([]byte, 12)
	binary.BigEndian.PutUint32(v[8:], n)
	return v
}

func newNoise(header []byte) *noise {
	n := &noise{hash: []byte(pattern)} // 32 bytes: used as is
	n.salt = n.hash
	n.key = gcm(n.hash)
	n.mixHash(header)
	return n
}

func (n *noise) mixHash(data []byte) {
	h := sha256.Sum256(append(append([]byte{}, n.hash...), data...))
	n.hash = h[:]
}

func expand(salt, ikm []byte) ([]byte, []byte) {
	r := hkdf.New(sha256.New, ikm, salt, nil)
	a, b := make([]byte, 32), make([]byte, 32)
	io.ReadFull(r, a)
	io.ReadFull(r, b)
	return a, b
}

func (n *noise) mixKey(priv, pub []byte) error {
	secret, err := curve25519.X25519(priv, pub)
	if err != nil {
		return err
	}
	n.counter = 0
	var k []byte
	n.salt, k = expand(n.salt, secret)
	n.key = gcm(k)
	return nil
}

func (n *noise) encrypt(p []byte) []byte {
	c := n.key.Seal(nil, iv(n.counter), p, n.hash)
	n.counter++
	n.mixHash(c)
	return c
}

func (n *noise) decrypt(c []byte) ([]byte, error) {
	p, err := n.key.Open(nil, iv(n.counter), c, n.hash)
	n.counter++
	if err == nil {
		n.mixHash(c)
	}
	return p, err
}

// transport returns the keys after the handshake: the client writes with the first and
// reads with the second, so the server reads with the first.
func (n *noise) transport() (read, write cipher.AEAD) {
	a, b := expand(n.salt, nil)
	return gcm(a), gcm(b)
}
