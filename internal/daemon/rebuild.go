package daemon

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/remedy-run/remedy/internal/store"
)

// rebuildEvery is how often a running rebuild is logged and told to systemd.
const rebuildEvery = 5 * time.Second

// rebuildExtend is the EXTEND_TIMEOUT_USEC sent with each progress report: six reports'
// worth, so a loaded machine that delays one is not stopped by TimeoutStartSec.
const rebuildExtend = 30 * time.Second

// rebuildProgress is the store's Progress hook for database db: every rebuildEvery of a
// rebuild, and at its end, a log line with the rows copied and the rate, systemd's
// STATUS=, and EXTEND_TIMEOUT_USEC, so a rebuild at start (before READY=1) is not
// killed by the unit's start timeout (field case C7: SIGTERM after 90 s).
func rebuildProgress(log *slog.Logger, db string) func(store.RebuildProgress) {
	var mu sync.Mutex
	var last time.Time
	return func(p store.RebuildProgress) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if !p.Done && now.Sub(last) < rebuildEvery {
			return
		}
		last = now
		rate := 0
		if s := now.Sub(p.Started).Seconds(); s > 0 {
			rate = int(float64(p.Copied) / s)
		}
		if p.Done {
			log.Warn("database rebuilt and swapped in", "db", db, "rows_copied", p.Copied, "rows", p.Rows, "rows_per_second", rate)
			sdNotify("STATUS=" + db + " rebuilt")
			return
		}
		log.Warn("rebuilding the database; the damaged file stays in use until the copy is complete", "db", db,
			"progress", p.String(), "rows_per_second", rate)
		sdNotify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d\nSTATUS=rebuilding %s: %s", rebuildExtend.Microseconds(), db, p))
	}
}
