package daemon

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The API's reload (POST /api/v1/reload) is SIGHUP's: it re-reads the configuration's
// sessions too. A configuration with errors changes no session: the answer and the
// dashboard's last reload are not OK and give each error with its position, and both
// sessions keep running, not restarted. The configuration put right, a reload removes
// one session and leaves the other the same.
func TestAPIReloadCoversTheSessions(t *testing.T) {
	t.Parallel()
	x := startTwoSessions(t)
	r := x.r
	sales, support := r.d.sessions.get("sales"), r.d.sessions.get("support")
	file := filepath.Join(t.TempDir(), "remedy.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf("data_dir: %s\nwhatsapp:\n  handler: {url: %q}\nsessions:\n  - name: sales\n    store: %s\n  - name: Bad Name\n",
		r.cfg.DataDir, x.bot, x.stores["sales"])), 0o644)
	r.d.cfg.File = file
	code, b := r.do("POST", "/api/v1/reload", "")
	if code != http.StatusOK && code != http.StatusUnprocessableEntity {
		t.Fatalf("reload: %d %s", code, b)
	}
	if !strings.Contains(b, `"ok": false`) || !strings.Contains(b, "remedy.yaml:7:") {
		t.Fatalf("a configuration with errors: want not ok and the error's position, got %d %s", code, b)
	}
	if r.d.sessions.get("sales") != sales || r.d.sessions.get("support") != support {
		t.Fatal("a failed reload touched the running sessions")
	}
	if _, b := r.do("GET", "/api/v1/status", ""); !strings.Contains(b, "remedy.yaml:7:") {
		t.Errorf("the status's last reload does not show the error: %s", b)
	}
	os.WriteFile(file, []byte(fmt.Sprintf("data_dir: %s\nwhatsapp:\n  handler: {url: %q}\nsessions:\n  - name: sales\n    store: %s\n",
		r.cfg.DataDir, x.bot, x.stores["sales"])), 0o644)
	if code, b := r.do("POST", "/api/v1/reload", ""); code != http.StatusOK || !strings.Contains(b, `"ok": true`) {
		t.Fatalf("reload: %d %s", code, b)
	}
	if got := r.d.sessions.names(); !slices.Equal(got, []string{"sales"}) || r.d.sessions.get("sales") != sales {
		t.Fatalf("sessions after the reload %v", got)
	}
	x.send(t, "6281100000076", "sales", "still here")
	r.eventually("sales answering after the reload", func() bool { return x.sentBy("sales", "6281100000076") })
}
