package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/store"
)

// storeFault makes remedy.db refuse writes until the returned function ends the fault.
type storeFault struct {
	name  string
	apply func(t *testing.T, r *running) (clear func())
}

var storeFaults = []storeFault{
	{"write lock held past every retry budget", func(t *testing.T, r *running) func() {
		lock, err := holdWriteLock(context.Background(), filepath.Join(r.cfg.DataDir, store.RemedyFile))
		if err != nil {
			t.Fatal(err)
		}
		return lock.release
	}},
	{"disk full (max_page_count)", func(t *testing.T, r *running) func() {
		ctx := context.Background()
		var pages int
		if err := r.d.data.Main.Get(ctx, &pages, `PRAGMA page_count`); err != nil {
			t.Fatal(err)
		}
		// The writer is one connection: the limit applies to every write remedy makes.
		if _, err := r.d.data.Main.Exec(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
			t.Fatal(err)
		}
		// Then the free space inside the pages is filled, as a full disk would be.
		for _, size := range []int{4000, 500, 50, 1} {
			for i := 0; i < 10_000; i++ {
				if _, err := r.d.data.Main.Exec(ctx, `INSERT INTO state(key, kind, data, updated) VALUES (?, 'filler', ?, 0)`,
					fmt.Sprintf("filler-%d-%d", size, i), strings.Repeat("x", size)); err != nil {
					break
				}
			}
		}
		return func() {
			r.d.data.Main.Exec(ctx, `PRAGMA max_page_count = 1073741823`)
			r.d.data.Main.Exec(ctx, `DELETE FROM state WHERE kind = 'filler'`)
		}
	}},
	{"read-only database (SQLITE_READONLY)", func(t *testing.T, r *running) func() {
		// query_only on the writer connection: every write fails as on a read-only file,
		// until the fault ends or remedy's own RESET_DB reopens the pool.
		ctx := context.Background()
		if _, err := r.d.data.Main.Exec(ctx, `PRAGMA query_only = 1`); err != nil {
			t.Fatal(err)
		}
		return func() { r.d.data.Main.Exec(ctx, `PRAGMA query_only = 0`) }
	}},
	{"disk I-O error (SQLITE_IOERR_WRITE: immutable WAL)", func(t *testing.T, r *running) func() {
		// A real fault of the operating system: the immutable attribute on remedy.db's
		// WAL makes the kernel refuse every write to it (ext4 checks it on each write,
		// not only at open), which SQLite reports as "disk I/O error" (778). It needs
		// root and a file system with the attribute; elsewhere the case is skipped.
		wal := filepath.Join(r.cfg.DataDir, store.RemedyFile) + "-wal"
		if out, err := exec.Command("chattr", "+i", wal).CombinedOutput(); err != nil {
			t.Skipf("cannot make %s immutable here (needs root and ext4/xfs/btrfs): %v %s", wal, err, out)
		}
		lift := func() { exec.Command("chattr", "-i", wal).Run() }
		t.Cleanup(lift) // else the temporary directory cannot be removed
		// The fault is the one named: remedy's own write probe meets SQLITE_IOERR.
		r.eventually("readyz reporting the I/O error", func() bool {
			_, b := r.do("GET", "/readyz", "")
			return strings.Contains(b, "disk I/O error")
		})
		return lift
	}},
}

// hookRecorder is an alert webhook that remembers what it received.
type hookRecorder struct {
	mu     sync.Mutex
	alerts []struct {
		ID       int64  `json:"id"`
		Policy   string `json:"policy"`
		State    string `json:"state"`
		Instance string `json:"instance"`
	}
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Alerts []struct {
			ID       int64  `json:"id"`
			Policy   string `json:"policy"`
			State    string `json:"state"`
			Instance string `json:"instance"`
		}
	}
	json.NewDecoder(r.Body).Decode(&body)
	h.mu.Lock()
	h.alerts = append(h.alerts, body.Alerts...)
	h.mu.Unlock()
}

// count is how many instances of policy were delivered in state, and the most times
// one instance was.
func (h *hookRecorder) count(policy, state string) (instances, most int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]int{}
	for _, a := range h.alerts {
		if a.Policy == policy && a.State == state {
			seen[a.Instance]++
			most = max(most, seen[a.Instance])
		}
	}
	return len(seen), most
}

// Store faults: while remedy.db refuses writes, the ingest API answers 503 (never 2xx
// for what is not on disk), remedy's own rows wait in the writers, and the alert about
// it (store-backlog) is delivered on the webhook although it cannot be stored. Once the
// fault ends, every acknowledged event is in the database, the backlog is written, and
// the alert is stored with its delivery recorded (not sent twice).
func TestStoreFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("holds each fault past the ingest bound")
	}
	// The faults run side by side, each on its own daemon; the table is printed once all
	// have ended, in storeFaults' order.
	table := make([]string, len(storeFaults))
	t.Cleanup(func() {
		t.Log("\n| fault | inputs acknowledged | inputs refused (503/429) | found after | alerts |\n|---|---|---|---|---|\n" + strings.Join(table, "\n"))
	})
	for i, f := range storeFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			hook := &hookRecorder{}
			hs := httptest.NewServer(hook)
			defer hs.Close()
			r := startDaemon(t, func(c *config.Config) {
				c.Alerts.Webhook = &config.Endpoint{URL: hs.URL}
				c.HealthInterval = 200 * time.Millisecond
				os.WriteFile(filepath.Join(c.Policies, "orders.yaml"), []byte(crashPolicies), 0o644)
			})
			var (
				mu              sync.Mutex
				acked           []int64
				refused, others int
				seq             int64
			)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					client := &http.Client{Timeout: 30 * time.Second}
					for {
						select {
						case <-stop:
							return
						default:
						}
						mu.Lock()
						seq++
						n := seq
						mu.Unlock()
						body := fmt.Sprintf(`{"code":"ORDER_FAILED","labels":{"seq":"%d","alert":"no"}}`, n)
						resp, b, err := postJSON(client, r.base+"/api/v1/events", body)
						if err != nil {
							continue
						}
						mu.Lock()
						switch {
						case resp.StatusCode == 202:
							acked = append(acked, n)
						case resp.StatusCode == 503 || resp.StatusCode == 429:
							if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"error"`) {
								t.Errorf("refusal without Retry-After or error shape: %d %s", resp.StatusCode, b)
							}
							refused++
						default:
							others++
						}
						mu.Unlock()
						time.Sleep(10 * time.Millisecond) // a bot's pace, not a flood
					}
				})
			}
			r.eventually("some events acknowledged before the fault", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > 10 })
			clear := f.apply(t, r)
			r.eventually("an ingest refused", func() bool { mu.Lock(); defer mu.Unlock(); return refused > 0 })
			// The alert about the fault (store-backlog when remedy's own rows wait,
			// health-check-failed for database_writable) cannot be stored: it is
			// delivered anyway.
			alerted := func() bool {
				for _, p := range []string{"store-backlog", "health-check-failed"} {
					if n, _ := hook.count(p, "firing"); n > 0 {
						return true
					}
				}
				return false
			}
			r.eventually("an alert about the fault delivered while it cannot be stored", func() bool {
				return alerted()
			})
			var storedDuring int
			r.d.data.Main.Get(context.Background(), &storedDuring, `SELECT count(*) FROM alerts WHERE policy IN ('store-backlog', 'health-check-failed')`)
			clear()
			close(stop)
			wg.Wait()
			r.eventually("the backlog written", func() bool { return r.d.backlog() == 0 })
			r.eventually("the alert stored, its delivery recorded", func() bool {
				var n int
				r.d.data.Main.Get(context.Background(), &n, `SELECT count(*) FROM alert_outbox o JOIN alerts a ON a.id = o.alert_id
					WHERE a.policy IN ('store-backlog', 'health-check-failed') AND a.state = 'firing' AND o.channel = 'webhook' AND o.delivered > 0`)
				return n > 0
			})
			var seqs []string
			if err := r.d.data.Main.Select(context.Background(), &seqs, `SELECT json_extract(labels, '$.seq') FROM events WHERE code = 'ORDER_FAILED'`); err != nil {
				t.Fatal(err)
			}
			found := map[int64]bool{}
			for _, s := range seqs {
				n, _ := strconv.ParseInt(s, 10, 64)
				found[n] = true
			}
			missing := 0
			for _, n := range acked {
				if !found[n] {
					missing++
				}
			}
			if missing > 0 || others > 0 {
				t.Fatalf("%d of %d acknowledged events missing; %d answers neither 2xx nor 429/503", missing, len(acked), others)
			}
			var delivered []string
			for _, p := range []string{"store-backlog", "health-check-failed"} {
				n, most := hook.count(p, "firing")
				if most > 1 {
					t.Fatalf("a %s firing delivered %d times, want once", p, most)
				}
				if n > 0 {
					delivered = append(delivered, fmt.Sprintf("%s ×%d", p, n))
				}
			}
			table[i] = fmt.Sprintf("| %s | %d | %d | %d of %d | %s delivered on the webhook during the fault (stored during it: %v), each once |",
				f.name, len(acked), refused, len(acked)-missing, len(acked), strings.Join(delivered, ", "), storedDuring > 0)
		})
	}
}

// A full disk shows as such everywhere: the status API (database and disk), readiness,
// the admin chat's !status, and the dashboard's badges in a real browser.
func TestFullDiskShowsEverywhere(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) { c.HealthInterval = 200 * time.Millisecond })
	clear := storeFaults[1].apply(t, r)
	defer clear()
	// The bot keeps posting (each write finds the disk full); the disk field must say
	// "full" — "full: …" while writes fail, "reserve released (the disk was full)" after
	// a write that fitted in a page's free space.
	r.eventually("the status saying full", func() bool {
		r.do("POST", "/api/v1/events", `{"code":"CUSTOM_FAULT","labels":{"part":"disk"}}`)
		_, b := r.do("GET", "/api/v1/status", "")
		return strings.Contains(b, `"disk": "full: `) || strings.Contains(b, `"disk": "reserve released (the disk was full)"`)
	})
	r.eventually("readyz failing", func() bool {
		r.do("POST", "/api/v1/events", `{"code":"CUSTOM_FAULT","labels":{"part":"disk"}}`)
		code, _ := r.do("GET", "/readyz", "")
		return code == 503
	})
	if s := (chatBackend{r.d}).Status(context.Background()); !strings.Contains(s, "full") {
		t.Fatalf("!status: %s", s)
	}
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"), chromedp.WaitVisible(`#disk`)); err != nil {
		t.Fatal(err)
	}
	badges, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.querySelector("#db").textContent, document.querySelector("#disk").textContent]`))
	if err != nil {
		t.Fatal(err)
	}
	db, disk := badges[0], badges[1]
	// The database badge says "full" while writes fail; a write that fits in a page's
	// free space clears it, so the disk badge is the one that must stay: the reserve was
	// released because the disk was full, until it is made again.
	if !strings.Contains(disk, "full") || (db != "database ok" && !strings.Contains(db, "full")) {
		t.Fatalf("dashboard badges: %q, %q", db, disk)
	}
}
