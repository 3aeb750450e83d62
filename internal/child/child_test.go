package child

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEnvIsBasePassAndSet(t *testing.T) {
	environ := []string{"PATH=/bin", "HOME=/home/bot", "LC_TIME=C", "REMEDY_TOKEN=secret", "HOOK_SECRET=x", "NODE_ENV=production", "TZ=Asia/Jakarta", "LANG=en_US.UTF-8"}
	got := strings.Join(Env(environ, []string{"NODE_ENV", "MISSING"}, map[string]string{"TZ": "UTC", "BOT_DIR": "/srv"}), " ")
	if want := "BOT_DIR=/srv HOME=/home/bot LANG=en_US.UTF-8 LC_TIME=C NODE_ENV=production PATH=/bin TZ=UTC"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := Env(nil, nil, nil); len(got) != 1 || got[0] != "PATH="+DefaultPath {
		t.Fatalf("no environment: %v", got)
	}
}

// Stop ends a group whose members ignore SIGTERM with SIGKILL at grace, and returns
// only when none runs; a group already gone is no error.
func TestStopKillsTheWholeGroupAtGrace(t *testing.T) {
	// A shell (the leader) with a background member; both ignore SIGTERM.
	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; sh -c 'trap \"\" TERM; echo $$; while :; do sleep 1; done' & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait() // remedy reaps its own child; the member is reaped by init
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	member, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	pgid := cmd.Process.Pid
	if !Alive(pgid) || !Running(member) {
		t.Fatal("the group does not run")
	}
	began := time.Now()
	if err := Stop(context.Background(), pgid, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if time.Since(began) < 200*time.Millisecond {
		t.Fatal("stopped before the grace period: SIGTERM was not ignored?")
	}
	if Alive(pgid) || Running(member) {
		t.Fatalf("member %d survived", member)
	}
	if err := Stop(context.Background(), pgid, time.Second); err != nil {
		t.Fatalf("a group already gone: %v", err)
	}
}
