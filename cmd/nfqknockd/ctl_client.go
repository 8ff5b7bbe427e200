package main

// nfqknockd status and nfqknockd revoke: the client side of the control
// socket (ctl.go).

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/cmd/internal/tablelock"
	"github.com/nfqknockd/nfqknockd/nft"
)

// ctlArgs are the flags of status and revoke.
type ctlArgs struct {
	table, lockDir, user string
	json                 bool
	rest                 []string
}

// parseCtl parses the flags of status or revoke (args after the word).
func parseCtl(op string, args []string) (*ctlArgs, error) {
	a := &ctlArgs{}
	fs := pflag.NewFlagSet("nfqknockd "+op, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.table, "table", "nfqknock", "the daemon's --table")
	fs.StringVar(&a.lockDir, "lock-dir", defaultLockDir, "the daemon's --lock-dir, where its control socket is")
	fs.BoolVar(&a.json, "json", false, "print the reply as JSON")
	if op == "revoke" {
		fs.StringVar(&a.user, "user", "", "revoke what user NAME opened")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, err
		}
		return nil, &cli.UsageError{Msg: op + ": " + err.Error()}
	}
	a.rest = fs.Args()
	switch {
	case op == "status" && len(a.rest) > 0:
		return nil, &cli.UsageError{Msg: "status: takes no argument"}
	case op == "revoke" && len(a.rest)+min(len(a.user), 1) != 1:
		return nil, &cli.UsageError{Msg: "revoke: give one source address, or --user NAME"}
	}
	return a, nil
}

// runCtl runs nfqknockd status or revoke (args[0]): 0, 1 when the daemon
// cannot be reached or refuses, 2 for a bad command line.
func runCtl(args []string, stdout, stderr io.Writer) int {
	op := args[0]
	a, err := parseCtl(op, args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprint(stdout, usageText())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "nfqknockd: %v\n", err)
		return 2
	}
	req := ctlRequest{Op: op, User: a.user}
	if op == "revoke" && a.user == "" {
		req.Source = a.rest[0]
	}
	path, err := ctlPath(a.lockDir, a.table)
	if err == nil {
		var reply ctlReply
		reply, err = ctlCall(path, req)
		if err == nil {
			printReply(stdout, a.json, reply) // a revoke that failed in part lists what it closed
			if reply.Error == "" {
				return 0
			}
			err = errors.New(reply.Error)
		}
	}
	fmt.Fprintf(stderr, "nfqknockd: %s: %v\n", op, err)
	if op == "status" && isNoDaemon(err) {
		if tablelock.Held(strings.TrimSuffix(path, ".sock") + ".lock") {
			fmt.Fprintf(stdout, "a daemon holds the lock of table inet %s but has no control socket: see its log\n", a.table)
			return 1
		}
		printLeftTable(stdout, stderr, a.table)
	}
	return 1
}

// ctlCall sends req to the daemon at path and returns its reply.
func ctlCall(path string, req ctlRequest) (ctlReply, error) {
	var reply ctlReply
	c, err := net.DialTimeout("unix", path, ctlTimeout)
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
			return reply, fmt.Errorf("no daemon answers at %s: %w", path, errNoDaemon)
		}
		return reply, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ctlTimeout))
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return reply, err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return reply, fmt.Errorf("no reply: %w", err)
	}
	return reply, json.Unmarshal(line, &reply)
}

// errNoDaemon is wrapped by ctlCall's error when no daemon listens.
var errNoDaemon = errors.New("is nfqknockd running?")

func isNoDaemon(err error) bool { return errors.Is(err, errNoDaemon) }

// printReply prints a reply for a reader, or as JSON.
func printReply(w io.Writer, asJSON bool, r ctlReply) {
	if asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	if st := r.Status; st != nil {
		fmt.Fprintf(w, "table %s: flags %s, %s, queue %s\n", st.Table, st.TableFlags, st.QueueVariant, st.Queue)
		fmt.Fprintf(w, "guard %s; allow %s; range %s, %s, period %s, one-time %v\n", st.Guard, st.Allow, st.Range, st.Digest, st.Period, st.OneTime)
		fmt.Fprintf(w, "secrets: %s\n", st.Secrets)
		fmt.Fprintf(w, "opens %d, closes %d, replays %d, revokes %d, repairs %d; knocking now: %d sources\n",
			st.Opens, st.Closes, st.Replays, st.Revokes, st.Repairs, st.Knocking)
		if st.SPAPackets != nil {
			fmt.Fprintf(w, "spa: %s; packets: %s\n", st.SPA, spaPacketsLine(st.SPAPackets))
		}
		fmt.Fprintf(w, "opened: %d\n", len(st.Opened))
		printOpenings(w, st.Opened)
	}
	if len(r.Revoked) > 0 {
		fmt.Fprintf(w, "revoked: %d\n", len(r.Revoked))
		printOpenings(w, r.Revoked)
	}
}

// printOpenings prints one line per opened source and port.
func printOpenings(w io.Writer, ops []ctlOpening) {
	for _, o := range ops {
		var b strings.Builder
		fmt.Fprintf(&b, "  %s port %d (%s)", o.Source, o.Port, o.How)
		if o.User != "" {
			fmt.Fprintf(&b, " user %s", o.User)
		}
		if o.ExpiresS > 0 {
			fmt.Fprintf(&b, " expires in %s", time.Duration(o.ExpiresS*float64(time.Second)).Round(time.Second))
		}
		fmt.Fprintln(w, b.String())
	}
}

// printLeftTable says, when no daemon runs, what the kernel's table of
// that name holds: a table a daemon left (a restart, a crash) guards and
// keeps its opened sources.
func printLeftTable(stdout, stderr io.Writer, table string) {
	c, err := nft.Dial(0)
	if err != nil {
		fmt.Fprintf(stderr, "nfqknockd: status: %v\n", err)
		return
	}
	defer c.Close()
	els, err := c.AllowedOf(table)
	switch {
	case nft.IsNotFound(err):
		fmt.Fprintf(stdout, "no table inet %s: nothing is guarded by it\n", table)
	case err != nil:
		fmt.Fprintf(stderr, "nfqknockd: status: %v\n", err)
	default:
		fmt.Fprintf(stdout, "table inet %s is left guarding, with no daemon: opened %d\n", table, len(els))
		printOpenings(stdout, openings(els))
	}
}
