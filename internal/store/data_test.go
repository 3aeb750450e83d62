package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A fresh data directory (not there yet) gets its reserve in the first second: the
// directory is made first. A second open of the same directory is refused with
// ErrInUse naming the holder, and works again once the first is closed.
func TestOpenDataMakesReserveAndLocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "nested", "data")
	d, err := OpenData(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.ReserveErr() != nil || !d.Reserve.Held() {
		t.Fatalf("reserve on a first run: %v held=%v", d.ReserveErr(), d.Reserve.Held())
	}
	if st, err := os.Stat(filepath.Join(dir, ReserveFile)); err != nil || st.Size() != ReserveSize {
		t.Fatalf("reserve file: %v %v", st, err)
	}
	_, err = OpenData(ctx, dir, nil)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "pid "+itoa(os.Getpid())) {
		t.Fatalf("second open: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := OpenData(ctx, dir, nil)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	d2.Close()
}

// A reserve that cannot be made (no room) is an error kept for the daemon to show, not
// a failed start; RestoreReserve makes it once there is room.
func TestReserveMissingIsShownNotFatal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	// A directory where the reserve file should be makes creating it fail.
	if err := os.Mkdir(filepath.Join(dir, ReserveFile), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := OpenData(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.ReserveErr() == nil || d.Reserve.Held() {
		t.Fatalf("reserve error not kept: %v", d.ReserveErr())
	}
	os.Remove(filepath.Join(dir, ReserveFile))
	// The dashboard reads the reason while the daemon's chore makes the reserve again.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			_ = d.ReserveErr()
		}
	}()
	defer func() { <-done }()
	if err := d.RestoreReserve(); err != nil || !d.Reserve.Held() || d.ReserveErr() != nil {
		t.Fatalf("restore: %v held=%v", err, d.Reserve.Held())
	}
}
