package testutil

import "github.com/nfqknockd/nfqknockd/internal/netns"

// sweepStale removes the network namespaces that crashed test runs left.
func sweepStale() { netns.SweepStale() }
