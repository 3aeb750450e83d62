package actions

import (
	"context"
	"errors"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	ran := false
	if err := r.Register("NOTIFY", ActionFunc(func(ctx context.Context, p Params) error { ran = p["text"] == "hi"; return nil })); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("NOTIFY", ActionFunc(nil)); err == nil {
		t.Fatal("duplicate registration accepted")
	}
	if err := r.Register("REBOOT", ActionFunc(nil)); !errors.Is(err, ErrUnknownAction) {
		t.Fatalf("unknown name: %v", err)
	}
	a, err := r.Get("NOTIFY")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background(), Params{"text": "hi"}); err != nil || !ran {
		t.Fatal("action did not run")
	}
	if _, err := r.Get("EXEC"); !errors.Is(err, ErrUnknownAction) {
		t.Fatalf("Get of an unregistered action: %v", err)
	}
}
