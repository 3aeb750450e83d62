package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// BenchmarkMetricsInsert writes batches of 1000 samples, one transaction each, to a real
// file (WAL, synchronous=NORMAL). The target is at least 100,000 samples per second.
func BenchmarkMetricsInsert(b *testing.B) {
	ctx := context.Background()
	m, err := OpenMetrics(ctx, Options{Path: filepath.Join(b.TempDir(), "m.sqlite")})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	names := []string{"cpu_percent", "mem_percent", "disk_free_percent", "process_rss_mb", "goroutines",
		"msgs_received_per_min", "error_rate", "queue_inbound_depth", "wa_connected", "db_open_conns"}
	batch := make([]Point, 1000)
	t0 := time.Now()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for j := range batch {
			batch[j] = Point{Time: t0.Add(time.Duration(i*1000+j) * time.Millisecond), Name: names[j%len(names)], Value: float64(j)}
		}
		if err := m.Insert(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkInsertEvent writes one event per transaction (the unbatched worst case).
func BenchmarkInsertEvent(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "r.db"), Schema: RemedySchema})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ev := engine.Event{Time: time.Now(), Code: "WA_DISCONNECTED", Source: "whatsapp", Labels: map[string]string{"reason": "network"}}
	for b.Loop() {
		if err := db.InsertEvent(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkInsertEventsBatch writes events 100 per transaction, as the daemon's event
// recorder does.
func BenchmarkInsertEventsBatch(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "r.db"), Schema: RemedySchema})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batch := make([]engine.Event, 100)
	for i := range batch {
		batch[i] = engine.Event{Time: time.Now(), Code: "WA_DISCONNECTED", Source: "whatsapp", Labels: map[string]string{"reason": "network"}}
	}
	for b.Loop() {
		if err := db.InsertEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}
