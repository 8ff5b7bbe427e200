// Package cli holds what the commands nfqknockd and nfqknock share on their
// command lines: the one-line usage error, the shell quoting of the values
// it shows, the rewording of pflag's errors, the pflag values of the flags
// both commands have, the check of the knock range, and the reading of a
// secret file.
//
// Both commands promise byte-exact messages. Where they differ (the
// characters a value may hold unquoted, the examples of a duration, how a
// duration prints), the difference is a parameter.
package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"
)

// UsageError is bad input from the user: a flag, an argument, a secret or a
// host name. A command prints it as one line "COMMAND: MESSAGE" on stderr
// and exits with status 2.
type UsageError struct {
	// Msg is the line without the command's name, for example
	// "--start 0: port must be 1..65535".
	Msg string
}

// Error returns Msg.
func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, a ...any) *UsageError {
	return &UsageError{Msg: fmt.Sprintf(format, a...)}
}

// ShellSafe is the punctuation that nfqknockd's messages show unquoted,
// besides ASCII letters and digits.
const ShellSafe = "-_.,:/+=@%"

// Style is how a command words its usage errors: Safe is the punctuation
// that Quote leaves unquoted besides ASCII letters and digits (ShellSafe,
// or more).
type Style struct {
	Safe string
}

// Quote quotes s for a shell when it needs it, so that the value in an error
// message can be copied back. The empty string becomes a pair of single
// quotes; a string with control characters or invalid UTF-8 becomes bash's
// $'...' with escapes, so that the message stays on one line; a string with
// other characters than the safe ones is put in single quotes.
func (st Style) Quote(s string) string {
	if s == "" {
		return "''"
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, notPrint) >= 0 {
		// bash's $'...': escapes keep the message on one line, also for
		// line and paragraph separators (U+2028, U+2029).
		q := strconv.Quote(s)
		q = strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`)
		return "$'" + strings.ReplaceAll(q, "'", `\'`) + "'"
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(st.Safe, c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// Bad returns the error "WHAT VALUE: REASON", with the value quoted: what
// is a flag ("--secret-file"), an argument ("HOST") or a variable.
func (st Style) Bad(what, value, reason string) *UsageError {
	return &UsageError{Msg: what + " " + st.Quote(value) + ": " + reason}
}

// BadFlag returns the error "--NAME VALUE: REASON".
func (st Style) BadFlag(name, value, reason string) *UsageError {
	return st.Bad("--"+name, value, reason)
}

// Translate turns an error of pflag into a *UsageError of one line: the
// reason of a value's Set, or "needs a value", "unknown flag (see --help)",
// "bad flag syntax".
func (st Style) Translate(err error) *UsageError {
	var inv *pflag.InvalidValueError
	var missing *pflag.ValueRequiredError
	var unknown *pflag.NotExistError
	var syntax *pflag.InvalidSyntaxError
	switch {
	case errors.As(err, &inv):
		return st.BadFlag(inv.GetFlag().Name, inv.GetValue(), errors.Unwrap(inv).Error())
	case errors.As(err, &missing):
		return &UsageError{Msg: "--" + missing.GetFlag().Name + ": needs a value"}
	case errors.As(err, &unknown):
		name := "--" + unknown.GetSpecifiedName()
		if unknown.GetSpecifiedShortnames() != "" {
			name = "-" + unknown.GetSpecifiedName()
		}
		return &UsageError{Msg: st.Quote(name) + ": unknown flag (see --help)"}
	case errors.As(err, &syntax):
		return &UsageError{Msg: st.Quote(syntax.GetSpecifiedFlag()) + ": bad flag syntax"}
	}
	return &UsageError{Msg: "command line: " + err.Error()}
}

// CheckRange checks the knock range that the flags "start", "end" and
// "range" of fs gave through start, end and rng (which share one
// knock.Range): --range excludes -a and -b, and start must be below end.
// The error, a *UsageError, names the flag to change.
func (st Style) CheckRange(fs *pflag.FlagSet, start, end *PortValue, rng *RangeValue) error {
	r := *rng.R
	switch {
	case fs.Changed("range") && (fs.Changed("start") || fs.Changed("end")):
		return st.BadFlag("range", rng.Raw, "conflicts with --start (-a) and --end (-b): give either")
	case fs.Changed("range"):
		// ParseRange checked it.
	case r.Start == r.End:
		name, raw := "end", end.Raw
		if !fs.Changed("end") {
			name, raw = "start", start.Raw
		}
		return st.BadFlag(name, raw, "start and end must differ: the sequence formula divides by end-start")
	case r.Start > r.End && fs.Changed("end"):
		return st.BadFlag("end", end.Raw, fmt.Sprintf("end %d is below start %d", r.End, r.Start))
	case r.Start > r.End:
		return st.BadFlag("start", start.Raw, fmt.Sprintf("start %d is above end %d", r.Start, r.End))
	}
	return nil
}

// notPrint reports whether strconv.Quote escapes r.
func notPrint(r rune) bool { return !strconv.IsPrint(r) }
