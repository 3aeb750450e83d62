package whatsapp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"
)

// downloadable is a media message whatsmeow can download.
type downloadable = whatsmeow.DownloadableMessage

// MediaRetention is how long an incoming message's media stays downloadable through
// remedy (its reference, a few hundred bytes, not the file): WhatsApp's servers keep
// media for a limited time anyway (about 30 days).
const MediaRetention = 30 * 24 * time.Hour

// ErrNoMedia is returned by Download for a message id remedy has no media for.
var ErrNoMedia = errors.New("no media for this message id")

// mediaDir holds, per incoming media message, what downloading it takes (the message's
// media part, with its direct path and keys), written before the message is queued so
// the handler's URL works as soon as it is delivered. A file per message: no table for
// remedy's schema, and pruning is a directory walk.
func (c *Conn) mediaDir() string { return c.opts.StorePath + ".media" }

func (c *Conn) mediaFile(id string) string {
	sum := sha256.Sum256([]byte(id)) // ids are the sender's choice: never a path
	return filepath.Join(c.mediaDir(), hex.EncodeToString(sum[:16])+".pb")
}

// keepMedia writes the media part of msg for Download.
func (c *Conn) keepMedia(id string, msg *waE2E.Message) error {
	b, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.mediaDir(), 0o700); err != nil {
		return err
	}
	tmp := c.mediaFile(id) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.mediaFile(id))
}

// Download fetches and decrypts an incoming message's media from WhatsApp now (the
// handler's GET of webhook.Media.URL). It returns ErrNoMedia for an unknown id, and
// whatsmeow's errors otherwise (ErrNotConnected while disconnected; expired media:
// whatsmeow.ErrMediaDownloadFailedWith404/410).
func (c *Conn) Download(ctx context.Context, id string) (data []byte, mime string, err error) {
	b, err := os.ReadFile(c.mediaFile(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", ErrNoMedia
	} else if err != nil {
		return nil, "", err
	}
	var msg waE2E.Message
	if err := proto.Unmarshal(b, &msg); err != nil {
		return nil, "", fmt.Errorf("media reference for %s: %w", id, err)
	}
	var d downloadable
	switch {
	case msg.ImageMessage != nil:
		d, mime = msg.ImageMessage, msg.ImageMessage.GetMimetype()
	case msg.VideoMessage != nil:
		d, mime = msg.VideoMessage, msg.VideoMessage.GetMimetype()
	case msg.AudioMessage != nil:
		d, mime = msg.AudioMessage, msg.AudioMessage.GetMimetype()
	case msg.DocumentMessage != nil:
		d, mime = msg.DocumentMessage, msg.DocumentMessage.GetMimetype()
	case msg.StickerMessage != nil:
		d, mime = msg.StickerMessage, msg.StickerMessage.GetMimetype()
	default:
		return nil, "", ErrNoMedia
	}
	if !c.cli.IsConnected() {
		return nil, "", whatsmeow.ErrNotConnected
	}
	data, err = c.cli.Download(ctx, d)
	return data, mime, err
}

// pruneMedia removes media references older than MediaRetention.
func (c *Conn) pruneMedia(now time.Time) {
	entries, err := os.ReadDir(c.mediaDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > MediaRetention {
			_ = os.Remove(filepath.Join(c.mediaDir(), e.Name()))
		}
	}
}
