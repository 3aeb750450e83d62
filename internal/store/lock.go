package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the data directory's lock: the remedy that holds it (flock) owns the
// directory; its pid is written inside for the message another one prints.
const LockFile = ".remedy.lock"

// ErrInUse is a data directory locked by another process.
var ErrInUse = errors.New("data directory in use")

// lockDir takes the data directory's lock, or returns ErrInUse naming the holder. Two
// remedies on one directory would both deliver every alert and fight over its
// databases (field case b2-07). The lock is released when the file is closed, and by the
// kernel when the process dies, so a crash never leaves it stale.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := "another process"
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
			holder = "another remedy (pid " + strconv.Itoa(pid) + ")"
		}
		return nil, fmt.Errorf("%w: %s is used by %s; stop it first, or give this one another data_dir", ErrInUse, dir, holder)
	}
	// The pid is informative only: on a full disk it may not be written, and that is fine.
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
