package cli

import (
	"fmt"
	"strings"
)

// The decision whether a secret file on Windows is private, over its owner
// and access control list. It is pure, so that it is tested on every system;
// private_windows.go reads the list from the file.

// Well-known SIDs that may have access to a secret file besides the user:
// the system and the administrators can read every file anyway.
const (
	sidSystem         = "S-1-5-18"     // NT AUTHORITY\SYSTEM
	sidAdministrators = "S-1-5-32-544" // BUILTIN\Administrators
	sidCreatorOwner   = "S-1-3-0"      // CREATOR OWNER: the owner
	sidOwnerRights    = "S-1-3-4"      // OWNER RIGHTS: the owner
)

// Access mask bits that give no access to the file's content: waiting on
// the handle, reading the security descriptor and reading the attributes.
const harmlessMask = 0x00100000 | 0x00020000 | 0x0080 // SYNCHRONIZE | READ_CONTROL | FILE_READ_ATTRIBUTES

// aceKind is the type of an access control entry, as far as the decision
// needs it.
type aceKind int

const (
	aceAllow aceKind = iota // ACCESS_ALLOWED_ACE_TYPE
	aceDeny                 // any access-denied type: only ever takes access away
	aceOther                // any other type: object, callback, compound ACEs
)

// trustee is an account or group: its SID ("S-1-5-21-...") and, when known,
// its name ("PC\alice", "Everyone") for the messages.
type trustee struct{ sid, name string }

// String returns "NAME (SID)", or the SID alone when the name is unknown.
func (t trustee) String() string {
	if t.name == "" {
		return t.sid
	}
	return t.name + " (" + t.sid + ")"
}

// icacls returns the trustee as icacls takes it: "*SID" (never ambiguous).
func (t trustee) icacls() string { return "*" + t.sid }

// ace is one access control entry of a file's DACL.
type ace struct {
	kind        aceKind
	who         trustee
	mask        uint32
	inheritOnly bool // INHERIT_ONLY_ACE: applies to children, not the file
}

// fileACL is what decides whether a file is private: its owner, its DACL
// (nullDACL: none, which grants everyone everything), and the user who runs
// nfqknock.
type fileACL struct {
	owner    trustee
	user     trustee
	nullDACL bool
	aces     []ace
}

// trusted reports whether t may have access to the user's secret file: the
// user, SYSTEM, Administrators, or the owner's placeholders.
func (a fileACL) trusted(t trustee) bool {
	switch t.sid {
	case a.user.sid, sidSystem, sidAdministrators, sidCreatorOwner, sidOwnerRights:
		return true
	}
	return false
}

// checkACL refuses, as OpenSSH for Windows does with a private key, a
// secret file that another account than the user, SYSTEM or Administrators
// owns or may access: every ACE that allows more than harmlessMask must be
// for one of them. Deny ACEs only take access away, and ACEs that apply
// only to children do not apply to the file. The message says how to fix
// it, with an icacls command for path.
func checkACL(a fileACL, path string) error {
	fix := fmt.Sprintf("icacls %s /inheritance:r /grant:r %s",
		quoteWindows(path), quoteWindows(a.user.icaclsName()+":F"))
	const allowed = "allow only yourself, SYSTEM and Administrators"
	if !a.trusted(a.owner) {
		return fmt.Errorf("owned by %s, not by you, SYSTEM or Administrators: take it over (takeown /f %s) or write a new one",
			a.owner, quoteWindows(path))
	}
	if a.nullDACL {
		return fmt.Errorf("has no access control list, so everyone has access; %s: %s", allowed, fix)
	}
	for _, e := range a.aces {
		if e.kind == aceDeny || e.inheritOnly || e.mask&^harmlessMask == 0 {
			continue
		}
		if e.kind == aceOther {
			return fmt.Errorf("has an access entry of a kind that nfqknock does not check (for %s); %s: %s", e.who, allowed, fix)
		}
		if !a.trusted(e.who) {
			return fmt.Errorf("%s has access to it; %s: %s /remove:g %s", e.who, allowed, fix, e.who.icacls())
		}
	}
	return nil
}

// icaclsName returns the user as icacls takes it: the name when known, else
// "*SID".
func (t trustee) icaclsName() string {
	if t.name == "" {
		return t.icacls()
	}
	return t.name
}

// quoteWindows puts s in double quotes when it holds a space or a character
// that cmd.exe or PowerShell would take apart, so that the command can be
// pasted into either.
func quoteWindows(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t&()[]{}^=;!'+,`~$@#%") {
		return s
	}
	return `"` + s + `"`
}
