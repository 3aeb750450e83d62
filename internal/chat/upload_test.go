package chat

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// pngBytes is the start of a PNG file (what DetectContentType recognises).
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00")

// Issue 26, A12: each upload keeps its own description. The same bytes uploaded as an
// invoice and then as a picture are two uploads (two ids), each sent with its own kind,
// type and name; the bytes are stored once; the same upload again is the same id.
func TestUploadDescriptionIsPerUpload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, _ := sendPipeline(t, ctx, &wire{}, &eventLog{}, SendLimits{})
	data := append([]byte(nil), pngBytes...)
	invoice, err := p.SaveMedia(ctx, Media{Data: data, MIME: "application/pdf", FileName: "invoice.pdf"})
	if err != nil {
		t.Fatal(err)
	}
	picture, err := p.SaveMedia(ctx, Media{Data: data, MIME: "image/png"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.SaveMedia(ctx, Media{Data: data, MIME: "application/pdf", FileName: "invoice.pdf"})
	if err != nil {
		t.Fatal(err)
	}
	if invoice.ID == picture.ID || again.ID != invoice.ID {
		t.Fatalf("ids: invoice %s, picture %s, invoice again %s", invoice.ID, picture.ID, again.ID)
	}
	m, err := p.resolveMedia(ctx, Media{ID: invoice.ID})
	if err != nil || m.Kind != "document" || m.MIME != "application/pdf" || m.FileName != "invoice.pdf" {
		t.Fatalf("the invoice's reference: %+v, %v", m, err)
	}
	if m, err := p.resolveMedia(ctx, Media{ID: picture.ID}); err != nil || m.Kind != "image" || m.FileName != "" {
		t.Fatalf("the picture's reference: %+v, %v", m, err)
	}
	for _, id := range []string{invoice.ID, picture.ID} {
		if b, err := p.loadMedia(id); err != nil || string(b) != string(data) {
			t.Fatalf("bytes of %s: %v", id, err)
		}
	}
	if n, _ := dirSize(p.mediaDir); n > int64(len(data))+4096 {
		t.Fatalf("the bytes are stored more than once: %d bytes in the directory", n)
	}
}

// Issue 26, A11, as a kind: an upload's declared type is what its bytes are. Seeded
// random bodies (images, HTML, XML, PDF, plain text, random binary) declared as random
// types of every kind; invariant: an accepted image or sticker sniffs as its declared
// type, an accepted audio or video is not text, and no accepted upload hides HTML or
// XML under another type. The named case: HTML bytes declared image/png are a 415.
func TestUploadTypeIsCheckedAgainstTheBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, _ := sendPipeline(t, ctx, &wire{}, &eventLog{}, SendLimits{})
	_, err := p.SaveMedia(ctx, Media{Data: []byte("<!doctype html><script>alert(1)</script>"), MIME: "image/png"})
	var me *MediaError
	if !errors.As(err, &me) || me.Sniffed != "text/html" || !strings.Contains(err.Error(), "the bytes are text/html") {
		t.Fatalf("HTML declared image/png: %v", err)
	}

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	bodies := [][]byte{pngBytes, []byte("\xff\xd8\xff\xe0\x00\x10JFIF"), []byte("RIFF\x00\x00\x00\x00WEBPVP8 "),
		[]byte("<html><body>x"), []byte("<?xml version=\"1.0\"?><svg/>"), []byte("%PDF-1.7\n"), []byte("plain words\n"),
		[]byte("\x00\x00\x00\x18ftypmp42"), []byte("OggS\x00\x02"), []byte("ID3\x03\x00")}
	types := []string{"image/png", "image/jpeg", "image/webp", "video/mp4", "audio/ogg", "audio/mpeg", "application/pdf",
		"text/plain", "text/html", "application/zip", "text/csv"}
	for i := range 300 {
		body := append([]byte(nil), bodies[rng.IntN(len(bodies))]...)
		if rng.IntN(3) == 0 {
			body = make([]byte, 1+rng.IntN(64))
			for j := range body {
				body[j] = byte(rng.UintN(256))
			}
		}
		body = append(body, byte(i), byte(i>>8)) // distinct uploads
		typ := types[rng.IntN(len(types))]
		m, err := p.SaveMedia(ctx, Media{Data: body, MIME: typ})
		if err != nil {
			if !errors.As(err, &me) {
				t.Fatalf("%q as %s: %v, want a *MediaError", body, typ, err)
			}
			continue
		}
		sniffed := strings.SplitN(http.DetectContentType(body), ";", 2)[0]
		switch {
		case (m.Kind == "image" || m.Kind == "sticker") && sniffed != typ,
			(m.Kind == "audio" || m.Kind == "video") && strings.HasPrefix(sniffed, "text/"),
			(sniffed == "text/html" || sniffed == "text/xml") && typ != sniffed:
			t.Fatalf("accepted %q (sniffed %s) as %s, kind %s", body, sniffed, typ, m.Kind)
		}
	}
}

// Issue 26, A11, as a kind: a file name has no control or bidirectional formatting
// character. Seeded random names from letters, dots, control characters, U+202E and the
// other bidi controls; invariant: a name is accepted exactly when it has none of them,
// and every stored name has none. The named case: "inv\n\u202efdp.exe".
func TestUploadFileNameHasNoControlOrBidiCharacter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, _ := sendPipeline(t, ctx, &wire{}, &eventLog{}, SendLimits{})
	if _, err := p.SaveMedia(ctx, Media{Data: []byte("%PDF-1.7 a"), MIME: "application/pdf", FileName: "inv\n\u202efdp.exe"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a right-to-left override in the name: %v, want ErrInvalid", err)
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	alphabet := []rune("abcXYZ.-_ 0é漢\u202e\u202d\u2066\u2069\u200f\u200e\n\r\t\x00\x1b\x7f\u0085\ufeff")
	for i := range 500 {
		name := make([]rune, 1+rng.IntN(12))
		for j := range name {
			name[j] = alphabet[rng.IntN(len(alphabet))]
		}
		bad := strings.ContainsFunc(string(name), func(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf) })
		m, err := p.SaveMedia(ctx, Media{Data: []byte("%PDF-1.7 " + string(rune('a'+i%26)) + string(name)), MIME: "application/pdf", FileName: string(name)})
		if bad != (err != nil) {
			t.Fatalf("name %q: %v (has a control or format character: %v)", string(name), err, bad)
		}
		if err == nil {
			u, err := p.readUpload(m.ID)
			if err != nil || strings.ContainsFunc(u.FileName, func(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf) }) {
				t.Fatalf("stored name %q, %v", u.FileName, err)
			}
		}
	}
}

// Issue 26, A13: uploads stop at the media directory's cap and at the disk's free-space
// floor with ErrMediaFull and a WA_MEDIA_FULL event, before remedy's own writes would fail;
// CLEAN_DATA target media (PruneMedia) frees what no message needs, and uploads work
// again.
func TestMediaStopsAtItsCapAndFloor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := &eventLog{}
	p, _ := sendPipeline(t, ctx, &wire{}, ev, SendLimits{})
	p.mediaMaxTotal = 64 << 10
	saved := 0
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		data := append([]byte("%PDF-1.7\n"), make([]byte, 8<<10)...)
		data[len(data)-1] = byte(i)
		if _, err = p.SaveMedia(ctx, Media{Data: data, MIME: "application/pdf"}); err == nil {
			saved++
		}
	}
	if !errors.Is(err, ErrMediaFull) || saved == 0 {
		t.Fatalf("after %d uploads: %v, want ErrMediaFull", saved, err)
	}
	if n, _ := dirSize(p.mediaDir); n > p.mediaMaxTotal {
		t.Fatalf("the directory holds %d bytes, its cap is %d", n, p.mediaMaxTotal)
	}
	if got := ev.codes("WA_MEDIA_FULL"); len(got) == 0 {
		t.Fatal("no WA_MEDIA_FULL event")
	}
	// Age the files past blobGrace: the bytes of an upload without a description are
	// kept that long.
	old := time.Now().Add(-time.Hour)
	entries, _ := os.ReadDir(p.mediaDir)
	for _, e := range entries {
		os.Chtimes(filepath.Join(p.mediaDir, e.Name()), old, old)
	}
	rep, err := p.PruneMedia(ctx)
	if err != nil || !strings.Contains(rep, "deleted") {
		t.Fatalf("CLEAN_DATA media: %q, %v", rep, err)
	}
	if n, _ := dirSize(p.mediaDir); n != 0 {
		t.Fatalf("%d bytes left after pruning unneeded uploads", n)
	}
	if _, err := p.SaveMedia(ctx, Media{Data: []byte("%PDF-1.7 after"), MIME: "application/pdf"}); err != nil {
		t.Fatalf("after CLEAN_DATA: %v", err)
	}

	p.mediaMinFree = 1 << 62 // more than any disk has
	if _, err := p.SaveMedia(ctx, Media{Data: []byte("%PDF-1.7 floor"), MIME: "application/pdf"}); !errors.Is(err, ErrMediaFull) || !strings.Contains(err.Error(), "free") {
		t.Fatalf("below the floor: %v, want ErrMediaFull naming the free space", err)
	}
}

// FuzzUploadChecks: for any file name, declared type and bytes, an accepted name has no
// control or format character, no separator, is valid UTF-8 of at most 255 bytes; an
// accepted image is what it says; nothing accepted hides HTML under another type.
// go test -fuzz FuzzUploadChecks ./internal/chat/
func FuzzUploadChecks(f *testing.F) {
	f.Add("inv\n\u202efdp.exe", "image/png", []byte("<!doctype html>"))
	f.Add("invoice.pdf", "application/pdf", []byte("%PDF-1.7"))
	f.Add("a\u2066b", "text/plain", pngBytes)
	f.Fuzz(func(t *testing.T, name, typ string, data []byte) {
		if err := checkFileName(name); err == nil {
			if len(name) > 255 || strings.ContainsAny(name, "/\\") || !utf8.ValidString(name) ||
				strings.ContainsFunc(name, func(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf) }) {
				t.Fatalf("accepted name %q", name)
			}
		}
		kind, err := kindOf("", typ)
		if err != nil || len(data) == 0 {
			return
		}
		if checkSniffed(kind, typ, data) == nil {
			sniffed := strings.SplitN(http.DetectContentType(data), ";", 2)[0]
			mt := strings.SplitN(strings.ToLower(strings.TrimSpace(typ)), ";", 2)[0]
			if kind == "image" && sniffed != mt {
				t.Fatalf("accepted %q as %s (sniffed %s)", data, typ, sniffed)
			}
			if sniffed == "text/html" && !strings.Contains(mt, "html") {
				t.Fatalf("accepted HTML as %s", typ)
			}
		}
	})
}
