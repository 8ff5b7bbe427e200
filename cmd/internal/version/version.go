// Package version holds the version that nfqknockd and nfqknock print with
// --version. The Makefile stamps it into both at once:
//
//	go build -ldflags "-X github.com/nfqknockd/nfqknockd/cmd/internal/version.stamp=1.2.3"
package version

import "runtime/debug"

// stamp is set at build time with -X (see the package comment).
var stamp = ""

// String returns the version stamped at build time; else the module's
// version when the binary was built by `go install MODULE@VERSION`; else
// "dev".
func String() string {
	if stamp != "" {
		return stamp
	}
	return fromBuildInfo(debug.ReadBuildInfo())
}

// fromBuildInfo returns the main module's version in bi, or "dev" when
// there is none: a build inside the repository reports "(devel)".
func fromBuildInfo(bi *debug.BuildInfo, ok bool) string {
	if ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
