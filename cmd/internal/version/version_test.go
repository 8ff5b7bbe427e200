package version

import (
	"runtime/debug"
	"testing"
)

// TestFromBuildInfo: an unstamped binary prints the module version of `go
// install MODULE@VERSION`, else "dev".
func TestFromBuildInfo(t *testing.T) {
	tests := []struct {
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{nil, false, "dev"},
		{&debug.BuildInfo{}, true, "dev"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "dev"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, true, "v1.2.3"},
	}
	for _, tt := range tests {
		if got := fromBuildInfo(tt.bi, tt.ok); got != tt.want {
			t.Errorf("fromBuildInfo(%+v, %v) = %q; want %q", tt.bi, tt.ok, got, tt.want)
		}
	}
}
