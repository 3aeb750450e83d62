package config

import (
	"time"

	"github.com/remedy-run/remedy/internal/chat"
)

// Send is whatsapp.send: the pace of the bot's messages and the stop for a chat that
// keeps refusing them (chat.SendLimits; its doc gives the defaults and their source).
type Send struct {
	PerMinute     int           `yaml:"per_minute"`      // default 30
	Burst         int           `yaml:"burst"`           // default 10
	ChatPerMinute int           `yaml:"chat_per_minute"` // default 20
	ChatBurst     int           `yaml:"chat_burst"`      // default 5
	StopAfter     int           `yaml:"stop_after"`      // refusals; default 3
	StopWindow    time.Duration `yaml:"stop_window"`     // default 10m
	StopFor       time.Duration `yaml:"stop_for"`        // default 1h, doubling up to a day
	MaxMediaMB    int           `yaml:"max_media_mb"`    // largest upload; default 16
	// MediaTotalMB caps DATA_DIR/media (default 1024); MediaMinFreeMB is the free disk
	// space below which uploads are refused (default 512; -1: no floor). Past either an
	// upload is answered 507 and WA_MEDIA_FULL is raised (chat.ErrMediaFull).
	MediaTotalMB   int `yaml:"media_total_mb"`
	MediaMinFreeMB int `yaml:"media_min_free_mb"`
}

// Limits are the pipeline's limits.
func (s Send) Limits() chat.SendLimits {
	return chat.SendLimits{PerMinute: float64(s.PerMinute), Burst: s.Burst, ChatPerMinute: float64(s.ChatPerMinute), ChatBurst: s.ChatBurst,
		StopAfter: s.StopAfter, StopWindow: s.StopWindow, StopFor: s.StopFor}
}

// MaxMediaBytes is the upload limit in bytes.
func (s Send) MaxMediaBytes() int64 {
	if s.MaxMediaMB <= 0 {
		return chat.DefaultMaxMedia
	}
	return int64(s.MaxMediaMB) << 20
}

// MediaBounds are the media directory's cap and free-space floor in bytes (0: the
// pipeline's defaults, negative floor: none).
func (s Send) MediaBounds() (total, minFree int64) {
	if s.MediaMinFreeMB < 0 {
		minFree = -1
	}
	return int64(s.MediaTotalMB) << 20, max(minFree, int64(s.MediaMinFreeMB)<<20)
}

// check reports the values that make no sense.
func (s Send) check(bad func(key, format string, args ...any)) {
	if s.PerMinute < 0 || s.ChatPerMinute < 0 || s.Burst < 0 || s.ChatBurst < 0 || s.StopAfter < 0 || s.StopWindow < 0 || s.StopFor < 0 {
		bad("whatsapp.send", "whatsapp.send: limits are positive numbers (0 keeps the default)")
	}
	if s.MaxMediaMB < 0 || s.MaxMediaMB > 100 {
		bad("whatsapp.send.max_media_mb", "whatsapp.send.max_media_mb: 1 to 100 (WhatsApp's largest document), got %d", s.MaxMediaMB)
	}
	if s.MediaTotalMB < 0 || s.MediaMinFreeMB < -1 {
		bad("whatsapp.send.media_total_mb", "whatsapp.send.media_total_mb: a size in MiB (0 keeps 1024); media_min_free_mb: a size in MiB (0 keeps 512, -1 turns the floor off)")
	}
}
