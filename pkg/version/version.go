// Package version is what every orbweaver binary says it is: the release version and
// commit stamped at build time (make build, make release) and the Go version. The
// orbweaver_build_info metric built from them is in buildinfo, so that the CNI plugin,
// which says its version, does not link the Prometheus client: every ADD is a process
// start, and its package inits are paid on each.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time, e.g. by make build:
//
//	-ldflags "-X github.com/orbweaver-ipam/orbweaver/pkg/version.version=v0.2.0
//	          -X github.com/orbweaver-ipam/orbweaver/pkg/version.commit=3f9c2a1"
var (
	version = "dev"
	commit  = ""
)

// Version is the release version ("dev" for a build that was not stamped).
func Version() string { return version }

// Commit is the source commit: the stamped one, else the one the Go toolchain recorded
// (a build inside the git work tree), else "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && dirty {
			rev += "-dirty"
		}
		if rev != "" {
			return rev
		}
	}
	return "unknown"
}

// String is the line a binary prints for --version and logs at start.
func String(component string) string {
	return fmt.Sprintf("%s %s (commit %s, %s)", component, Version(), Commit(), runtime.Version())
}
