package chat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedy-run/remedy/webhook"
)

// What a handler may answer, and what remedy makes of it. A redirect is not followed:
// Go's client turned a 302 into a GET without the body, and a handler whose old URL
// redirected to a page answering 200 "acknowledged" every message it never saw (lost);
// it forwarded the signature to whatever host the redirect named, too. A reply too large
// to read whole was cut and silently dropped; now the attempt fails, saying why. Garbage
// and non-JSON 2xx bodies are no reply, as documented. Every delivery carries a verifiable
// signature.
func TestHandlerAnswers(t *testing.T) {
	t.Parallel()
	secret := []byte("k")
	var gets int
	mux := http.NewServeMux()
	mux.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) { gets++ })
	mux.HandleFunc("POST /hook/{case}", func(w http.ResponseWriter, r *http.Request) {
		if _, err := webhook.Read(r, secret); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		switch r.PathValue("case") {
		case "302":
			http.Redirect(w, r, "/moved", http.StatusFound)
		case "307":
			http.Redirect(w, r, "/moved", http.StatusTemporaryRedirect)
		case "huge":
			fmt.Fprintf(w, `{"reply": %q}`, strings.Repeat("é", maxAnswer)) // 2 bytes each: over the limit
		case "big":
			fmt.Fprintf(w, `{"reply": %q}`, strings.Repeat("é", MaxText)) // WhatsApp's largest text: 128 KiB
		case "garbage":
			w.Write([]byte("\x00\xffnot json"))
		case "number":
			w.Write([]byte(`{"reply": 5}`))
		case "plain":
			w.Write([]byte("ok"))
		case "202":
			w.WriteHeader(http.StatusAccepted)
		case "reply":
			w.Write([]byte(`{"reply": "hi"}`))
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	m := Message{ID: "3EB0A", From: "6281100000077", Chat: "6281100000077@s.whatsapp.net", Text: "x", Kind: "text", Time: time.Now()}
	for _, c := range []struct {
		name, reply, err string
	}{
		{"302", "", "handler answered 302 Found; remedy does not follow redirects"},
		{"307", "", "handler answered 307 Temporary Redirect; remedy does not follow redirects"},
		{"huge", "", "over 1048576 bytes"},
		{"big", strings.Repeat("é", MaxText), ""},
		{"garbage", "", ""},
		{"number", "", ""},
		{"plain", "", ""},
		{"202", "", ""},
		{"reply", "hi", ""},
	} {
		h := WebhookHandler{URL: srv.URL + "/hook/" + c.name, Secret: secret, Client: &http.Client{}}
		reply, err := h.Handle(context.Background(), m)
		if reply != c.reply || (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: reply of %d bytes, %v; want %d bytes, %q", c.name, len(reply), err, len(c.reply), c.err)
		}
	}
	if gets != 0 {
		t.Errorf("a redirect was followed %d times", gets)
	}
}

// A handler that sends its answer slowly holds the attempt no longer than its context
// (the inbound queue's item_timeout): the attempt fails and is retried.
func TestSlowHandlerBodyEndsWithTheAttempt(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"reply": "`))
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)
	// The item's deadline comes once the answer has begun (its first bytes are in), so
	// the body is what the attempt waits for when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	answering := make(chan struct{})
	var once sync.Once
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotFirstResponseByte: func() { once.Do(func() { close(answering) }) }})
	defer cancel()
	go func() {
		select {
		case <-answering:
		case <-ctx.Done():
		}
		cancel()
	}()
	_, err := WebhookHandler{URL: srv.URL, Client: &http.Client{}}.Handle(ctx, Message{ID: "x", Kind: "text"})
	if !errors.Is(err, context.Canceled) && (err == nil || !strings.Contains(err.Error(), "canceled")) {
		t.Fatalf("a slow body: %v", err)
	}
}
