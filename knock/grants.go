package knock

import "slices"

// Grants returns the ports an open of u opens: its Ports, or every port
// of guard when it names none.
func (u User) Grants(guard []uint16) []uint16 {
	if len(u.Ports) > 0 {
		return u.Ports
	}
	return guard
}

// Revoked says why users no longer let user (a name from an opening, ""
// for none) have port open, or "" when they do: a reload of the access
// file removed the user, or took the port from the user's Ports. An
// opening without a user (the secrets file's one pair) is never revoked
// this way.
func Revoked(users []User, user string, port uint16, guard []uint16) string {
	if user == "" {
		return ""
	}
	i := slices.IndexFunc(users, func(u User) bool { return u.Name == user })
	switch {
	case i < 0:
		return "user removed from the access file"
	case !slices.Contains(users[i].Grants(guard), port):
		return "port no longer among the user's ports"
	}
	return ""
}
