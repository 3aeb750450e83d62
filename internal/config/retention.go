package config

import (
	"time"

	"github.com/remedy-run/remedy/internal/store"
)

// Retention is how long remedy.db keeps each table's rows (`retention:`; durations such
// as 30d or 720h). An absent key keeps store.DefaultKeep's value: events and decisions
// 30d, audit and alerts 180d, alert_outbox (delivered rows) 30d, silences 5d after they
// end, dead_letters 30d after they were replayed, outgoing 30d after the message left,
// reports 365d, quarantine 90d. Rows still needed are kept past it (see store.Keep).
type Retention struct {
	Events      time.Duration `yaml:"events"`
	Decisions   time.Duration `yaml:"decisions"`
	Audit       time.Duration `yaml:"audit"`
	Alerts      time.Duration `yaml:"alerts"`
	AlertOutbox time.Duration `yaml:"alert_outbox"`
	Silences    time.Duration `yaml:"silences"`
	DeadLetters time.Duration `yaml:"dead_letters"`
	Outgoing    time.Duration `yaml:"outgoing"`
	Reports     time.Duration `yaml:"reports"`
	Quarantine  time.Duration `yaml:"quarantine"`
}

// Keep is the retention in force: the configured values over store.DefaultKeep.
func (r Retention) Keep() store.Keep {
	return store.Keep{Events: r.Events, Decisions: r.Decisions, Audit: r.Audit, Alerts: r.Alerts,
		Outbox: r.AlertOutbox, Silences: r.Silences, DeadLetters: r.DeadLetters, Outgoing: r.Outgoing,
		Reports: r.Reports, Quarantine: r.Quarantine}.WithDefaults()
}

// validateRetention (its keys are the tables' names) refuses a retention shorter than store.MinKeep: rows would go
// before the dashboard, replay or an incident review could read them.
func (c *Config) validateRetention(bad func(path, format string, args ...any)) {
	for _, f := range []struct {
		key string
		v   time.Duration
	}{{"events", c.Retention.Events}, {"decisions", c.Retention.Decisions}, {"audit", c.Retention.Audit},
		{"alerts", c.Retention.Alerts}, {"alert_outbox", c.Retention.AlertOutbox}, {"silences", c.Retention.Silences},
		{"dead_letters", c.Retention.DeadLetters}, {"outgoing", c.Retention.Outgoing}, {"reports", c.Retention.Reports},
		{"quarantine", c.Retention.Quarantine}} {
		if f.v != 0 && f.v < store.MinKeep {
			bad("retention."+f.key, "retention.%s must be at least %v (or absent for the default, %v), got %v",
				f.key, store.MinKeep, store.DefaultKeep.Of(f.key), f.v)
		}
	}
}
