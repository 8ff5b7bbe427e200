package pkgtest

import (
	"fmt"
	"regexp"
	"strings"
)

// straceReport is what the daemon did, read from `strace -f -o FILE`.
type straceReport struct {
	syscalls map[string]bool // system calls made after the daemon's execve
	families map[string]bool // socket() address families
	writes   []string        // files opened for writing or created
}

var (
	straceLine    = regexp.MustCompile(`^\d+\s+(.*)$`)
	straceCall    = regexp.MustCompile(`^([a-z_0-9]+)\(`)
	straceResumed = regexp.MustCompile(`^<\.\.\. ([a-z_0-9]+) resumed>`)
	straceSocket  = regexp.MustCompile(`^socket\((AF_[A-Z0-9]+|\d+),`)
	straceOpen    = regexp.MustCompile(`^(?:openat|open|creat)\((?:[A-Z_]+|-?\d+, )?,? ?"([^"]*)", ([A-Z_|]+)`)
)

// parseStrace reads an `strace -f` log and reports what happened after the
// execve of exe (the lines before belong to the programs that started it).
func parseStrace(log, exe string) (*straceReport, error) {
	r := &straceReport{syscalls: map[string]bool{}, families: map[string]bool{}}
	started := false
	for _, line := range strings.Split(log, "\n") {
		m := straceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		body := m[1]
		if !started {
			started = strings.HasPrefix(body, `execve("`+exe+`"`) && strings.HasSuffix(body, "= 0")
			continue
		}
		if strings.HasPrefix(body, "---") || strings.HasPrefix(body, "+++") {
			continue
		}
		if rm := straceResumed.FindStringSubmatch(body); rm != nil {
			r.syscalls[rm[1]] = true
			continue
		}
		cm := straceCall.FindStringSubmatch(body)
		if cm == nil {
			continue
		}
		r.syscalls[cm[1]] = true
		if sm := straceSocket.FindStringSubmatch(body); sm != nil {
			r.families[sm[1]] = true
		}
		if om := straceOpen.FindStringSubmatch(body); om != nil {
			if strings.Contains(om[2], "O_WRONLY") || strings.Contains(om[2], "O_RDWR") || strings.Contains(om[2], "O_CREAT") {
				r.writes = append(r.writes, om[1])
			}
		}
	}
	if !started {
		return nil, fmt.Errorf("no successful execve of %s in the strace log", exe)
	}
	return r, nil
}
