// Package e2e tests the built nfqknockd and nfqknock as black boxes: each
// test builds the binaries (testutil.Build), runs them as processes in a
// server and a client network namespace (internal/netns), and checks them
// from outside with real TCP and raw SYNs, nft listings, their exit
// statuses, logs, metrics files and notify datagrams. The harness is
// harness_test.go (the namespaces, listeners, connects and knocks) and
// daemon_test.go (the daemon and other long-running processes). The tests
// need root (netns.RequireRoot). The daemon's logic on the fake table
// (nft/nfttest) is tested beside its code in cmd/nfqknockd. The package
// holds only tests and is imported by nothing.
package e2e
