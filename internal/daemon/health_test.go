package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// Field case 90: the engine's readiness probe measures whether the loop answers, not
// whether it turned recently. An idle loop (a 45 s sample interval, nothing else
// happening) is ready; a loop that cannot answer within the probe's 5 s is not.
func TestEngineProbeIsResponsivenessNotActivity(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	// Idle for an hour, as far as the loop's last turn says (the old probe failed after 30 s).
	r.d.lastLoop.Store(time.Now().Add(-time.Hour).UnixNano())
	if code, b := r.do("GET", "/readyz", ""); code != 200 || !strings.Contains(b, `"engine":"ok"`) {
		t.Fatalf("an idle engine: readyz %d %s", code, b)
	}
	release, busy := make(chan struct{}), make(chan struct{})
	go r.d.query(context.Background(), func(*engine.Engine) { close(busy); <-release })
	<-busy
	code, b := r.do("GET", "/readyz", "")
	close(release)
	if code != 503 || !strings.Contains(b, "did not answer a ping") {
		t.Fatalf("a hung engine: readyz %d %s", code, b)
	}
	if code, b := r.do("GET", "/readyz", ""); code != 200 {
		t.Fatalf("after the loop answers again: readyz %d %s", code, b)
	}
}
