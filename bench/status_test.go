package bench

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/store"
)

// statusEvents is the size of BenchmarkStatusLarge's database: 10 M events, the field
// run's file (B3: GET status took 2.4 s there); 1 M with -short (bench/run --short, CI's
// form). REMEDY_BENCH_STATUS_EVENTS sets it.
func statusEvents() int {
	if n, err := strconv.Atoi(os.Getenv("REMEDY_BENCH_STATUS_EVENTS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 1_000_000
	}
	return 10_000_000
}

// fillEvents makes remedy.db in dir with n events of the field run's shape (a label, a
// message; about 150 bytes each with the indexes), in statements of 500,000 rows
// (SQLite generates them: no round trip per row). Their times are the last n × 5 ms,
// inside the retention, so the daemon keeps them.
func fillEvents(tb testing.TB, dir string, n int) {
	tb.Helper()
	ctx := context.Background()
	data, err := store.OpenData(ctx, dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer data.Close()
	start := time.Now().Add(-time.Duration(n) * 5 * time.Millisecond).UnixMilli()
	const chunk = 500_000
	for from := 1; from <= n; from += chunk {
		to := min(from+chunk-1, n)
		if _, err := data.Main.Exec(ctx, `WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM c WHERE x < ?)
			INSERT INTO events(ts, code, source, labels, message, value)
			SELECT ? + x * 5, 'USER_MSG', 'loadbot', '{"seq":"' || x || '"}', 'event ' || x, 0 FROM c`, from, to, start); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := data.Main.Exec(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkStatusLarge times GET /api/v1/status on a database of statusEvents() events
// (10 M by default: making the file takes a minute or two), one caller at a time and six
// at once (the field run's 7–12 s), while the daemon's own scheduled integrity check
// reads the file beside them. It reports the file's size: status must not grow with it.
func BenchmarkStatusLarge(b *testing.B) {
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	n := statusEvents()
	fillEvents(b, data, n)
	st, err := os.Stat(filepath.Join(data, store.RemedyFile))
	if err != nil {
		b.Fatal(err)
	}
	r := start(b, func(c *config.Config) { c.DataDir, c.CheckInterval = data, time.Second })
	get := func() time.Duration {
		t0 := time.Now()
		req, _ := http.NewRequest("GET", r.base+"/api/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status: %s", resp.Status)
		}
		return time.Since(t0)
	}
	get()
	b.ResetTimer()
	var one, six latencies
	for b.Loop() {
		one = append(one, get())
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				d := get()
				mu.Lock()
				six = append(six, d)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	one.report(b, "status")
	six.report(b, "status6")
	b.ReportMetric(float64(n), "events")
	b.ReportMetric(float64(st.Size())/(1<<20), "file_MB")
	// The scheduled full check's own time on this file (it started a second after the
	// daemon; wait for its first result).
	for deadline := time.Now().Add(10 * time.Minute); r.d.Overview(context.Background()).Integrity.Checked.IsZero() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	b.ReportMetric(float64(r.d.Overview(context.Background()).Integrity.TookMS), "integrity_check_ms")
}
