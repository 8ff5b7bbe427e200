package testutil

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nfqknockd/nfqknockd/knock"
)

// AccessText renders users as an access file of nfqknockd (--access).
func AccessText(users []knock.User) string {
	var b strings.Builder
	b.WriteString("# nfqknockd access file (test)\n")
	for _, u := range users {
		fmt.Fprintf(&b, "[%s]\nopen = %s\nclose = %s\n", u.Name, u.OpenSecret, u.CloseSecret)
		if len(u.Ports) > 0 {
			fmt.Fprintf(&b, "ports = %s   # only these\n", commaList(u.Ports))
		}
		if u.SPAAddress {
			b.WriteString("spa-address = yes\n")
		}
	}
	return b.String()
}

// commaList renders ports as an access file's ports = line: 22,2222.
func commaList(ports []uint16) string {
	var s []string
	for _, p := range ports {
		s = append(s, strconv.Itoa(int(p)))
	}
	return strings.Join(s, ",")
}
