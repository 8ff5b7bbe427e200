package nft

import "strings"

// Repair is what Watch reports after it put a table back: which (the main
// table, or on a GenOwner kernel the backup), what another program changed
// in it (for example "table deleted", "elements of set guard deleted",
// "rule added to chain guarded"), and the error of the repair, nil when the
// table is back.
type Repair struct {
	Table   string
	Changed string
	Err     error
}

// changes collects the descriptions of the changes of one transaction,
// each once: a flush of a large set sends one notification per element.
type changes struct {
	list []string
	seen map[string]bool
}

// add notes one change, unless it was noted already.
func (cs *changes) add(what string) {
	if cs.seen == nil {
		cs.seen = map[string]bool{}
	}
	if !cs.seen[what] {
		cs.seen[what] = true
		cs.list = append(cs.list, what)
	}
}

// any reports whether a change was noted.
func (cs *changes) any() bool { return len(cs.list) > 0 }

// String lists the changes; a deleted table says it all.
func (cs *changes) String() string {
	if cs.seen[tableDeleted] {
		return tableDeleted
	}
	return strings.Join(cs.list, ", ")
}
