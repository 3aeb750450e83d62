package main

import (
	"context"
	"fmt"

	"github.com/remedy-run/remedy/internal/daemon"
)

func runVersion(ctx context.Context, args []string, env *cliEnv) int {
	if len(args) > 0 {
		fmt.Fprintln(env.stderr, "Usage: remedy version\n\nPrints remedy's module version, the VCS revision it was built from and the Go version.")
		return exitBadInput
	}
	fmt.Fprintf(env.stdout, "remedy %s\n", versionString())
	return exitOK
}

// versionString is daemon.Version when the build set it, else the module version and
// VCS revision the Go toolchain recorded in the binary ("v1.2.0", or "(devel) rev
// 2bd7110 modified" from a work tree), and the Go version.
func versionString() string { return daemon.VersionString() }
