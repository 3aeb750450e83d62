package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Media kinds and the largest file WhatsApp takes of each, from the WhatsApp Business
// Platform's "supported media types" table (image 5 MB, video and audio 16 MB, document
// 100 MB, animated sticker 500 KB): a larger file fails at WhatsApp's upload, so it is
// refused at the API instead. The whole upload is further capped by
// PipelineOptions.MaxMedia (default DefaultMaxMedia), since whatsmeow encrypts it in
// memory.
var mediaLimits = map[string]int64{
	"image":    5 << 20,
	"video":    16 << 20,
	"audio":    16 << 20,
	"document": 100 << 20,
	"sticker":  500 << 10,
}

// DefaultMaxMedia is the largest upload by default: 16 MiB (WhatsApp's limit for video
// and audio; documents up to WhatsApp's 100 MB need a larger PipelineOptions.MaxMedia).
const DefaultMaxMedia = 16 << 20

// mediaTypes are the MIME types each kind takes (the same table); a document takes any
// application/* or text/* type.
var mediaTypes = map[string][]string{
	"image":   {"image/jpeg", "image/png"},
	"sticker": {"image/webp"},
	"video":   {"video/mp4", "video/3gpp"},
	"audio":   {"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"},
}

// MediaError is media refused for its size (TooLarge: the API answers 413 with Limit)
// or its type (415).
type MediaError struct {
	TooLarge bool
	// Sniffed is what the bytes are when they are not the declared Type (checkSniffed).
	Sniffed string
	Kind    string
	Type    string
	Size    int64
	Limit   int64
}

func (e *MediaError) Error() string {
	if e.TooLarge {
		return fmt.Sprintf("media: %d bytes; a %s may have at most %d bytes", e.Size, e.Kind, e.Limit)
	}
	if e.Sniffed != "" {
		return fmt.Sprintf("media: declared %s, but the bytes are %s; declare the file's real type", e.Type, e.Sniffed)
	}
	if e.Kind != "" && e.Type != "" {
		return fmt.Sprintf("media: a %s of type %s is not sent by WhatsApp (it takes %s)", e.Kind, e.Type, strings.Join(mediaTypes[e.Kind], ", "))
	}
	return fmt.Sprintf("media: unknown media type %q (kind %q): images are image/jpeg or image/png, stickers image/webp, "+
		"video video/mp4 or video/3gpp, audio audio/aac, amr, mpeg, mp4 or ogg, documents any application/* or text/*", e.Type, e.Kind)
}

// kindOf checks a media type against a kind, or finds the kind for a type.
func kindOf(kind, typ string) (string, error) {
	mt, _, err := mime.ParseMediaType(typ)
	if err != nil {
		return "", &MediaError{Kind: kind, Type: typ}
	}
	if kind == "" {
		for k, ts := range mediaTypes {
			for _, t := range ts {
				if t == mt {
					return k, nil
				}
			}
		}
		kind = "document"
	}
	if kind == "document" {
		if strings.HasPrefix(mt, "application/") || strings.HasPrefix(mt, "text/") {
			return kind, nil
		}
		return "", &MediaError{Type: typ}
	}
	ts, ok := mediaTypes[kind]
	if !ok {
		return "", &MediaError{Kind: kind, Type: typ}
	}
	for _, t := range ts {
		if t == mt {
			return kind, nil
		}
	}
	return "", &MediaError{Kind: kind, Type: typ}
}

// SaveMedia stores an upload for later messages and returns its reference: Media.ID
// names this upload's description (see upload), so every upload keeps its own kind,
// type and file name. The type is sniffed when m.MIME is empty, and checked against the
// bytes when given; the kind follows from the type when m.Kind is empty. It returns a
// *MediaError for a size or type WhatsApp would refuse or a type the bytes are not
// (415), an error wrapping ErrInvalid for a bad file name, and ErrMediaFull (507) when
// the media directory is at its cap or the disk at its free-space floor.
func (p *Pipeline) SaveMedia(ctx context.Context, m Media) (Media, error) {
	if p.mediaDir == "" {
		return Media{}, invalid("media: this pipeline has no media directory")
	}
	if len(m.Data) == 0 {
		return Media{}, invalid("media: empty")
	}
	if m.MIME == "" {
		m.MIME = http.DetectContentType(m.Data)
	}
	kind, err := kindOf(m.Kind, m.MIME)
	if err != nil {
		return Media{}, err
	}
	m.Kind, m.Size = kind, int64(len(m.Data))
	if limit := min(mediaLimits[kind], p.maxMedia); m.Size > limit {
		return Media{}, &MediaError{TooLarge: true, Kind: kind, Size: m.Size, Limit: limit}
	}
	if err := checkSniffed(kind, m.MIME, m.Data); err != nil {
		return Media{}, err
	}
	if err := checkFileName(m.FileName); err != nil {
		return Media{}, err
	}
	u := describe(m, m.Data)
	if err := p.mediaRoom(u); err != nil {
		return Media{}, err
	}
	meta, _ := json.Marshal(u)
	if err := writeDurably(filepath.Join(p.mediaDir, u.blob()), m.Data); err != nil {
		return Media{}, err
	}
	if err := writeDurably(filepath.Join(p.mediaDir, u.ID+".json"), meta); err != nil {
		return Media{}, err
	}
	m.ID, m.Data = u.ID, nil
	return m, nil
}

// resolveMedia saves inline bytes, or completes a reference from its upload's
// description (the message's own kind, type and file name win when given).
func (p *Pipeline) resolveMedia(ctx context.Context, m Media) (Media, error) {
	if len(m.Data) > 0 && m.ID != "" {
		return Media{}, invalid("media: give the data or the id of an upload, not both")
	}
	if len(m.Data) > 0 {
		return p.SaveMedia(ctx, m)
	}
	if !isHexID(m.ID) {
		return Media{}, invalid("media: give the data, or the id of an upload (POST /api/v1/media)")
	}
	if err := checkFileName(m.FileName); err != nil {
		return Media{}, err
	}
	saved, err := p.readUpload(m.ID)
	if errors.Is(err, os.ErrNotExist) {
		return Media{}, invalid("media.id %s: %v", m.ID, errNoUpload)
	}
	if err != nil {
		return Media{}, err
	}
	now := time.Now()
	_ = os.Chtimes(filepath.Join(p.mediaDir, m.ID+".json"), now, now) // used: kept another MediaRetention (pruneMedia)
	if m.MIME == "" {
		m.MIME = saved.MIME
	}
	if m.FileName == "" {
		m.FileName = saved.FileName
	}
	if m.Kind == "" && m.MIME == saved.MIME {
		m.Kind = saved.Kind
	}
	if m.Kind, err = kindOf(m.Kind, m.MIME); err != nil {
		return Media{}, err
	}
	if m.MIME != saved.MIME || m.Kind != saved.Kind {
		// Another type than the upload's: checked against the bytes as an upload is.
		data, err := os.ReadFile(filepath.Join(p.mediaDir, saved.blob()))
		if err != nil {
			return Media{}, invalid("media.id %s: %v", m.ID, errNoUpload)
		}
		if err := checkSniffed(m.Kind, m.MIME, data); err != nil {
			return Media{}, err
		}
	}
	m.Size = saved.Size
	if limit := min(mediaLimits[m.Kind], p.maxMedia); m.Size > limit {
		return Media{}, &MediaError{TooLarge: true, Kind: m.Kind, Size: m.Size, Limit: limit}
	}
	return m, nil
}

// loadMedia reads an upload's bytes for sending.
func (p *Pipeline) loadMedia(id string) ([]byte, error) {
	u, err := p.readUpload(id)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(p.mediaDir, u.blob()))
}

// writeDurably writes a file so that it is on disk when it returns: a temporary file,
// fsync, rename, fsync of the directory.
func writeDurably(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MediaRetention is how long an upload is kept after it was last uploaded or referred
// to, unless a queued or failed (not yet replayed) message still needs it: uploads
// would otherwise fill DATA_DIR/media, one file per inline media message.
const MediaRetention = 7 * 24 * time.Hour

// pruneMedia deletes the uploads last used before cutoff that no queued message and
// no pending dead letter of the outbound queue refers to, then the bytes no remaining
// upload refers to (not those written in the last blobGrace: an upload being saved
// writes its bytes before its description); it returns how many uploads it deleted.
func (p *Pipeline) pruneMedia(ctx context.Context, cutoff time.Time) (int, error) {
	if p.mediaDir == "" {
		return 0, nil
	}
	entries, err := os.ReadDir(p.mediaDir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // no upload yet: SaveMedia makes the directory with the first one
	}
	if err != nil {
		return 0, err
	}
	removed := 0
	kept := map[string]bool{}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			if u, err := p.readUpload(id); err == nil {
				kept[u.blob()] = true
			}
			continue
		}
		var used bool
		err = p.db.Get(ctx, &used, `SELECT EXISTS(SELECT 1 FROM queue_items WHERE queue = ?1 AND json_valid(payload)
			AND json_extract(payload, '$.media.id') = ?2) OR EXISTS(SELECT 1 FROM dead_letters WHERE queue = ?1 AND replayed = 0
			AND json_valid(payload) AND json_extract(payload, '$.media.id') = ?2)`, p.Out.Name(), id)
		if err != nil {
			return removed, err
		}
		if used {
			if u, err := p.readUpload(id); err == nil {
				kept[u.blob()] = true
			}
			continue
		}
		if err := os.Remove(filepath.Join(p.mediaDir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed++
	}
	grace := time.Now().Add(-blobGrace)
	for _, e := range entries {
		info, err := e.Info()
		if !isHexID(e.Name()) || kept[e.Name()] || err != nil || !info.ModTime().Before(grace) {
			continue
		}
		if err := os.Remove(filepath.Join(p.mediaDir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
	}
	return removed, nil
}

// blobGrace is how long the bytes of an upload without a description are kept: the
// time SaveMedia may take between writing the bytes and the description.
const blobGrace = 10 * time.Minute

// PruneMedia is CLEAN_DATA with target media: it deletes every upload that no queued
// or pending dead-lettered message needs, however recent, and reports what is left.
func (p *Pipeline) PruneMedia(ctx context.Context) (string, error) {
	if p == nil || p.mediaDir == "" {
		return "no media directory (WhatsApp is off)", nil
	}
	n, err := p.pruneMedia(ctx, time.Now().Add(time.Second))
	return fmt.Sprintf("deleted %d uploads no message needs; %s left", n, mediaUsage(p.mediaDir)), err
}

// mediaPruner prunes the uploads at start and hourly until ctx ends.
func (p *Pipeline) mediaPruner(ctx context.Context) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if n, err := p.pruneMedia(ctx, time.Now().Add(-MediaRetention)); err != nil {
			p.log.Warn("old uploads not pruned", "error", err)
		} else if n > 0 {
			p.log.Info("old uploads pruned", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
