//go:build race

package conditions

// raceEnabled: the race detector slows evaluation several times; the differential test
// runs fewer conditions under it.
const raceEnabled = true
