package chat

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// An upload is two files in the media directory: the bytes, named by their SHA-256
// (shared: the same file uploaded twice is stored once), and the upload's description,
// named ID.json, where ID is the SHA-256 of the description itself (kind, type, file
// name, size and the bytes' SHA-256). So each upload keeps its own description: the same
// bytes uploaded as invoice.pdf and then as a picture are two uploads with two IDs, and
// the same bytes with the same description are one (uploading again is idempotent).
// Descriptions written before this scheme have no Content: their bytes are named ID.

// upload is an upload's description as stored in ID.json.
type upload struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	MIME     string `json:"mime"`
	FileName string `json:"file_name,omitempty"`
	Size     int64  `json:"size"`
	// Content is the SHA-256 of the bytes, the name of their file ("": ID).
	Content string `json:"sha256,omitempty"`
}

// blob is the name of the upload's bytes file.
func (u upload) blob() string {
	if u.Content != "" {
		return u.Content
	}
	return u.ID
}

// describe builds the description of data with m's kind, type and file name.
func describe(m Media, data []byte) upload {
	sum := sha256.Sum256(data)
	u := upload{Kind: m.Kind, MIME: m.MIME, FileName: m.FileName, Size: int64(len(data)), Content: hex.EncodeToString(sum[:])}
	b, _ := json.Marshal(u)
	id := sha256.Sum256(b)
	u.ID = hex.EncodeToString(id[:])
	return u
}

// isHexID reports whether s is a 64-digit lowercase hex name (an ID or a Content).
func isHexID(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// readUpload reads an upload's description.
func (p *Pipeline) readUpload(id string) (upload, error) {
	b, err := os.ReadFile(filepath.Join(p.mediaDir, id+".json"))
	if err != nil {
		return upload{}, err
	}
	var u upload
	if err := json.Unmarshal(b, &u); err != nil {
		return upload{}, fmt.Errorf("media %s: %w", id, err)
	}
	u.ID = id
	if u.Content != "" && !isHexID(u.Content) {
		return upload{}, fmt.Errorf("media %s: bad content name %q", id, u.Content)
	}
	return u, nil
}

// checkFileName refuses a file name a recipient would misread or a file system would
// misuse: empty after trimming is fine (no name), but no more than 255 bytes, valid
// UTF-8, no path separator, and no control or bidirectional formatting character
// (Unicode category Cc or Cf: U+202E RIGHT-TO-LEFT OVERRIDE shows "invexe.pdf" for
// "inv\u202efdp.exe").
func checkFileName(name string) error {
	const rule = "media.file_name: a file name of at most 255 bytes of UTF-8, without / or \\ and without control or bidirectional formatting characters"
	if len(name) > 255 || strings.ContainsAny(name, "/\\") || !validUTF8(name) {
		return invalid("%s", rule)
	}
	for _, r := range name {
		if unicode.In(r, unicode.Cc, unicode.Cf) {
			return invalid("%s (found %U)", rule, r)
		}
	}
	return nil
}

func validUTF8(s string) bool {
	return strings.ToValidUTF8(s, "\uFFFD") == s && !strings.ContainsRune(s, '\uFFFD')
}

// checkSniffed compares a declared type with what the bytes are
// (http.DetectContentType, the WHATSWG MIME sniffing algorithm): an image must be the
// image type it says; audio and video must not be text or a document format the
// sniffer recognises (their containers are not all recognised, so an unrecognised
// binary passes); any other type must not hide HTML or XML, which a browser or a
// phone's viewer would run. It returns a *MediaError (415) for a mismatch.
func checkSniffed(kind, declared string, data []byte) error {
	mt, _, _ := mime.ParseMediaType(declared)
	sniffed, _, _ := mime.ParseMediaType(http.DetectContentType(data))
	mismatch := false
	switch {
	case kind == "image" || kind == "sticker" || strings.HasPrefix(mt, "image/"):
		mismatch = sniffed != mt
	case kind == "video" || kind == "audio":
		mismatch = !(strings.HasPrefix(sniffed, "video/") || strings.HasPrefix(sniffed, "audio/") ||
			sniffed == "application/ogg" || sniffed == "application/octet-stream")
	default:
		active := sniffed == "text/html" || sniffed == "text/xml"
		mismatch = active && mt != sniffed && mt != "application/xhtml+xml" && mt != "application/xml"
	}
	if mismatch {
		return &MediaError{Kind: kind, Type: declared, Sniffed: sniffed}
	}
	return nil
}

// errNoUpload is an upload ID with no description.
var errNoUpload = errors.New("no such upload")
