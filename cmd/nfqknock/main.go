// Command nfqknock is the client of nfqknockd: it prints the current knock
// sequences, knocks them at a host, and works as an ssh ProxyCommand that
// knocks open, carries the ssh connection, and knocks close when it ends.
//
//	nfqknock show [HOST]
//	nfqknock open HOST
//	nfqknock close HOST
//	nfqknock proxy HOST PORT
//	nfqknock doctor HOST PORT
//
// It needs no privileges: a knock is an ordinary TCP connect attempt,
// abandoned before the kernel would retransmit its SYN. With --spa, open,
// close and proxy send one single-packet authorization over UDP instead.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/cmd/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // network failure
	exitUsage   = 2 // bad input
)

// errHangup ends a proxy session because ssh (or a user) sent SIGHUP: ssh
// does so to its ProxyCommand when it exits. It is a normal end.
var errHangup = errors.New("hangup")

// run is the whole program: it parses args, does the work and returns the
// exit status. Nothing but the usage text, the sequences of `show` and the
// proxied bytes goes to stdout; stderr gets at most one error line.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if code, ok := cli.Complete(args, completion, stdout, stderr); ok {
		return code
	}
	o, err := parseArgs(args, os.Getenv)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage())
		return exitOK
	}
	if errors.Is(err, errVersion) {
		fmt.Fprintf(stdout, "nfqknock %s\n", version.String())
		return exitOK
	}
	if err == nil {
		err = o.exec(stdin, stdout, stderr)
	}
	return report(err, stderr)
}

// report prints err as one line on stderr and returns the exit status for it.
func report(err error, stderr io.Writer) int {
	if err == nil || err == errHangup { // a bare errHangup ended a proxy session
		return exitOK
	}
	fmt.Fprintf(stderr, "nfqknock: %v\n", err)
	if errors.As(err, new(*cli.UsageError)) {
		return exitUsage
	}
	return exitFailure
}

// exec runs the subcommand of o; stderr gets the steps of -v.
func (o *options) exec(stdin io.Reader, stdout, stderr io.Writer) error {
	if o.cmd == "show" {
		text, err := o.show()
		if err == nil {
			_, err = io.WriteString(stdout, text)
		}
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if o.cmd == "doctor" {
		return o.doctor(ctx, stdout, stderr)
	}
	addr, err := resolve(ctx, o.host, o.family)
	if err != nil {
		return err
	}
	k := o.knocker(addr, stderr)
	k.tracef("host %s: address %s, %s", o.host, addr, familyName(addr))
	if o.spa.port != 0 {
		return o.execSPA(ctx, o.spaSender(addr, stderr), stdin, stdout)
	}
	switch o.cmd {
	case "open":
		seq, err := o.openSequence(o.now())
		if err != nil {
			return err
		}
		_, err = k.knock(ctx, "open", seq)
		return err
	case "close":
		seq, err := o.closeSequence(o.now())
		if err != nil {
			return err
		}
		_, err = k.knock(ctx, "close", seq)
		return err
	default: // "proxy"
		return o.proxy(ctx, k, stdin, stdout)
	}
}

// familyName returns "IPv4" or "IPv6", the family of a.
func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// signalContext returns a context cancelled by SIGHUP, SIGINT or SIGTERM,
// with the signal as its cause (errHangup for SIGHUP). It also asks for
// SIGPIPE, so that a write to a closed stdout fails with EPIPE instead of
// killing the process before it knocks close.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				switch s {
				case syscall.SIGPIPE:
					// The failed write reports it.
				case syscall.SIGHUP:
					cancel(errHangup)
				case syscall.SIGINT:
					cancel(errors.New("interrupted"))
				default:
					cancel(errors.New("terminated"))
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}
