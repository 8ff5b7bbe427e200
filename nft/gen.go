package nft

import "fmt"

// Generation is how a kernel lets the daemon keep its table, from the
// table flags it has. Apply finds it once (a probe) and returns it in
// Result.Gen.
type Generation int

// The three generations of kernels.
const (
	// GenNone: no table flag owner (kernels before 5.12). Anybody may
	// delete the table (`nft flush ruleset`), so the daemon watches it and
	// puts it back at once (Watch): for the few milliseconds in between,
	// the guarded ports are open.
	GenNone Generation = iota
	// GenOwner: the flag owner but not persist (5.12 to 6.8). The table is
	// owned by the daemon's socket while it runs: `nft flush ruleset`
	// skips it and no other process can change it. It goes with the
	// socket, so a second, un-owned table, the backup (BackupTable), holds
	// the same guard and opened sources and stays when the daemon exits;
	// the daemon puts it back when others remove it (Watch), while the
	// owned table guards.
	GenOwner
	// GenPersist: the flags owner and persist (6.9 and later). One table,
	// owned while the daemon runs and kept, un-owned, when it exits.
	GenPersist
)

// String says what the generation means for an admin.
func (g Generation) String() string {
	switch g {
	case GenNone:
		return "kernel without the table flag owner (before 5.12): a watch puts the table back when it is removed, leaving the guarded ports open for a few milliseconds"
	case GenOwner:
		return "kernel with the table flag owner but not persist (5.12 to 6.8): the table is owned while the daemon runs; a backup table keeps the guard when it exits"
	case GenPersist:
		return "kernel with the table flags owner and persist (6.9 and later): the table is owned while the daemon runs and stays guarding when it exits"
	}
	return fmt.Sprintf("Generation(%d)", int(g))
}

// Flags names the table flags of the generation as nft prints them.
func (g Generation) Flags() string {
	switch g {
	case GenOwner:
		return "owner"
	case GenPersist:
		return "owner,persist"
	}
	return "none"
}

// tableFlags returns the flags of our main table in generation g.
func (g Generation) tableFlags() uint32 {
	switch g {
	case GenOwner:
		return TableFlagOwner
	case GenPersist:
		return TableFlagOwner | TableFlagPersist
	}
	return 0
}
