package pkgtest

import (
	"bufio"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// unitFile is a parsed systemd unit: section -> key -> values, in order
// (a key may be given several times, as SystemCallFilter=).
type unitFile map[string]map[string][]string

// parseUnit parses the text of a systemd unit file: [Section] headers,
// Key=Value lines, comments (# and ;), and lines continued with a
// trailing backslash.
func parseUnit(text string) (unitFile, error) {
	u := unitFile{}
	section := ""
	var cont strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cont.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		if cont.Len() > 0 {
			line = cont.String() + line
			cont.Reset()
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: want Key=Value inside a [Section]: %q", n, line)
		}
		key = strings.TrimSpace(key)
		u[section][key] = append(u[section][key], strings.TrimSpace(val))
	}
	return u, sc.Err()
}

// last returns the last value of key in section ("" when absent), the one
// systemd uses for a single-valued setting.
func (u unitFile) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// parseEnvFile parses an EnvironmentFile= as systemd does for the forms a
// package ships: KEY=VALUE lines, # and ; comments, values in double or
// single quotes (backslash escapes inside double quotes).
func parseEnvFile(text string) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || !envName.MatchString(key) {
			return nil, fmt.Errorf("line %d: want KEY=VALUE: %q", n, line)
		}
		switch {
		case len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"':
			var b strings.Builder
			in := val[1 : len(val)-1]
			for i := 0; i < len(in); i++ {
				if in[i] == '\\' && i+1 < len(in) {
					i++
				} else if in[i] == '"' {
					return nil, fmt.Errorf("line %d: unescaped quote inside a quoted value", n)
				}
				b.WriteByte(in[i])
			}
			val = b.String()
		case len(val) >= 2 && val[0] == '\'' && val[len(val)-1] == '\'':
			val = val[1 : len(val)-1]
		case strings.ContainsAny(val, `"'`):
			return nil, fmt.Errorf("line %d: unbalanced quotes", n)
		}
		env[key] = val
	}
	return env, sc.Err()
}

var (
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	wordVar  = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)$`)
	braceVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// expandExecStart turns an ExecStart= line into argv as systemd does: the
// line is split into words (double and single quotes group), a word that
// is exactly $VAR becomes the words of VAR's value split at white space
// (none when empty), and ${VAR} is replaced inside a word. The prefixes
// "-", "@", ":", "+" and "!" are refused: the unit should use none.
func expandExecStart(line string, env map[string]string) ([]string, error) {
	if line != "" && strings.ContainsRune("-@:+!", rune(line[0])) {
		return nil, fmt.Errorf("ExecStart prefix %q not expected", line[0])
	}
	words, err := splitWords(line)
	if err != nil {
		return nil, err
	}
	var argv []string
	for _, w := range words {
		if m := wordVar.FindStringSubmatch(w); m != nil {
			argv = append(argv, strings.Fields(env[m[1]])...)
			continue
		}
		argv = append(argv, braceVar.ReplaceAllStringFunc(w, func(s string) string {
			return env[braceVar.FindStringSubmatch(s)[1]]
		}))
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty ExecStart")
	}
	return argv, nil
}

// splitWords splits s at white space, keeping quoted runs together.
func splitWords(s string) ([]string, error) {
	var words []string
	var b strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b.WriteByte(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, b.String())
	}
	return words, nil
}

// syscallGroups caches `systemd-analyze syscall-filter @group` answers.
var syscallGroups sync.Map // string -> []string

// expandSyscalls expands names and @groups (recursively) into system call
// names, through systemd-analyze, so the answer is the installed systemd's.
func expandSyscalls(items []string) (map[string]bool, error) {
	out := map[string]bool{}
	var walk func(string, int) error
	walk = func(item string, depth int) error {
		if !strings.HasPrefix(item, "@") {
			out[item] = true
			return nil
		}
		if depth > 10 {
			return fmt.Errorf("syscall group %s nests too deep", item)
		}
		members, err := syscallGroup(item)
		if err != nil {
			return err
		}
		for _, m := range members {
			if err := walk(m, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		if err := walk(it, 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// syscallGroup lists the members of one group as systemd-analyze prints
// them: the group's name, then one member a line, comments after #.
func syscallGroup(group string) ([]string, error) {
	if v, ok := syscallGroups.Load(group); ok {
		return v.([]string), nil
	}
	b, err := exec.Command("systemd-analyze", "syscall-filter", "--no-pager", group).Output()
	if err != nil {
		return nil, fmt.Errorf("systemd-analyze syscall-filter %s: %w", group, err)
	}
	var members []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l == group || strings.HasPrefix(l, "#") {
			continue
		}
		members = append(members, l)
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("systemd-analyze syscall-filter %s: no members", group)
	}
	syscallGroups.Store(group, members)
	return members, nil
}

// allowedSyscalls applies the unit's SystemCallFilter= lines in order, as
// systemd does: the first line without ~ makes an allow list; later lines
// add to it, lines with ~ take away.
func allowedSyscalls(lines []string) (map[string]bool, error) {
	if len(lines) == 0 || strings.HasPrefix(lines[0], "~") {
		return nil, fmt.Errorf("the unit has no SystemCallFilter= allow list: %q", lines)
	}
	allowed := map[string]bool{}
	for _, l := range lines {
		deny := strings.HasPrefix(l, "~")
		set, err := expandSyscalls(strings.Fields(strings.TrimPrefix(l, "~")))
		if err != nil {
			return nil, err
		}
		for s := range set {
			if deny {
				delete(allowed, s)
			} else {
				allowed[s] = true
			}
		}
	}
	return allowed, nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
