//go:build !linux

package testutil

// sweepStale does nothing: network namespaces are Linux's. The tests that
// need them build on Linux only.
func sweepStale() {}
