package actions

import (
	"context"
	"crypto/hmac"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
	remedyhook "github.com/remedy-run/remedy/webhook"
)

func execExecutor(t *testing.T, deps Deps) (*Executor, chan engine.Event, *audit) {
	results := make(chan engine.Event, 4)
	a := &audit{}
	return NewExecutor(ExecutorOptions{Registry: Builtins(deps), Audit: a, Results: func(ev engine.Event) { results <- ev }}), results, a
}

func TestExecSucceedsFailsAndKeepsOutput(t *testing.T) {
	x, results, a := execExecutor(t, Deps{})
	ev := runOne(t, x, results, decision(1, "EXEC", Params{"command": `printf '%s|' "two words" plain`}, 10*time.Second))
	x.Wait(context.Background())
	if ev.Code != engine.CodeActionSucceeded || a.all()[0].Output != "two words|plain|" {
		t.Fatalf("%v, output %q", ev, a.all()[0].Output)
	}
	ev = runOne(t, x, results, decision(2, "EXEC", Params{"command": "sh -c 'echo oops >&2; exit 3'"}, 10*time.Second))
	x.Wait(context.Background())
	if ev.Code != engine.CodeActionFailed || !strings.Contains(ev.Message, "exit status 3") || !strings.Contains(a.all()[1].Output, "oops") {
		t.Fatalf("%v, audit %+v", ev, a.all()[1])
	}
	ev = runOne(t, x, results, decision(3, "EXEC", Params{"command": "/no/such/program"}, 10*time.Second))
	if ev.Code != engine.CodeActionFailed {
		t.Fatalf("%v", ev)
	}
}

func TestExecTimeoutKillsTheProcessGroup(t *testing.T) {
	x, results, a := execExecutor(t, Deps{})
	// A shell that starts two background sleeps and prints their PIDs.
	ev := runOne(t, x, results, decision(1, "EXEC", Params{"shell": "true",
		"command": "sleep 30 & echo $!; sleep 30 & echo $!; wait"}, 300*time.Millisecond))
	x.Wait(context.Background())
	if ev.Code != engine.CodeActionTimeout {
		t.Fatalf("%v", ev)
	}
	pids := strings.Fields(a.all()[0].Output)
	if len(pids) != 2 {
		t.Fatalf("output %q", a.all()[0].Output)
	}
	for _, p := range pids {
		pid, _ := strconv.Atoi(p)
		// The children were killed with the group; reap check: signal 0 fails once gone
		// (they may linger as zombies of the killed shell for a moment, so poll; the
		// deadline only bounds a failure: a loaded machine may take more than a second).
		gone := false
		for deadline := time.Now().Add(10 * time.Second); !gone && time.Now().Before(deadline); {
			gone = syscall.Kill(pid, 0) == syscall.ESRCH || isZombie(pid)
			if !gone {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if !gone {
			t.Fatalf("child %d survived the timeout", pid)
		}
	}
}

func isZombie(pid int) bool {
	b, err := readFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string]string{
		`a b  c`:            "a|b|c",
		`a "b c" 'd e'`:     "a|b c|d e",
		`a\ b "x\"y" 'q\r'`: `a b|x"y|q\r`,
	} {
		got, err := splitWords(in)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("%s: %q %v", in, got, err)
		}
	}
	if _, err := splitWords(`a "b`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestWebhookSignsAndReports(t *testing.T) {
	var mu sync.Mutex
	var gotSig, gotBody string
	var verr error
	status := http.StatusOK
	setStatus := func(s int) { mu.Lock(); status = s; mu.Unlock() }
	got := func() (string, string) { mu.Lock(); defer mu.Unlock(); return gotBody, gotSig }
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		gotBody, gotSig = string(b), r.Header.Get(SignatureHeader)
		verr = remedyhook.Verify([]byte("s3cret"), r.Header.Get(remedyhook.TimestampHeader), r.Header.Get(remedyhook.SignatureHeader), b, time.Now(), 0)
		st := status
		mu.Unlock()
		if st == 0 {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(st)
	}))
	defer srv.Close()
	defer close(hang)
	env := map[string]string{"HOOK_SECRET": "s3cret"}
	x, results, _ := execExecutor(t, Deps{Getenv: func(k string) string { return env[k] }})
	p := Params{"url": srv.URL, "secret_env": "HOOK_SECRET"}

	ev := runOne(t, x, results, decision(1, "WEBHOOK", p, 5*time.Second))
	body, sig := got()
	if ev.Code != engine.CodeActionSucceeded || !strings.Contains(body, `"policy":"p"`) {
		t.Fatalf("%v body %s", ev, body)
	}
	if !hmac.Equal([]byte(sig), []byte(Sign([]byte("s3cret"), []byte(body)))) {
		t.Fatalf("signature %s does not match the body", sig)
	}
	mu.Lock()
	if verr != nil { // the one scheme, as the bot's handler deliveries are checked
		t.Fatalf("webhook.Verify: %v", verr)
	}
	mu.Unlock()
	setStatus(http.StatusInternalServerError)
	if ev := runOne(t, x, results, decision(2, "WEBHOOK", p, 5*time.Second)); ev.Code != engine.CodeActionFailed || !strings.Contains(ev.Message, "500") {
		t.Fatalf("%v", ev)
	}
	setStatus(0) // never answers
	if ev := runOne(t, x, results, decision(3, "WEBHOOK", p, 300*time.Millisecond)); ev.Code != engine.CodeActionTimeout {
		t.Fatalf("%v", ev)
	}
	delete(env, "HOOK_SECRET")
	setStatus(http.StatusOK)
	if ev := runOne(t, x, results, decision(4, "WEBHOOK", p, 5*time.Second)); ev.Code != engine.CodeActionFailed || !strings.Contains(ev.Message, "HOOK_SECRET is empty") {
		t.Fatalf("missing secret: %v", ev)
	}
}

// EXEC runs with the clean environment it is given (by default the base alone), never
// remedy's; and what it leaves running in its group ends with the attempt.
func TestExecEnvironmentAndLeftovers(t *testing.T) {
	t.Setenv("REMEDY_TOKEN", "operator-token-0123456789")
	x, results, a := execExecutor(t, Deps{})
	ev := runOne(t, x, results, decision(1, "EXEC", Params{"command": "env"}, 10*time.Second))
	x.Wait(context.Background())
	if ev.Code != engine.CodeActionSucceeded || strings.Contains(a.all()[0].Output, "REMEDY_TOKEN") || !strings.Contains(a.all()[0].Output, "PATH=") {
		t.Fatalf("%v: %s", ev, a.all()[0].Output)
	}
	x, results, a = execExecutor(t, Deps{ExecEnv: []string{"PATH=/usr/bin:/bin", "NODE_ENV=production"}})
	ev = runOne(t, x, results, decision(2, "EXEC", Params{"shell": "true", "command": "echo $NODE_ENV; sleep 30 >/dev/null 2>&1 & echo $!"}, 10*time.Second))
	x.Wait(context.Background())
	f := strings.Fields(a.all()[0].Output)
	if ev.Code != engine.CodeActionSucceeded || len(f) != 2 || f[0] != "production" {
		t.Fatalf("%v: %q", ev, a.all()[0].Output)
	}
	pid, _ := strconv.Atoi(f[1])
	if err := syscall.Kill(pid, 0); err == nil && !isZombie(pid) {
		t.Fatalf("the background sleep %d outlived the attempt", pid)
	}
}
