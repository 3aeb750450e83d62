//go:build race

package whatsapp

// raceEnabled: the tests that run the real client for hours on synctest's clock meet
// whatsmeow's own data races (its FrameSocket reads the connection without the lock
// that Close holds); they run without -race in .ci/run.
const raceEnabled = true
