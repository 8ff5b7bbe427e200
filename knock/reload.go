package knock

import (
	"errors"
	"fmt"
	"time"
)

// SetUsers replaces the users (a reload): their sequences are computed
// anew at the next knock, and every source's window starts afresh, so that
// knocks made under the old secrets never complete a new sequence. The
// sources stay tracked. In one-time mode a secret that stays (in the same
// user or another) keeps the sequences already used in the periods held.
// It allocates the tables when the number of users changes. On error
// nothing changes.
func (t *Tracker) SetUsers(users []User) error {
	if err := checkUsers(users); err != nil {
		return fmt.Errorf("knock tracker: %w", err)
	}
	t.cat.setUsers(users)
	t.allocFirsts()
	t.fromNs, t.untilNs = 0, 0 // the next knock computes the sequences
	for i := range t.ents {
		t.ents[i].meta &^= metaCount | metaOpened
	}
	return nil
}

// SetSecrets replaces the users by one with these secrets and the empty
// name: SetUsers([]User{{OpenSecret: open, CloseSecret: close}}).
func (t *Tracker) SetSecrets(open, close string) error {
	return t.SetUsers([]User{{OpenSecret: open, CloseSecret: close}})
}

// checkUsers checks what a Tracker needs of its users: 1..MaxUsers users,
// each with two non-empty secrets and a valid or empty name. ParseAccess
// checks more.
func checkUsers(users []User) error {
	if len(users) == 0 || len(users) > MaxUsers {
		return fmt.Errorf("%d users: want 1..%d", len(users), MaxUsers)
	}
	for i, u := range users {
		if u.OpenSecret == "" || u.CloseSecret == "" {
			return fmt.Errorf("user %d: secrets must not be empty", i)
		}
		if u.Name != "" && !ValidUserName(u.Name) {
			return fmt.Errorf("user %d: %w", i, errUserName)
		}
	}
	return nil
}

var errUserName = errors.New("invalid name (want 1-32 characters of A-Z a-z 0-9 _ . -)")

// Prepare computes now the sequences of the period holding now and of its
// neighbours, which the first knock of the period would compute otherwise
// (see the costs in Tracker's doc): the daemon calls it at start and after
// SetUsers, so that a knock does not wait for them and a lack of memory
// shows at once. A tracker already prepared for now does nothing.
func (t *Tracker) Prepare(now time.Time) {
	if ns := now.UnixNano(); ns < t.fromNs || ns >= t.untilNs {
		t.rotate(now)
	}
}
