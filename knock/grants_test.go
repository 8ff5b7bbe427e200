package knock

import (
	"slices"
	"testing"
)

func TestGrantsAndRevoked(t *testing.T) {
	guard := []uint16{22, 443}
	users := []User{{Name: "alice", Ports: []uint16{22}}, {Name: "carol"}}
	if g := users[0].Grants(guard); !slices.Equal(g, []uint16{22}) {
		t.Errorf("alice grants %v, want [22]", g)
	}
	if g := users[1].Grants(guard); !slices.Equal(g, guard) {
		t.Errorf("carol grants %v, want every guarded port", g)
	}
	tests := []struct {
		user string
		port uint16
		want string
	}{
		{"alice", 22, ""},
		{"alice", 443, "port no longer among the user's ports"},
		{"carol", 443, ""},
		{"bob", 22, "user removed from the access file"},
		{"", 22, ""}, // the secrets file's pair: never revoked by a reload of users
	}
	for _, tt := range tests {
		if got := Revoked(users, tt.user, tt.port, guard); got != tt.want {
			t.Errorf("Revoked(%q, %d) = %q, want %q", tt.user, tt.port, got, tt.want)
		}
	}
}
