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
// bad command line, or what the daemon returns.
func realMain(args []string, stdout, stderr io.Writer) int {
	if code, ok := cli.Complete(args, completion, stdout, stderr); ok {
		return code
	}
	cfg, err := parseFlags(args)
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
	case cfg.Show:
		at := cfg.At
		if at.IsZero() {
			at = time.Now()
		}
		fmt.Fprint(stdout, cfg.showText(at))
		return 0
	}
	return runDaemon(cfg)
}
