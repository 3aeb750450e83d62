package store

import (
	"embed"
	"os"
	"syscall"
)

//go:embed migrations
var migrationsFS embed.FS

// RemedySchema is data/remedy.db: events, decisions, the actions audit, alerts and their
// outbox, silences, queues and the dead-letter table, bot state, and quarantined rows.
var RemedySchema = Schema{
	Name:       "remedy",
	Migrations: sub(migrationsFS, "migrations/remedy"),
	JSON: map[string][]string{
		"events":       {"labels"},
		"decisions":    {"payload"},
		"audit":        {"params"},
		"alerts":       {"labels", "annotations"},
		"alert_outbox": {"payload"},
		"silences":     {"matchers"},
		"queue_items":  {"payload"},
		"dead_letters": {"payload"},
		"state":        {"data"},
	},
}

// MetricsSchema is data/monitoring_metrics.sqlite: raw samples and 1-minute rollups,
// kept apart from remedy.db as the seed asks, so metrics can be shed or pruned alone.
var MetricsSchema = Schema{
	Name:       "metrics",
	Migrations: sub(migrationsFS, "migrations/metrics"),
}

// fileID identifies the file behind a path, to notice when it is replaced or deleted.
func fileID(path string) (dev, ino uint64) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev), s.Ino
	}
	return 0, 0
}
