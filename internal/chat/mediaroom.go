package chat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Defaults of the media directory's bounds (PipelineOptions.MediaMaxTotal and
// MediaMinFree). The cap is 64 uploads of WhatsApp's 16 MB video limit; the floor
// leaves remedy's own database room to grow and is 50 times its 10 MiB disk reserve,
// so uploads stop well before remedy's writes would fail (issue 26, A13: uploads filled
// a 20 MB disk until every write failed).
const (
	DefaultMediaMaxTotal = 1 << 30
	DefaultMediaMinFree  = 512 << 20
)

// ErrMediaFull is an upload refused because the media directory is at its cap or the
// disk below its free-space floor (the API answers 507 Insufficient Storage; a
// WA_MEDIA_FULL event is raised). Nothing was stored: the client uploads again once
// space is freed (CLEAN_DATA target media, or the 7-day retention).
var ErrMediaFull = errors.New("media storage full")

// mediaRoom refuses u when storing its bytes would take the media directory past
// p.mediaMaxTotal or leave less than p.mediaMinFree free on its disk; bytes already
// stored (the same file uploaded again) take no room.
func (p *Pipeline) mediaRoom(u upload) error {
	if _, err := os.Stat(filepath.Join(p.mediaDir, u.blob())); err == nil {
		return nil
	}
	total, err := dirSize(p.mediaDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var reason string
	if total+u.Size > p.mediaMaxTotal {
		reason = fmt.Sprintf("the media directory holds %d MiB and its cap is %d MiB", total>>20, p.mediaMaxTotal>>20)
	} else if free, ok := freeBytes(p.mediaDir); ok && free-u.Size < p.mediaMinFree {
		reason = fmt.Sprintf("the disk has %d MiB free and uploads stop at %d MiB", free>>20, p.mediaMinFree>>20)
	}
	if reason == "" {
		return nil
	}
	p.emit("WA_MEDIA_FULL", map[string]string{"dir": "media"}, "upload refused: "+reason, float64(total))
	return fmt.Errorf("%w: %s (whatsapp.send.media_total_mb, media_min_free_mb); nothing was stored, upload again once space is freed", ErrMediaFull, reason)
}

// dirSize is the size of the regular files in dir, in bytes.
func dirSize(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n, err
}

// freeBytes is the space an unprivileged process may still use on dir's disk (its
// parent's, before dir exists).
func freeBytes(dir string) (int64, bool) {
	var st syscall.Statfs_t
	for d := dir; ; d = filepath.Dir(d) {
		if err := syscall.Statfs(d, &st); err == nil {
			return int64(st.Bavail) * int64(st.Bsize), true
		}
		if d == filepath.Dir(d) {
			return 0, false
		}
	}
}

// mediaUsage describes the media directory for CLEAN_DATA's report.
func mediaUsage(dir string) string {
	n, _ := dirSize(dir)
	files, _ := os.ReadDir(dir)
	uploads := 0
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".json") {
			uploads++
		}
	}
	return strconv.Itoa(uploads) + " uploads, " + strconv.FormatInt(n>>20, 10) + " MiB"
}
