package monitor

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// A StateSet has one series per state from the first scrape, exactly one at 1; a state
// outside the list is shown too (at 1), never hidden.
func TestStateSetIsOneHot(t *testing.T) {
	cur := "b"
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStateSet("x_state", "help", "state", []string{"a", "b", "c"}, func() string { return cur }))
	scrape := func() string {
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	if b := scrape(); !strings.Contains(b, `x_state{state="a"} 0`) || !strings.Contains(b, `x_state{state="b"} 1`) || !strings.Contains(b, `x_state{state="c"} 0`) {
		t.Fatal(b)
	}
	cur = "new"
	if b := scrape(); strings.Count(b, "} 1") != 1 || !strings.Contains(b, `x_state{state="new"} 1`) {
		t.Fatal(b)
	}
}

// /readyz shows a StateCheck's word while it passes and its error when it fails; a plain
// Check shows "ok".
func TestReadyShowsStates(t *testing.T) {
	h := NewHealth()
	state, fail := "unpaired", false
	h.AddState("whatsapp", func(context.Context) (string, error) {
		if fail {
			return "", errors.New("whatsapp disconnected")
		}
		return state, nil
	})
	h.Add("engine", func(context.Context) error { return nil })
	ready := func() (int, string) {
		rec := httptest.NewRecorder()
		h.Ready(rec, httptest.NewRequest("GET", "/readyz", nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, b := ready(); code != 200 || !strings.Contains(b, `"whatsapp":"unpaired"`) || !strings.Contains(b, `"engine":"ok"`) {
		t.Fatalf("%d %s", code, b)
	}
	fail = true
	if code, b := ready(); code != 503 || !strings.Contains(b, `"whatsapp":"whatsapp disconnected"`) {
		t.Fatalf("%d %s", code, b)
	}
}
