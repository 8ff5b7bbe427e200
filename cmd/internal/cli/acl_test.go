package cli

import (
	"strings"
	"testing"
)

// TestCheckACL covers the decision of the Windows permission check over
// owners and access control lists: the user, SYSTEM and Administrators may
// have access; Everyone, Users, Authenticated Users or another account may
// not; deny entries, entries for children only and harmless rights do not
// count.
func TestCheckACL(t *testing.T) {
	const (
		everyone  = "S-1-1-0"
		users     = "S-1-5-32-545"
		authUsers = "S-1-5-11"
		fullMask  = 0x001f01ff // FILE_ALL_ACCESS
		readMask  = 0x00120089 // FILE_GENERIC_READ
		write     = 0x00000002 // FILE_WRITE_DATA
		generic   = 0x80000000 // GENERIC_READ
	)
	alice := trustee{"S-1-5-21-1-2-3-1001", `PC\alice`}
	bob := trustee{"S-1-5-21-1-2-3-1002", `PC\bob`}
	system := trustee{sidSystem, `NT AUTHORITY\SYSTEM`}
	admins := trustee{sidAdministrators, `BUILTIN\Administrators`}
	allow := func(who trustee, mask uint32) ace { return ace{kind: aceAllow, who: who, mask: mask} }
	// A file made in %AppData%: inherited from the profile.
	profile := []ace{allow(system, fullMask), allow(admins, fullMask), allow(alice, fullMask)}
	with := func(extra ...ace) []ace { return append(append([]ace{}, profile...), extra...) }
	const path = `C:\Users\alice\AppData\Roaming\nfqknock\secrets`
	const fix = `icacls C:\Users\alice\AppData\Roaming\nfqknock\secrets /inheritance:r /grant:r PC\alice:F`

	tests := []struct {
		name  string
		owner trustee
		null  bool
		aces  []ace
		want  string // "" accepted, else the whole message
	}{
		{name: "profile file", owner: alice, aces: profile},
		{name: "owner only", owner: alice, aces: []ace{allow(alice, fullMask)}},
		{name: "empty DACL: nobody has access", owner: alice},
		{name: "owned by Administrators (made elevated)", owner: admins, aces: profile},
		{name: "owned by SYSTEM", owner: system, aces: profile},
		{name: "OWNER RIGHTS and CREATOR OWNER", owner: alice, aces: with(allow(trustee{sid: sidOwnerRights}, fullMask), allow(trustee{sid: sidCreatorOwner}, fullMask))},
		{name: "Everyone denied", owner: alice, aces: with(ace{kind: aceDeny, who: trustee{sid: everyone}, mask: fullMask})},
		{name: "Users for children only", owner: alice, aces: with(ace{kind: aceAllow, who: trustee{sid: users}, mask: readMask, inheritOnly: true})},
		{name: "Everyone may only synchronize and read the ACL", owner: alice, aces: with(allow(trustee{everyone, "Everyone"}, 0x00120080))},
		{name: "Everyone with no rights", owner: alice, aces: with(allow(trustee{everyone, "Everyone"}, 0))},
		{name: "deny of an unknown kind", owner: alice, aces: with(ace{kind: aceDeny, mask: fullMask})},

		{name: "Everyone reads", owner: alice, aces: with(allow(trustee{everyone, "Everyone"}, readMask)),
			want: "Everyone (S-1-1-0) has access to it; allow only yourself, SYSTEM and Administrators: " + fix + " /remove:g *S-1-1-0"},
		{name: "Users read (inherited from C:\\)", owner: alice, aces: with(allow(trustee{users, `BUILTIN\Users`}, readMask)),
			want: `BUILTIN\Users (S-1-5-32-545) has access to it; allow only yourself, SYSTEM and Administrators: ` + fix + " /remove:g *S-1-5-32-545"},
		{name: "Authenticated Users write", owner: alice, aces: with(allow(trustee{authUsers, `NT AUTHORITY\Authenticated Users`}, write)),
			want: `NT AUTHORITY\Authenticated Users (S-1-5-11) has access to it; allow only yourself, SYSTEM and Administrators: ` + fix + " /remove:g *S-1-5-11"},
		{name: "another account, GENERIC_READ", owner: alice, aces: with(allow(bob, generic)),
			want: `PC\bob (S-1-5-21-1-2-3-1002) has access to it; allow only yourself, SYSTEM and Administrators: ` + fix + " /remove:g *S-1-5-21-1-2-3-1002"},
		{name: "unnamed SID", owner: alice, aces: with(allow(trustee{sid: "S-1-5-21-9"}, readMask)),
			want: "S-1-5-21-9 has access to it; allow only yourself, SYSTEM and Administrators: " + fix + " /remove:g *S-1-5-21-9"},
		{name: "first offender named", owner: alice, aces: with(allow(bob, readMask), allow(trustee{everyone, "Everyone"}, readMask)),
			want: `PC\bob (S-1-5-21-1-2-3-1002) has access to it; allow only yourself, SYSTEM and Administrators: ` + fix + " /remove:g *S-1-5-21-1-2-3-1002"},
		{name: "owned by another account", owner: bob, aces: []ace{allow(alice, fullMask)},
			want: `owned by PC\bob (S-1-5-21-1-2-3-1002), not by you, SYSTEM or Administrators: take it over (takeown /f C:\Users\alice\AppData\Roaming\nfqknock\secrets) or write a new one`},
		{name: "NULL DACL", owner: alice, null: true,
			want: "has no access control list, so everyone has access; allow only yourself, SYSTEM and Administrators: " + fix},
		{name: "an allow ACE of another kind", owner: alice, aces: with(ace{kind: aceOther, who: trustee{sid: "ACE type 5"}, mask: readMask}),
			want: "has an access entry of a kind that nfqknock does not check (for ACE type 5); allow only yourself, SYSTEM and Administrators: " + fix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkACL(fileACL{owner: tt.owner, user: alice, nullDACL: tt.null, aces: tt.aces}, path)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("checkACL =\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}

// TestCheckACLQuoting: the icacls command quotes a path or a user name with
// spaces, and names a user without a known name by SID.
func TestCheckACLQuoting(t *testing.T) {
	user := trustee{"S-1-5-21-7", `PC\John Smith`}
	a := fileACL{owner: user, user: user, aces: []ace{{kind: aceAllow, who: trustee{sid: "S-1-1-0"}, mask: 1}}}
	err := checkACL(a, `C:\My Files\secrets`)
	if want := `icacls "C:\My Files\secrets" /inheritance:r /grant:r "PC\John Smith:F" /remove:g *S-1-1-0`; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("checkACL = %v; want it to end with %q", err, want)
	}
	a.user.name, a.owner.name = "", ""
	err = checkACL(a, `C:\s`)
	if want := `icacls C:\s /inheritance:r /grant:r *S-1-5-21-7:F /remove:g *S-1-1-0`; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("checkACL = %v; want it to end with %q", err, want)
	}
}
