package wafake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/util/cbcutil"
	"go.mau.fi/whatsmeow/util/hkdfutil"
	"google.golang.org/protobuf/proto"
)

// mediaPrefix is the path of the server's media files; any host name reaches them
// through HTTPClient, as WhatsApp's media hosts (mmg.whatsapp.net) would.
const mediaPrefix = "/mms/"

// PutImage encrypts an image as a phone's upload would (WhatsApp's media encryption:
// keys from HKDF-SHA256 of a random media key with "WhatsApp Image Keys", AES-256-CBC,
// a 10-byte HMAC-SHA256 tag) and keeps it on the server; the returned message points at
// it, so the client's Download fetches it from this server and decrypts it.
func (s *Server) PutImage(plain []byte, mime, caption string) (*waE2E.ImageMessage, error) {
	key := make([]byte, 32)
	rand.Read(key)
	x := hkdfutil.SHA256(key, nil, []byte("WhatsApp Image Keys"), 112)
	iv, cipherKey, macKey := x[:16], x[16:48], x[48:80]
	ct, err := cbcutil.Encrypt(cipherKey, iv, plain)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, macKey)
	h.Write(iv)
	h.Write(ct)
	file := append(ct, h.Sum(nil)[:10]...)
	encSum, sum := sha256.Sum256(file), sha256.Sum256(plain)
	path := mediaPrefix + hex.EncodeToString(encSum[:8])
	s.media.Store(path, file)
	return &waE2E.ImageMessage{URL: proto.String("https://mmg.whatsapp.net" + path), DirectPath: proto.String(path),
		Mimetype: proto.String(mime), Caption: proto.String(caption), MediaKey: key, FileEncSHA256: encSum[:], FileSHA256: sum[:],
		FileLength: proto.Uint64(uint64(len(plain)))}, nil
}

// DropMedia forgets every media file: a download answers 404, as for expired media.
func (s *Server) DropMedia() { s.media.Clear() }

// FailMedia makes media downloads answer the HTTP status code (a media host's 5xx; 0:
// serve them again).
func (s *Server) FailMedia(code int) { s.mediaFail.Store(int32(code)) }

// serveMedia answers a media download; false for any other request.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, mediaPrefix) {
		return false
	}
	if code := s.mediaFail.Load(); code != 0 {
		http.Error(w, "media host failing", int(code))
		return true
	}
	v, ok := s.media.Load(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return true
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(v.([]byte))
	return true
}
