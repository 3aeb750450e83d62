package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// startRun runs `remedy run --config cfg` in-process until cancel and returns its address
// once /healthz answers; done receives the exit code.
func startRun(t *testing.T, cfg string) (base string, cancel context.CancelFunc, done chan int, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stderr = &syncBuffer{}
	done = make(chan int, 1)
	go func() { done <- Main(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), io.Discard, stderr) }()
	addrRE := regexp.MustCompile(`dashboard on (http://[0-9.:]+)/`)
	waitFor(t, "the listen address", func() bool {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
			return true
		}
		return false
	})
	waitFor(t, "healthz", func() bool { return get(t, base+"/healthz") == "ok\n" })
	return base, cancel, done, stderr
}

// `remedy run` with a configuration: SIGHUP with a broken policy file keeps the old set
// and reports the error; a fixed file swaps in; SIGTERM-like cancellation exits 0.
func TestRunReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies.yaml")
	os.WriteFile(pol, []byte("policies:\n  - name: one\n    on: [SOME_FAULT]\n"), 0o644)
	cfg := write(t, dir, "remedy.yaml", "data_dir: "+filepath.Join(dir, "data")+"\npolicies: "+pol+"\nlisten: 127.0.0.1:0\nlog: {format: json}\n")
	if code, out, _ := run(t, "", "config", "check", cfg); code != exitOK || !strings.Contains(out, "ok (listen 127.0.0.1:0") {
		t.Fatalf("config check: %d %s", code, out)
	}
	base, cancel, done, stderr := startRun(t, cfg)

	os.WriteFile(pol, []byte("policies:\n  - name: one\n    on: [some_fault]\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the failed reload", func() bool {
		s := get(t, base+"/api/v1/status")
		return strings.Contains(s, `"ok": false`) && strings.Contains(s, `policies.yaml:3:10: policy \"one\": on: \"some_fault\" is not an event code`)
	})
	if !strings.Contains(get(t, base+"/api/v1/policies"), `"name": "one"`) {
		t.Fatal("the old set is gone")
	}
	os.WriteFile(pol, []byte("policies:\n  - name: one\n    on: [SOME_FAULT]\n  - name: two\n    on: [OTHER_FAULT]\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the good reload", func() bool { return strings.Contains(get(t, base+"/api/v1/policies"), `"name": "two"`) })
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no shutdown")
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("log: %s", stderr.String())
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := write(t, dir, "remedy.yaml", "listen: 0.0.0.0:8080\n")
	code, _, errs := run(t, "", "run", "--config", cfg)
	if code != exitBadInput || !strings.Contains(errs, "remedy.yaml:1:9: listen: 0.0.0.0:8080 is reachable from other machines; set a token") {
		t.Fatalf("%d %s", code, errs)
	}
	if code, out, _ := run(t, "", "config", "check", cfg); code != exitFailed || !strings.Contains(out, "set a token") {
		t.Fatalf("config check: %d %s", code, out)
	}
}

// A weak token off loopback stops `remedy run` at start, and `remedy config check` says
// why, with the position in the file.
func TestRunRefusesWeakToken(t *testing.T) {
	dir := t.TempDir()
	cfg := write(t, dir, "remedy.yaml", "listen: 0.0.0.0:8080\ntoken: abc\n")
	want := "remedy.yaml:2:8: token: 3 characters is too short for an address other machines reach"
	if code, _, errs := run(t, "", "run", "--config", cfg); code != exitBadInput || !strings.Contains(errs, want) {
		t.Fatalf("%d %s", code, errs)
	}
	if code, out, _ := run(t, "", "config", "check", cfg); code != exitFailed || !strings.Contains(out, want) {
		t.Fatalf("config check: %d %s", code, out)
	}
}

// Without a configuration file, the first log line names the data directory and the
// listen address in force, REMEDY_* overrides included (it said ./data and
// 127.0.0.1:8080 whatever the environment said).
func TestRunWithoutConfigLogsTheValuesInForce(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	data := filepath.Join(dir, "elsewhere")
	t.Setenv("REMEDY_DATA_DIR", data)
	t.Setenv("REMEDY_LISTEN", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"run"}, strings.NewReader(""), io.Discard, stderr) }()
	waitFor(t, "the dashboard line", func() bool { return strings.Contains(stderr.String(), "dashboard on") })
	cancel()
	<-done
	first, _, _ := strings.Cut(stderr.String(), "\n")
	if !strings.Contains(first, "no configuration file") || !strings.Contains(first, data) ||
		!strings.Contains(first, "127.0.0.1:0") || strings.Contains(first, "./data") {
		t.Fatalf("first log line: %s", first)
	}
}
