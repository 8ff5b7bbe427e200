package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// checkPrivate refuses a secret file that is not a regular file, or whose
// owner or access control list lets another account than the user, SYSTEM
// or Administrators at it (checkACL). Go reports mode 0666 for every file on
// Windows, so the mode says nothing there.
func checkPrivate(f *os.File, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	a, err := readACL(windows.Handle(f.Fd()))
	if err != nil {
		return err
	}
	return checkACL(a, f.Name())
}

// readACL reads the owner and DACL of the open file h, and the user of the
// process.
func readACL(h windows.Handle) (fileACL, error) {
	var a fileACL
	sd, err := windows.GetSecurityInfo(h, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return a, fmt.Errorf("read its access control list: %w", err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return a, fmt.Errorf("read its owner: %w", err)
	}
	if owner == nil {
		return a, errors.New("has no owner")
	}
	a.owner = named(owner)
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return a, fmt.Errorf("read the user of this process: %w", err)
	}
	a.user = named(tu.User.Sid)
	dacl, _, err := sd.DACL()
	switch {
	case errors.Is(err, windows.ERROR_OBJECT_NOT_FOUND):
		a.nullDACL = true // no DACL at all: no protection
		return a, nil
	case err != nil:
		return a, fmt.Errorf("read its access control list: %w", err)
	case dacl == nil:
		a.nullDACL = true // a NULL DACL: everyone has full access
		return a, nil
	}
	for i := range uint32(dacl.AceCount) {
		var e *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &e); err != nil {
			return a, fmt.Errorf("read entry %d of its access control list: %w", i, err)
		}
		entry := ace{mask: uint32(e.Mask), inheritOnly: e.Header.AceFlags&windows.INHERIT_ONLY_ACE != 0}
		switch e.Header.AceType {
		case windows.ACCESS_ALLOWED_ACE_TYPE:
			entry.kind = aceAllow
			entry.who = named((*windows.SID)(unsafe.Pointer(&e.SidStart)))
		case windows.ACCESS_DENIED_ACE_TYPE,
			0x6, // ACCESS_DENIED_OBJECT_ACE_TYPE
			0xa, // ACCESS_DENIED_CALLBACK_ACE_TYPE
			0xc: // ACCESS_DENIED_CALLBACK_OBJECT_ACE_TYPE
			entry.kind = aceDeny
		default:
			entry.kind = aceOther
			entry.who = trustee{sid: fmt.Sprintf("ACE type %d", e.Header.AceType)}
		}
		a.aces = append(a.aces, entry)
	}
	return a, nil
}

// named returns the trustee of sid, with its name when the system knows it.
func named(sid *windows.SID) trustee {
	t := trustee{sid: sid.String()}
	if account, domain, _, err := sid.LookupAccount(""); err == nil {
		t.name = account
		if domain != "" {
			t.name = domain + `\` + account
		}
	}
	return t
}
