//go:build race

package store

// raceEnabled: the race detector slows SQLite (pure Go here) about tenfold, so the
// simulated weeks are fewer under it.
const raceEnabled = true
