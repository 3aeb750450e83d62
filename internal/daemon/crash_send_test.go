package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/store"
)

// sendRig is the client side of TestCrashSends: senders that post messages with an
// idempotency key each and, like a careful client, post a key again (same body) when
// they got no answer.
type sendRig struct {
	mu      sync.Mutex
	next    int
	acked   map[string]string // key -> message id answered 202
	pending map[string]bool   // keys posted without an answer (or refused): to post again
	chats   []string
}

func (s *sendRig) body(key string) []byte {
	n, _ := strconv.Atoi(strings.TrimPrefix(key, "k"))
	b, _ := json.Marshal(map[string]string{"to": s.chats[n%len(s.chats)], "text": "send " + key, "idempotency_key": key})
	return b
}

// take returns a key to post: one without an answer first, else a new one.
func (s *sendRig) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.pending {
		delete(s.pending, k)
		return k
	}
	s.next++
	return "k" + strconv.Itoa(s.next)
}

// post sends one key; it reports whether remedy answered 202.
func (s *sendRig) post(client *http.Client, base, key string) bool {
	resp, err := client.Post(base+"/api/v1/messages", "application/json", bytes.NewReader(s.body(key)))
	ok := false
	if err == nil {
		var a struct{ ID string }
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted && json.Unmarshal(b, &a) == nil && a.ID != "" {
			ok = true
			s.mu.Lock()
			if prev, seen := s.acked[key]; seen && prev != a.ID {
				a.ID = "CONFLICT " + prev + " " + a.ID
			}
			s.acked[key] = a.ID
			s.mu.Unlock()
		}
	}
	if !ok {
		s.mu.Lock()
		s.pending[key] = true
		s.mu.Unlock()
	}
	return ok
}

func (s *sendRig) load(base string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	senders := 4
	if raceEnabled {
		senders = 2 // fewer messages to drain at the end
	}
	for range senders {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.post(client, base, s.take())
			}
		})
	}
	return &wg
}

type outRow struct {
	ID     string `db:"id"`
	Key    string `db:"idem_key"`
	Chat   string `db:"chat"`
	Status string `db:"status"`
}

func outgoingRows(t *testing.T, dataDir string) []outRow {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Path: filepath.Join(dataDir, store.RemedyFile), Schema: store.RemedySchema})
	if err != nil {
		t.Fatalf("open after kill: %v", err)
	}
	defer db.Close()
	var rows []outRow
	// The send API's messages only: the rig's phone writes every 20 ms and the bot's
	// replies (keys "reply:…") keep coming for as long as the child runs.
	if err := db.Select(ctx, &rows, `SELECT id, coalesce(idem_key, '') AS idem_key, chat, status FROM outgoing
		WHERE coalesce(idem_key, '') NOT LIKE ? ORDER BY rowid`, chat.ReplyKeyPrefix+"%"); err != nil {
		t.Fatal(err)
	}
	return rows
}

// kill -9 during a stream of sends through the API (with the crash test's mixed
// traffic beside it: incoming messages and the bot's replies). After every kill, each
// message answered 202 is on disk under its key. After a clean last run every message
// has gone out; each key is one message (its id), the server saw each id at least
// once and again at most once per kill (a send acknowledged by WhatsApp whose commit
// the kill cut: sent again with the same id, which the recipient's phone drops as a
// duplicate), and each chat got its messages in the order remedy accepted them.
func TestCrashSends(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills a child process")
	}
	kills, rng := crashPlan(t, 4, 2) // each start of the child costs seconds under -race
	rig, env := newCrashRig(t)
	dataDir := filepath.Join(rig.dir, "data")
	sr := &sendRig{acked: map[string]string{}, pending: map[string]bool{},
		chats: []string{"+62 811-0000-0011", "6281100000012@s.whatsapp.net", "6281100000013"}}
	for k := range kills {
		cmd, base := rig.start(env)
		stop := make(chan struct{})
		wg := sr.load(base, stop)
		time.Sleep(time.Duration(100+rng.IntN(1400)) * time.Millisecond) // the kill moment is the fault schedule
		cmd.Process.Kill()
		cmd.Wait()
		close(stop)
		wg.Wait()
		byKey := map[string]string{}
		for _, r := range outgoingRows(t, dataDir) {
			byKey[r.Key] = r.ID
		}
		sr.mu.Lock()
		lost := 0
		for key, id := range sr.acked {
			if byKey[key] != id {
				lost++
			}
		}
		t.Logf("kill %d: %d messages acknowledged so far, %d on disk, %d acknowledged but missing", k+1, len(sr.acked), len(byKey), lost)
		sr.mu.Unlock()
		if lost > 0 {
			t.Fatalf("kill %d: %d acknowledged messages are not on disk", k+1, lost)
		}
	}
	// The last run: post the unanswered keys again, then wait until everything is sent.
	// It starts with a fresh login budget: restarts seconds apart are short sessions,
	// which the budget answers with a pause (up to minutes) before the next login, and
	// the child runs no reconnect policy. The budget has its own tests.
	os.Remove(filepath.Join(rig.dir, "whatsapp.db.logins"))
	cmd, base := rig.start(env)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/api/v1/status")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"whatsapp": "connected"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the last run does not connect: %s", b)
			}
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for deadline := time.Now().Add(time.Minute); ; {
		sr.mu.Lock()
		var keys []string
		for k := range sr.pending {
			keys = append(keys, k)
		}
		sr.pending = map[string]bool{}
		sr.mu.Unlock()
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			sr.post(client, base, k)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys still refused", len(keys))
		}
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		queued := 0
		for _, r := range outgoingRows(t, dataDir) {
			if r.Status == "queued" {
				queued++
			}
		}
		if queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still queued", queued)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	rows := outgoingRows(t, dataDir)
	seen := map[string]int{}
	var order []string // first arrivals, in order
	b, _ := os.ReadFile(filepath.Join(rig.dir, "server-messages"))
	for line := range strings.Lines(string(b)) {
		id, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if seen[id] == 0 {
			order = append(order, id)
		}
		seen[id]++
	}
	keys, dups := map[string]bool{}, 0
	perChat := map[string][]string{}
	for _, r := range rows {
		if r.Key == "" {
			continue
		}
		if keys[r.Key] {
			t.Errorf("key %s has two messages", r.Key)
		}
		keys[r.Key] = true
		perChat[r.Chat] = append(perChat[r.Chat], r.ID)
		switch {
		case seen[r.ID] == 0:
			t.Errorf("message %s (%s) never reached the server; status %s", r.ID, r.Key, r.Status)
		case seen[r.ID] > 1:
			dups += seen[r.ID] - 1
		}
	}
	for key, id := range sr.acked {
		if strings.HasPrefix(id, "CONFLICT") {
			t.Errorf("key %s answered two ids: %s", key, id)
		}
		if !keys[key] {
			t.Errorf("acknowledged key %s has no message", key)
		}
	}
	for chat, ids := range perChat {
		var got []string
		for _, id := range order {
			if slices.Contains(ids, id) {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, ids) {
			t.Errorf("%s: arrival order differs from acceptance order (%d messages)", chat, len(ids))
		}
	}
	t.Logf("%d kills: %d messages acknowledged, %d sent, none lost; %d sent twice with the same id (at most one per kill)",
		kills, len(sr.acked), len(keys), dups)
	if dups > kills {
		t.Errorf("%d repeated sends for %d kills", dups, kills)
	}
}
