package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// RunInfoFile is where a running remedy writes RunInfo, in its data directory.
const RunInfoFile = "remedy.run.json"

// RunInfo is what `remedy replay --from DATA_DIR` needs from the configuration the
// daemon ran with, so that a replay of its recording gives the answers it gave:
// hour() and weekday() in its time zone, and its policy source. `remedy run` writes it
// at start.
type RunInfo struct {
	Started         time.Time `json:"started"`
	Version         string    `json:"version"`
	Config          string    `json:"config"` // the file's path; "" for the built-in defaults
	Timezone        string    `json:"timezone"`
	Policies        string    `json:"policies"`
	DefaultPolicies bool      `json:"default_policies"`
}

// WriteRunInfo records the configuration in its data directory (atomically: a replay
// never reads half a file).
func (c *Config) WriteRunInfo(version string) error {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); p != "" && err == nil {
			return a
		}
		return p
	}
	info := RunInfo{Started: time.Now().UTC(), Version: version, Config: abs(c.File), Timezone: c.Timezone,
		Policies: abs(c.Policies), DefaultPolicies: c.DefaultPolicies}
	b, _ := json.MarshalIndent(info, "", "  ")
	path := filepath.Join(c.DataDir, RunInfoFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadRunInfo reads the RunInfo a remedy left in dir. It returns an error wrapping
// fs.ErrNotExist when none did (a data directory from before this file, or not one).
func ReadRunInfo(dir string) (RunInfo, error) {
	var info RunInfo
	b, err := os.ReadFile(filepath.Join(dir, RunInfoFile))
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("%s: %w", filepath.Join(dir, RunInfoFile), err)
	}
	return info, nil
}
