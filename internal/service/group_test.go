package service

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/child"
)

// wrapped is a service as bots are often started: a wrapper script that sends the bot's
// output to a file and dies at once on SIGTERM, and a bot that ignores SIGTERM (its
// graceful shutdown hangs) and records its pid. Field case b2-06.
func wrapped(t *testing.T, grace time.Duration) (ProcessConfig, string) {
	t.Helper()
	dir := t.TempDir()
	bot := filepath.Join(dir, "bot.sh")
	os.WriteFile(bot, []byte("#!/bin/sh\necho $$ >>\"$BOT_DIR/bot.pids\"\ntrap '' TERM\nwhile :; do sleep 1; done\n"), 0o755)
	wrapper := filepath.Join(dir, "wrapper.sh")
	os.WriteFile(wrapper, []byte("#!/bin/sh\n\"$BOT_DIR/bot.sh\" >>\"$BOT_DIR/bot.log\" 2>&1\n"), 0o755)
	return ProcessConfig{Name: "bot", Command: []string{wrapper}, Env: map[string]string{"BOT_DIR": dir}, Grace: grace}, dir
}

// bots lists the pids the bots recorded (waiting for the newest run's to appear).
func bots(t *testing.T, dir string, want int) []int {
	t.Helper()
	var pids []int
	eventually(t, strconv.Itoa(want)+" bot pid(s)", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "bot.pids"))
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			p, _ := strconv.Atoi(f)
			pids = append(pids, p)
		}
		return len(pids) >= want
	})
	return pids
}

// A restart returns only when every process of the old run is gone (SIGKILL to the
// group at the grace period), so two bots never run at once; a stop likewise.
func TestRestartWaitsForTheWholeProcessGroup(t *testing.T) {
	cfg, dir := wrapped(t, 300*time.Millisecond)
	s := NewSupervisor(nil, nil)
	p := NewProcess(cfg)
	s.Add(p)
	if err := s.Start(context.Background(), "bot"); err != nil {
		t.Fatal(err)
	}
	first := bots(t, dir, 1)[0]
	if err := s.Restart(context.Background(), "bot", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if child.Running(first) {
		t.Fatalf("the old bot %d outlived the restart: two bots run at once", first)
	}
	second := bots(t, dir, 2)[1]
	if !child.Running(second) {
		t.Fatal("the new bot does not run")
	}
	if err := s.StopAll(context.Background(), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if child.Running(second) {
		t.Fatalf("bot %d outlived the stop", second)
	}
}

// When the wrapper dies by itself and leaves the bot behind, the leftover is ended
// (SIGTERM, then SIGKILL after grace) before the run counts as over: the crash is
// reported at once, and the restart that follows never starts a second bot.
func TestLeftoversOfACrashedRunAreEndedBeforeARestart(t *testing.T) {
	cfg, dir := wrapped(t, 200*time.Millisecond)
	ev := &events{}
	s := NewSupervisor(ev.add, nil)
	p := NewProcess(cfg)
	s.Add(p)
	s.Start(context.Background(), "bot")
	first := bots(t, dir, 1)[0]
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil { // the wrapper alone, as a crash would
		t.Fatal(err)
	}
	eventually(t, "SERVICE_DOWN", func() bool { return strings.Contains(strings.Join(ev.list(), " "), "SERVICE_DOWN") })
	if err := s.Start(context.Background(), "bot"); child.Running(first) && (err == nil || !strings.Contains(err.Error(), "already running")) {
		t.Fatalf("a second run started beside the leftover bot: %v", err)
	}
	if err := s.Restart(context.Background(), "bot", time.Second); err != nil {
		t.Fatal(err)
	}
	if child.Running(first) {
		t.Fatal("the leftover bot survived")
	}
	alive := 0
	for _, pid := range bots(t, dir, 2) {
		if child.Running(pid) {
			alive++
		}
	}
	if alive != 1 {
		t.Fatalf("%d bots run", alive)
	}
	s.StopAll(context.Background(), 100*time.Millisecond)
}

// Issue 15, item 4: a supervised process (and what it starts) sees a clean environment:
// the base, pass_env and env; none of remedy's secrets.
func TestChildEnvironmentIsClean(t *testing.T) {
	t.Setenv("REMEDY_TOKEN", "operator-token-0123456789")
	t.Setenv("WEBHOOK_SECRET", "hmac-secret")
	t.Setenv("NODE_ENV", "production")
	t.Setenv("LC_TIME", "C")
	cfg, dir := wrapped(t, 100*time.Millisecond)
	cfg.PassEnv = []string{"NODE_ENV", "NOT_SET_ANYWHERE"}
	cfg.Env["EXTRA"] = "1"
	p := NewProcess(cfg)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background(), 0)
	pid := bots(t, dir, 1)[0] // the bot, a grandchild of remedy
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, secret := range []string{"REMEDY_TOKEN", "WEBHOOK_SECRET", "NOT_SET_ANYWHERE"} {
		if _, ok := env[secret]; ok {
			t.Errorf("%s reached the child", secret)
		}
	}
	if env["NODE_ENV"] != "production" || env["EXTRA"] != "1" || env["BOT_DIR"] != dir || env["PATH"] == "" || env["LC_TIME"] != "C" {
		t.Errorf("environment %v", env)
	}
	for k := range env {
		if !slices.Contains(child.BaseNames, k) && !strings.HasPrefix(k, "LC_") && k != "NODE_ENV" && k != "EXTRA" && k != "BOT_DIR" && k != "PWD" && k != "SHLVL" && k != "_" {
			t.Errorf("unexpected variable %s", k)
		}
	}
}

// The same crash when the bot writes to the output remedy gave the wrapper (no log file):
// the bot holds that pipe open, and the crash must still be seen when the wrapper exits,
// not when the bot's output ends (it was never seen: the service stayed "up" with no
// wrapper, and service-down never ran). The bot's lines still reach the kept output.
func TestCrashIsSeenWhileALeftoverHoldsTheOutput(t *testing.T) {
	cfg, dir := wrapped(t, 200*time.Millisecond)
	os.WriteFile(cfg.Command[0], []byte("#!/bin/sh\necho wrapper up\n\"$BOT_DIR/bot.sh\"\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "bot.sh"), []byte("#!/bin/sh\necho $$ >>\"$BOT_DIR/bot.pids\"\necho bot up\ntrap '' TERM\nwhile :; do sleep 1; done\n"), 0o755)
	ev := &events{}
	s := NewSupervisor(ev.add, nil)
	p := NewProcess(cfg)
	s.Add(p)
	if err := s.Start(context.Background(), "bot"); err != nil {
		t.Fatal(err)
	}
	first := bots(t, dir, 1)[0]
	eventually(t, "the bot's output", hasLine(p, "bot up"))
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil { // the wrapper alone
		t.Fatal(err)
	}
	eventually(t, "SERVICE_DOWN", func() bool { return strings.Contains(strings.Join(ev.list(), " "), "SERVICE_DOWN") })
	if st := s.Status()[0]; st.Up {
		t.Fatalf("status %+v after the wrapper died", st)
	}
	if err := s.Restart(context.Background(), "bot", time.Second); err != nil {
		t.Fatal(err)
	}
	if child.Running(first) {
		t.Fatal("the leftover bot survived the restart")
	}
	s.StopAll(context.Background(), 100*time.Millisecond)
}
