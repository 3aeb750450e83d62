//go:build !race

package whatsapp

const raceEnabled = false
