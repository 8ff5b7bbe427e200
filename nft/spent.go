package nft

import (
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
)

// SpentSize is the size of the set spent: how many used one-time
// sequences it holds at once. When it is full the kernel refuses the next
// Spend (ENFILE); the daemon still refuses that sequence from memory.
const SpentSize = 65536

// SpentKey is an element of the set spent: the digest of a used one-time
// sequence, opaque to the kernel (typed ipv6_addr for its 16 bytes), and
// the life it has left.
type SpentKey struct {
	Key     [16]byte
	Expires time.Duration
}

// spentSet returns the set spent of table t: 16-byte keys with timeouts,
// at most SpentSize of them.
func spentSet(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: SetSpent, KeyType: nftables.TypeIP6Addr,
		KeyByteOrder: binaryutil.BigEndian, HasTimeout: true, Size: SpentSize}
}
