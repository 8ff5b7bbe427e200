// Package knock is the pure core of nfqknockd: it derives the secret port
// sequences (compatible with the C nfqknockd) and tracks the knocks of each
// source address.
//
// Nothing here touches the network, starts a goroutine or reads the clock:
// the caller passes the time in. That keeps the logic testable against
// vectors produced by the C daemon and fuzzable.
package knock
