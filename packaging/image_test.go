// Package packaging holds the files that ship remedy (the container image, the systemd
// unit, the example configuration) and the tests that keep them working as written.
package packaging

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// image is what the Dockerfile's final stage and its documented `docker run` example
// say the container runs.
type image struct {
	workdir    string
	env        map[string]string // ENV, in the final stage
	entrypoint []string          // exec form
	cmd        []string
	copies     []string // COPY lines of the final stage
	stopSignal string
	runEnv     []string // the example's -e NAME=VALUE, as written (shell words)
}

// parseDockerfile reads the instructions this image uses (continuation lines joined):
// FROM starts a stage and only the last one counts; ENV in both its forms; ENTRYPOINT and
// CMD in the exec (JSON) form, the only one remedy's Dockerfile may use (the shell form
// would put sh in front of remedy and swallow SIGTERM).
func parseDockerfile(t *testing.T, file string) image {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var img image
	runRE := regexp.MustCompile(`^#\s+docker run (.*)$`)
	envRE := regexp.MustCompile(`-e ([A-Z_]+=(?:"[^"]*"|\S+))`)
	var lines []string
	var cur string
	for _, l := range strings.Split(string(data), "\n") {
		if m := runRE.FindStringSubmatch(l); m != nil {
			for _, e := range envRE.FindAllStringSubmatch(m[1], -1) {
				img.runEnv = append(img.runEnv, e[1])
			}
		}
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur += s + " "
			continue
		}
		lines = append(lines, strings.TrimSpace(cur+l))
		cur = ""
	}
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			img = image{runEnv: img.runEnv, env: map[string]string{}}
		case "WORKDIR":
			img.workdir = rest
		case "ENV":
			if !strings.Contains(strings.Fields(rest)[0], "=") { // ENV NAME value
				name, value, _ := strings.Cut(rest, " ")
				img.env[name] = strings.TrimSpace(value)
				continue
			}
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				img.env[k] = strings.Trim(v, `"`)
			}
		case "ENTRYPOINT", "CMD":
			var args []string
			if err := json.Unmarshal([]byte(rest), &args); err != nil {
				t.Fatalf("%s %s: use the exec form [\"…\"] (the shell form puts sh in front of remedy, which swallows SIGTERM)", instr, rest)
			}
			if strings.EqualFold(instr, "CMD") {
				img.cmd = args
			} else {
				img.entrypoint = args
			}
		case "COPY":
			img.copies = append(img.copies, rest)
		case "STOPSIGNAL":
			img.stopSignal = rest
		}
	}
	return img
}

// Issue 25: the image could not run as documented (its example token was too short for
// remedy run). This runs the image's own command line and environment, parsed from the
// Dockerfile so they cannot drift, with the example's -e values evaluated as a shell
// would: the binary built as the image builds it, the image's paths moved under a
// temporary directory, the port made free. It must answer /readyz and stop on the
// image's STOPSIGNAL with exit 0. Where a container engine exists, .ci/run builds and
// runs the image itself as well.
func TestImageCommandLineRuns(t *testing.T) {
	img := parseDockerfile(t, "Dockerfile")
	if len(img.entrypoint) == 0 || img.workdir == "" {
		t.Fatalf("no ENTRYPOINT or WORKDIR in the final stage: %+v", img)
	}
	root := t.TempDir()
	bin := filepath.Join(root, "remedy")
	// The image's build adds -trimpath and CGO_ENABLED=0 (remedy has no cgo either way);
	// without them the build reuses the tests' warm cache instead of a cold build.
	build := exec.Command("go", "build", "-o", bin, "../cmd/remedy")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	workdir := filepath.Join(root, img.workdir)
	os.MkdirAll(workdir, 0o755)
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + workdir}
	var listen string
	for k, v := range img.env {
		if rel, ok := strings.CutPrefix(v, img.workdir); ok { // a path inside the image
			v = filepath.Join(workdir, rel)
		}
		if k == "REMEDY_LISTEN" { // the image's host, a port free here
			host, _, err := net.SplitHostPort(v)
			if err != nil {
				t.Fatalf("REMEDY_LISTEN %q: %v", v, err)
			}
			v = net.JoinHostPort(host, freePort(t))
			listen = v
		}
		env = append(env, k+"="+v)
	}
	if listen == "" {
		t.Fatal("the image sets no REMEDY_LISTEN: remedy would listen on 127.0.0.1 inside the container, out of reach")
	}
	for _, e := range img.runEnv { // the example's values, as a shell evaluates them
		name, word, _ := strings.Cut(e, "=")
		out, err := exec.Command("bash", "-c", `printf %s `+word).Output()
		if err != nil {
			t.Fatalf("the example's -e %s: %v", e, err)
		}
		env = append(env, name+"="+string(out))
	}
	args := append(append([]string{}, img.entrypoint[1:]...), img.cmd...)
	if path.Base(img.entrypoint[0]) != "remedy" {
		t.Fatalf("ENTRYPOINT %v does not run remedy", img.entrypoint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = workdir, env
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stderr); logs <- string(b) }()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	_, port, _ := net.SplitHostPort(listen)
	url := "http://127.0.0.1:" + port + "/readyz"
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("remedy run with the image's command line and environment exited: %v\n%s", err, <-logs)
		default:
		}
		if body, ok := ready(url); ok {
			t.Logf("%s: %s", url, body)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready /readyz within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	sig := syscall.SIGTERM
	if img.stopSignal != "" && img.stopSignal != "SIGTERM" {
		t.Fatalf("STOPSIGNAL %s: remedy shuts down cleanly on SIGTERM", img.stopSignal)
	}
	cmd.Process.Signal(sig)
	if err := <-exited; err != nil {
		t.Fatalf("stop on %s: %v\n%s", sig, err, <-logs)
	}
}

func ready(url string) (string, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode == 200
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// The slim base image has no CA certificates: TLS to WhatsApp, webhooks and Alertmanager
// would fail. The final stage must bring the bundle Go reads on Linux.
func TestImageHasCACertificates(t *testing.T) {
	img := parseDockerfile(t, "Dockerfile")
	for _, c := range img.copies {
		if strings.HasSuffix(c, " /etc/ssl/certs/ca-certificates.crt") || strings.HasSuffix(c, " /etc/ssl/certs/") {
			return
		}
	}
	t.Fatalf("the final stage copies no CA bundle to /etc/ssl/certs/ca-certificates.crt: %v", img.copies)
}

// The build context (the repository root) never carries the device keys and databases
// of a local run, or .git; it keeps everything the build needs. The matching follows
// .dockerignore's rules for the patterns remedy's file uses (anchored at the root, `**/`
// for any depth, shell globs per path element, a directory excluding what it holds).
func TestDockerignoreKeepsSecretsOut(t *testing.T) {
	f, err := os.Open("../.dockerignore")
	if err != nil {
		t.Fatalf("no .dockerignore at the build context's root: %v", err)
	}
	defer f.Close()
	var patterns []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "!") {
				t.Fatalf("%q: exceptions are not covered by this test's matcher", l)
			}
			patterns = append(patterns, strings.TrimSuffix(l, "/"))
		}
	}
	for _, p := range []string{"data/whatsapp.db", "data/remedy.db", "data/.remedy.lock", ".git/config", "examples/echobot/data/whatsapp.db",
		"whatsapp.db", "remedy.db-wal", "monitoring_metrics.sqlite", "remedy.yaml"} {
		if !ignored(patterns, p) {
			t.Errorf("%s would go into the build context", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/remedy/main.go", "internal/store/migrations/0001_init.sql", "packaging/remedy.yaml", "web/static/app.js"} {
		if ignored(patterns, p) {
			t.Errorf("%s is needed by the build but ignored", p)
		}
	}
}

func ignored(patterns []string, p string) bool {
	parts := strings.Split(p, "/")
	for _, pat := range patterns {
		anyDepth := strings.HasPrefix(pat, "**/")
		pat = strings.TrimPrefix(pat, "**/")
		n := len(strings.Split(pat, "/"))
		for start := 0; start+n <= len(parts) && (start == 0 || anyDepth); start++ {
			// A match on a leading part (a directory) covers what it holds.
			if ok, _ := filepath.Match(pat, strings.Join(parts[start:start+n], "/")); ok {
				return true
			}
		}
	}
	return false
}
