package nft

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// conntrackCount is the number of connections conntrack tracks in the
// network namespace of the reader; the file exists only where the
// nf_conntrack module is loaded.
const conntrackCount = "/proc/sys/net/netfilter/nf_conntrack_count"

// ConntrackInUse reports whether conntrack tracks connections in the
// calling thread's network namespace: nf_conntrack is loaded and holds at
// least one connection there. It decides Spec.Conntrack. A ct expression
// of our own would make the kernel track every connection of the namespace
// (nft_ct registers conntrack's hooks for it): on a host that did not
// track, that costs memory and a table that a flood fills, and cuts the
// established connections of sources not opened, whose next segment
// conntrack takes for a new connection. So the rule is added only where
// someone (Docker, a NAT or a stateful firewall) tracks already. A
// namespace whose conntrack hooks are registered but that has tracked
// nothing yet reads as not in use.
func ConntrackInUse() (bool, error) {
	return conntrackInUse(conntrackCount)
}

// conntrackInUse is ConntrackInUse reading path.
func conntrackInUse(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("conntrack in use: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return false, fmt.Errorf("conntrack in use: %s: %w", path, err)
	}
	return n > 0, nil
}
