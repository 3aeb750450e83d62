package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/store"
)

// A remedy.db found damaged at start is rebuilt before READY=1, and systemd is told the
// start is still working (EXTEND_TIMEOUT_USEC, STATUS=) while it is: a Type=notify unit
// stopped a long rebuild at its start timeout (field case C7).
func TestRebuildAtStartTellsSystemd(t *testing.T) {
	// Not parallel: t.Setenv (NOTIFY_SOCKET) changes the process environment.
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	data := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(data, store.RemedyFile)
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Path: path, Schema: store.RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]engine.Event, 20000)
	for i := range evs {
		evs[i] = engine.Event{Time: time.Unix(int64(i), 0), Code: "USER_MSG", Message: fmt.Sprint("event ", i)}
	}
	if err := db.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	f.WriteAt([]byte(strings.Repeat("\xab\xcd\xef\x01", 1024)), st.Size()/4096/2*4096)
	f.Close()

	startDaemon(t, func(c *config.Config) { c.DataDir = data })
	var got []string
	buf := make([]byte, 512)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for len(got) == 0 || got[len(got)-1] != "READY=1" {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("got %q: %v", got, err)
		}
		got = append(got, string(buf[:n]))
	}
	all := strings.Join(got, "\n")
	if !strings.Contains(got[0], "EXTEND_TIMEOUT_USEC=30000000") || !strings.Contains(got[0], "STATUS=rebuilding remedy:") ||
		!strings.Contains(all, "STATUS=remedy rebuilt") {
		t.Fatalf("told systemd %q; want EXTEND_TIMEOUT_USEC and STATUS= while rebuilding, before READY=1", got)
	}
	if b, _ := filepath.Glob(path + ".corrupt-*"); len(b) != 1 {
		t.Fatalf("damaged file kept as %v", b)
	}
}
