package actions

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestHideURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hooks.example.com/services/T0/B0/SECRET":  "https://hooks.example.com/…",
		"http://user:SECRET@127.0.0.1:9093/x?token=SECRET": "http://127.0.0.1:9093/…",
		"not a url %zz SECRET":                             "the configured URL",
	} {
		if got := HideURL(raw); got != want {
			t.Errorf("HideURL(%q) = %q, want %q", raw, got, want)
		}
	}
	// A client's error keeps its cause but loses the URL's secret.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://127.0.0.1:9/hook/SECRET?k=SECRET", nil)
	_, err := http.DefaultClient.Do(req)
	err = HideURLError(err)
	if err == nil || strings.Contains(err.Error(), "SECRET") || !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
}
