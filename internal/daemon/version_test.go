package daemon

import (
	"runtime/debug"
	"testing"
)

// The version names the module version, the VCS revision and whether the tree was
// modified, as `go build` records them.
func TestVersionFromBuildInfo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		info debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "2bd7110c1a2e9f0d"}, {Key: "vcs.modified", Value: "false"}}},
			"v1.2.0 rev 2bd7110c1a2e go1.26.8"},
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "2bd7110c1a2e9f0d"}, {Key: "vcs.modified", Value: "true"}}},
			"(devel) rev 2bd7110c1a2e (modified) go1.26.8"},
		{debug.BuildInfo{GoVersion: "go1.26.8"}, "(devel) go1.26.8"},
	} {
		if got := versionFrom(&tc.info); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}
