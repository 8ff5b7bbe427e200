//go:build windows

// Command setacl sets the DACL of a file from SDDL, as icacls would on
// Windows (Wine's icacls is a stub), and prints the owner and DACL the
// system then reports, in SDDL: setacl FILE SDDL, e.g.
// setacl secrets "D:P(A;;FA;;;SY)(A;;FR;;;BU)". With FILE alone it only
// prints them. test/wine/run.sh uses it to show what Wine makes of a Unix
// mode, and that it keeps no DACL set through the API.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

func main() {
	var err error
	switch len(os.Args) {
	case 2:
		err = show(os.Args[1])
	case 3:
		if err = set(os.Args[1], os.Args[2]); err == nil {
			err = show(os.Args[1])
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: setacl FILE [SDDL]")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "setacl:", err)
		os.Exit(1)
	}
}

func set(path, sddl string) error {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return fmt.Errorf("SDDL %q: %w", sddl, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("SDDL %q: %w", sddl, err)
	}
	if dacl == nil {
		return fmt.Errorf("SDDL %q: no DACL", sddl)
	}
	return windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
}

// show prints the owner and DACL of path in SDDL.
func show(path string) error {
	got, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("read the owner and DACL: %w", err)
	}
	fmt.Println(got.String())
	return nil
}
