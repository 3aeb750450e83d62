//go:build race

package engine

// raceEnabled: the race detector slows the engine several times; the seeded invariant
// tests run fewer seeds under it.
const raceEnabled = true
