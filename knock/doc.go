// Package knock is the pure core of nfqknockd: it derives the secret port
// sequences (compatible with the C nfqknockd, and one-time sequences),
// parses access files of users with secrets of their own, tracks the
// knocks of each source address against the sequences of every user, and
// decides the replays of one-time sequences across trackers (Ledger).
//
// Nothing here touches the network, starts a goroutine or reads the clock:
// the caller passes the time in. That keeps the logic testable against
// vectors produced by the C daemon and by openssl, and fuzzable. Only the
// Ledger, which the daemon's trackers share, takes a lock.
package knock
