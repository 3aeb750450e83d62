//go:build race

package chat

// raceEnabled: the race detector slows the daemon about tenfold, so the flood is smaller
// (its throughput is measured without it, in bench/).
const raceEnabled = true
