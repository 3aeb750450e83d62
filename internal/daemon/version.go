package daemon

import (
	"runtime/debug"
	"strings"
)

// VersionString says which remedy this is, for `remedy version`, the start log and the
// dashboard's footer: Version when the build set it (-ldflags "-X …daemon.Version=v1.2.0"),
// else the module version and the VCS revision that `go build` records in the binary
// (runtime/debug.ReadBuildInfo), then the Go version. Example: "(devel) rev 2bd7110c1a2e
// (modified) go1.26.8".
// (A build with -buildvcs=false records no revision; then none is shown.)
func VersionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	return versionFrom(info)
}

func versionFrom(info *debug.BuildInfo) string {
	parts := []string{info.Main.Version}
	if Version != "dev" {
		parts[0] = Version
	}
	if parts[0] == "" {
		parts[0] = "(devel)"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		parts = append(parts, "rev "+rev[:min(12, len(rev))])
		if modified == "true" {
			parts = append(parts, "(modified)")
		}
	}
	parts = append(parts, info.GoVersion)
	return strings.Join(parts, " ")
}
