package main

// The control socket: nfqknockd status and nfqknockd revoke talk to the
// running daemon over a unix socket beside the table's lock, one JSON
// request and one JSON reply per connection. Only root and the daemon's
// own user may ask (SO_PEERCRED): a status names the opened sources, and
// a revoke closes them.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/cmd/internal/tablelock"
	"github.com/nfqknockd/nfqknockd/nft"
)

// ctlTimeout bounds one exchange on the control socket, and ctlMaxRequest
// the size of a request.
const (
	ctlTimeout    = 5 * time.Second
	ctlMaxRequest = 4096
)

// ctlRequest is what a client asks: Op "status", or "revoke" with Source
// or User.
type ctlRequest struct {
	Op     string `json:"op"`
	Source string `json:"source,omitempty"`
	User   string `json:"user,omitempty"`
}

// ctlReply is the daemon's answer: Error, or the status, or what a revoke
// closed.
type ctlReply struct {
	Error   string       `json:"error,omitempty"`
	Status  *ctlStatus   `json:"status,omitempty"`
	Revoked []ctlOpening `json:"revoked,omitempty"`
}

// ctlStatus is what nfqknockd status shows. It holds no secret and no
// port of a sequence.
type ctlStatus struct {
	Table        string       `json:"table"`
	TableFlags   string       `json:"table_flags"`
	QueueVariant string       `json:"queue_variant"`
	Queue        string       `json:"queue"`
	Guard        string       `json:"guard"`
	Allow        string       `json:"allow"`
	Range        string       `json:"range"`
	Digest       string       `json:"digest"`
	Period       string       `json:"period"`
	OneTime      bool         `json:"one_time"`
	Secrets      string       `json:"secrets"`
	Opened       []ctlOpening `json:"opened"`
	Knocking     int64        `json:"knocking_sources"`
	Opens        uint64       `json:"opens"`
	Closes       uint64       `json:"closes"`
	Replays      uint64       `json:"replays"`
	Repairs      uint64       `json:"repairs"`
	Revokes      uint64       `json:"revokes"`
	// SPA is the SPA setting (start line's spa); SPAPackets the SPA
	// packets read, by result: open, close, and refused_REASON.
	SPA        string            `json:"spa"`
	SPAPackets map[string]uint64 `json:"spa_packets,omitempty"`
}

// ctlOpening is one opened source and port: how it came (a knock; the
// --allow ranges are in Allow), its user, and its life left in seconds (0:
// until closed).
type ctlOpening struct {
	Source   string  `json:"source"`
	Port     uint16  `json:"port"`
	User     string  `json:"user,omitempty"`
	How      string  `json:"how"`
	ExpiresS float64 `json:"expires_s"`
}

// ctlPath returns the control socket of table in this network namespace,
// in dir: the lock's name with .sock for .lock.
func ctlPath(dir, table string) (string, error) {
	ns, err := tablelock.Netns()
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(tablelock.Path(dir, table, ns), ".lock") + ".sock", nil
}

// listenControl opens the control socket, mode 0600, replacing one a
// daemon before left: the table's lock, held, says no other daemon uses it.
func (d *service) listenControl() (net.Listener, error) {
	path, err := ctlPath(d.cfg.LockDir, d.cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// serveControl answers on ln, one connection at a time, until ctx is done.
func (d *service) serveControl(ctx context.Context, ln net.Listener) {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("control socket stopped", "err", err)
			}
			return
		}
		d.answerConn(c.(*net.UnixConn))
	}
}

// answerConn reads one request from c and writes the reply, if the peer
// is root or the daemon's user. The request is read first in any case, so
// that a refused client reads the refusal rather than a broken pipe.
func (d *service) answerConn(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ctlTimeout))
	var req ctlRequest
	line, err := bufio.NewReader(io.LimitReader(c, ctlMaxRequest)).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	uid, uidErr := peerUID(c)
	var reply ctlReply
	switch {
	case uidErr != nil:
		reply.Error = uidErr.Error()
	case uid != 0 && int(uid) != os.Getuid():
		d.log.Warn("control socket: refused a user", "uid", uid)
		reply.Error = "permission denied: only root and the daemon's user may ask"
	case err != nil:
		reply.Error = "bad request: " + err.Error()
	default:
		reply = d.answer(req, uid)
	}
	b, _ := json.Marshal(reply)
	c.Write(append(b, '\n'))
}

// peerUID returns the user id of the process at the other end of c.
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, fmt.Errorf("peer credentials: %w", credErr)
	}
	return cred.Uid, nil
}

// answer answers one request of the user uid.
func (d *service) answer(req ctlRequest, uid uint32) ctlReply {
	switch req.Op {
	case "status":
		return ctlReply{Status: d.status()}
	case "revoke":
		closed, err := d.revoke(req.Source, req.User, uid)
		reply := ctlReply{Revoked: closed}
		if err != nil {
			reply.Error = err.Error()
		}
		return reply
	}
	return ctlReply{Error: fmt.Sprintf("unknown request %q", req.Op)}
}

// status gathers what nfqknockd status shows: the opened sources as the
// daemon recorded them (nft.Interface.Opened), which never waits for a dump
// of the kernel's sets that would hold up the opens.
func (d *service) status() *ctlStatus {
	els := d.rules.Opened()
	m := &d.metrics
	st := &ctlStatus{
		Table: "inet " + d.cfg.Table, TableFlags: d.gen.Flags(), QueueVariant: d.queueVariant,
		Queue: fmt.Sprintf("num %d total %d", d.cfg.Queue, d.cfg.Queues),
		Guard: portList(d.spec.Guard), Allow: prefixList(d.cfg),
		Range:  fmt.Sprintf("%d-%d", d.cfg.Params.Range.Start, d.cfg.Params.Range.End),
		Digest: d.cfg.Params.Digest.String(), Period: d.cfg.Params.Period.String(), OneTime: d.cfg.OneTime,
		Secrets: d.secrets().from(), Opened: openings(els),
		Opens: m.opens.Load(), Closes: m.closes.Load(), Replays: m.replays.Load(),
		Repairs: m.repairs.Load(), Revokes: m.revokes.Load(),
	}
	for _, s := range d.shards {
		st.Knocking += s.tracked.Load()
	}
	st.SPA = spaSetting(d.cfg)
	if len(d.cfg.SPA.Ports) > 0 {
		st.SPAPackets = d.spaCounts.sample().byResult()
	}
	return st
}

// openings turns the allow sets' elements into the status's openings.
func openings(els []nft.Element) []ctlOpening {
	out := make([]ctlOpening, 0, len(els))
	for _, e := range els {
		out = append(out, ctlOpening{Source: e.Addr.String(), Port: e.Port, User: e.User, How: "knock", ExpiresS: e.Expires.Seconds()})
	}
	return out
}

// revoke closes at once what source (an address) or user opened, logs it
// with the asker's uid and counts it. A source it could not close does not
// stop the others: the reply lists what was closed, and the error names
// what was not.
func (d *service) revoke(source, user string, uid uint32) ([]ctlOpening, error) {
	var src netip.Addr
	switch {
	case source != "" && user != "", source == "" && user == "":
		return nil, errors.New("give a source address or a user, one of them")
	case source != "":
		a, err := netip.ParseAddr(source)
		if err != nil {
			return nil, fmt.Errorf("source %q is not an IP address", source)
		}
		src = a.Unmap()
	}
	els, err := d.rules.Allowed()
	if err != nil {
		return nil, err
	}
	bySource := map[netip.Addr][]nft.Element{}
	var order []netip.Addr
	for _, e := range els {
		if (src.IsValid() && e.Addr == src) || (user != "" && e.User == user) {
			if bySource[e.Addr] == nil {
				order = append(order, e.Addr)
			}
			bySource[e.Addr] = append(bySource[e.Addr], e)
		}
	}
	if len(order) == 0 {
		if src.IsValid() {
			return nil, fmt.Errorf("%s is not opened", src)
		}
		return nil, fmt.Errorf("user %q has nothing opened", user)
	}
	var closed []ctlOpening
	var failed []error
	for _, a := range order {
		es := bySource[a]
		ports := make([]uint16, len(es))
		for i, e := range es {
			ports[i] = e.Port
		}
		if err := d.rules.Revoke(a, ports); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", a, err))
			continue
		}
		closed = append(closed, openings(es)...)
		d.metrics.revokes.Add(1)
		d.log.Info("revoked", "source", a, "ports", portList(ports), "user", es[0].User, "by_uid", uid)
		d.hooks.emit(hookEvent{Kind: "revoke", Source: a, User: es[0].User, Ports: ports, Detail: "by uid " + strconv.Itoa(int(uid))})
	}
	return closed, errors.Join(failed...)
}
