package child

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// pollEvery is how often Stop looks at the group while it waits (a member that is not
// remedy's own child cannot be waited for, only looked for).
const pollEvery = 20 * time.Millisecond

// Alive reports whether any process of the process group pgid still runs. Zombies do
// not count: they run nothing and wait only for their parent (init, for an orphan) to
// reap them.
func Alive(pgid int) bool {
	if pgid <= 0 {
		return false
	}
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	members, err := running(pgid)
	if err != nil {
		return true // no /proc: the group exists, so count it alive
	}
	return members > 0
}

// running counts the processes of group pgid that are not zombies, from /proc.
func running(pgid int) (int, error) {
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range dir {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if g, ok := stat(pid); ok && g == pgid {
				n++
			}
		}
	}
	return n, nil
}

// Running reports whether process pid runs: it exists and is not a zombie.
func Running(pid int) bool {
	_, ok := stat(pid)
	return ok
}

// stat reads a process's group from /proc/PID/stat; ok is false when it is gone or a
// zombie.
func stat(pid int) (pgrp int, ok bool) {
	_, pgrp, ok = statFields(pid)
	return pgrp, ok
}

// Stop ends the process group pgid as systemd stops a unit (KillMode=control-group):
// SIGTERM to every member, SIGKILL to every member still there after grace (or as soon
// as ctx ends), and it returns only once no member runs. It returns nil when the group
// is gone, and an error when ctx ends after the SIGKILL with a member still alive (a
// process in uninterruptible sleep): the caller must not start a replacement then.
func Stop(ctx context.Context, pgid int, grace time.Duration) error {
	if !Alive(pgid) {
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if waitGone(ctx, pgid, grace) {
		return nil
	}
	return Kill(ctx, pgid)
}

// Kill sends SIGKILL to the process group pgid and waits until no member runs; the
// error is ctx's when it ends first.
func Kill(ctx context.Context, pgid int) error {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if waitGone(ctx, pgid, -1) {
		return nil
	}
	return fmt.Errorf("process group %d still alive after SIGKILL: %w", pgid, ctx.Err())
}

// waitGone waits until the group is gone (true), or until limit passes or ctx ends
// (false). A negative limit waits for ctx only.
func waitGone(ctx context.Context, pgid int, limit time.Duration) bool {
	var deadline <-chan time.Time
	if limit >= 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if !Alive(pgid) {
			return true
		}
		select {
		case <-ctx.Done():
			return !Alive(pgid)
		case <-deadline:
			return !Alive(pgid)
		case <-tick.C:
		}
	}
}
