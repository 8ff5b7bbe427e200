// Command nfqknockd guards TCP ports until a client knocks a secret,
// time-based sequence of ports. It is the Go successor of the C nfqknockd
// (github.com/KuzinAndrey/nfqknock): the same flags and the same sequences,
// with nftables managed over netlink, IPv4 and IPv6, and the guard enforced
// in the kernel.
//
// Run nfqknockd --help for the flags.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/cmd/internal/version"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs nfqknockd with args and returns the exit status: 0, 2 for a
// bad command line, or what the daemon returns. A first argument "check"
// checks the rest of the command line as a start would (runCheck);
// "status" and "revoke" ask the running daemon (runCtl).
func realMain(args []string, stdout, stderr io.Writer) int {
	if code, ok := cli.Complete(args, completion, stdout, stderr); ok {
		return code
	}
	if len(args) > 0 && (args[0] == "status" || args[0] == "revoke") {
		return runCtl(args, stdout, stderr)
	}
	check := len(args) > 0 && args[0] == "check"
	if check {
		args = args[1:]
	}
	cfg, err := parseFlags(args)
	if err == nil && check && (cfg.Show || cfg.Version) {
		err = &cli.UsageError{Msg: "check: -s and --version are not for check: give the daemon's flags"}
	}
	if err != nil {
		var ue *cli.UsageError
		if !errors.As(err, &ue) {
			ue = &cli.UsageError{Msg: "command line: " + err.Error()}
		}
		fmt.Fprintf(stderr, "%snfqknockd: %v\n", errorPrefix(stderr), ue)
		return 2
	}
	switch {
	case cfg.Help:
		fmt.Fprint(stdout, usageText())
		return 0
	case cfg.Version:
		fmt.Fprintf(stdout, "nfqknockd %s\n", version.String())
		return 0
	case check:
		return runCheck(cfg, stdout, stderr)
	case cfg.Show:
		at := cfg.At
		if at.IsZero() {
			at = time.Now()
		}
		if cfg.OneTime {
			fmt.Fprintln(stderr, "nfqknockd: note: --one-time: these are the C-compatible sequences, which open nothing in this mode; they check that a client's secrets, digest, range and period match (nfqknock show --one-time=false prints the same)")
		}
		if cfg.OpenFrom == fromDefault && cfg.CloseFrom == fromDefault {
			fmt.Fprintln(stderr, "nfqknockd: warning: no secrets given: these are the sequences of the C daemon's public default secrets, which anyone can compute; give --secret-file")
		}
		fmt.Fprint(stdout, cfg.showText(at))
		return 0
	}
	return runDaemon(cfg)
}
