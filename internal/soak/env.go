package main

// The soak's world: two network namespaces joined by veth, the daemon
// processes in the server one, nft, and readings of the daemon's resources.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// nsPrefix starts the names of the soak's namespaces. Not internal/netns's
// "nfqk-": its SweepStale, run by the tests of a process in another PID
// namespace (where the soak's pid looks dead), deleted a soak's namespaces
// in the middle of a run.
const nsPrefix = "nfqksoak-"

// sweepStale deletes the namespaces of soaks that died without cleaning up.
func sweepStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(e.Name(), nsPrefix), "-", 2)[0])
		if !strings.HasPrefix(e.Name(), nsPrefix) || err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		if err := netns.Delete(e.Name()); err != nil {
			fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		}
	}
}

// pair is the server and the client namespace.
type pair struct {
	server, client string
}

// newPair makes the namespaces, the client's extra addresses (clients,
// then probers), the routes back for spoofed sources and, in the client
// namespace, a sink for the server's replies to them. The caller deletes
// the pair with close, also after an error.
func newPair(extra []netip.Addr) (*pair, error) {
	base := fmt.Sprintf("%s%d", nsPrefix, os.Getpid())
	p := &pair{server: base + "-s", client: base + "-c"}
	for _, s := range netns.PairCommands(p.server, p.client) {
		if err := ip(s, ""); err != nil {
			return p, err
		}
	}
	var batch strings.Builder
	for _, a := range extra {
		if a.Is4() {
			fmt.Fprintf(&batch, "addr add %s/32 dev veth0\n", a)
		} else {
			fmt.Fprintf(&batch, "addr add %s/128 dev veth0 nodad\n", a)
		}
	}
	if err := ip([]string{"-n", p.client, "-batch", "-"}, batch.String()); err != nil {
		return p, err
	}
	if err := syngen.AddSpoofRoutes(p.server, netns.ClientIP4, netns.ClientIP6); err != nil {
		return p, fmt.Errorf("spoof routes: %w", err)
	}
	if _, err := netns.Nft(p.client, syngen.ReplySink("soak_sink"), "-f", "-"); err != nil {
		return p, fmt.Errorf("reply sink in %s: %w", p.client, err)
	}
	return p, nil
}

// close deletes both namespaces and kills what runs in them.
func (p *pair) close() {
	for _, ns := range []string{p.client, p.server} {
		if err := netns.Delete(ns); err != nil {
			fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		}
	}
}

// ip runs ip with args, stdin when not empty.
func ip(args []string, stdin string) error {
	cmd := exec.Command("ip", args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// setSize returns how many elements set name of table inet table holds.
func setSize(ns, table, name string) (int, error) {
	out, err := netns.Nft(ns, "", "-j", "list", "set", "inet", table, name)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return 0, fmt.Errorf("nft -j list set %s: %w", name, err)
	}
	for _, o := range doc.Nftables {
		if o.Set != nil {
			return len(o.Set.Elem), nil
		}
	}
	return 0, fmt.Errorf("nft -j list set %s: no set in the output", name)
}

// daemon is one nfqknockd process in the server namespace.
type daemon struct {
	cmd     *exec.Cmd
	pid     int
	stderr  *testutil.SyncBuffer
	done    chan struct{}
	err     error
	started time.Time // when it logged msg=started
}

// startDaemon runs bin with args and env in namespace ns (`ip netns exec`
// execs it, so the pid is the daemon's), copies its log to log too, and
// waits until it logs msg=started.
func startDaemon(bin, ns string, args, env []string, log io.Writer) (*daemon, error) {
	cmd := netns.Command(ns, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	d := &daemon{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = io.MultiWriter(d.stderr, log)
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d.pid = cmd.Process.Pid
	go func() { d.err = cmd.Wait(); close(d.done) }()
	if _, err := d.waitFor("msg=started", 0, 15*time.Second); err != nil {
		d.kill()
		return nil, fmt.Errorf("new daemon: %w; its log:\n%s", err, testutil.Tail(d.stderr.String(), 20))
	}
	d.started = time.Now()
	return d, nil
}

// logLen is the length of the daemon's log so far: an offset for waitFor.
func (d *daemon) logLen() int { return len(d.stderr.String()) }

// waitFor waits until the daemon's log holds s after offset from, for at
// most limit, and returns the log from there.
func (d *daemon) waitFor(s string, from int, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		log := d.stderr.String()
		if from <= len(log) && strings.Contains(log[from:], s) {
			return log[from:], nil
		}
		select {
		case <-d.done:
			return "", fmt.Errorf("daemon exited (%v) before it logged %q", d.err, s)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("daemon did not log %q within %v", s, limit)
		}
	}
}

// signal sends sig to the daemon.
func (d *daemon) signal(sig syscall.Signal) error {
	if err := d.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to daemon %d: %w", sig, d.pid, err)
	}
	return nil
}

// wait waits for the daemon's exit, for at most limit.
func (d *daemon) wait(limit time.Duration) error {
	select {
	case <-d.done:
		return d.err
	case <-time.After(limit):
		return fmt.Errorf("daemon %d still running after %v", d.pid, limit)
	}
}

// kill kills the daemon (when it still runs) and waits for it.
func (d *daemon) kill() {
	select {
	case <-d.done:
	default:
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// readSample reads the resources of process pid from /proc.
func readSample(pid int) (sample, error) {
	s := sample{At: time.Now(), PID: pid}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read resources: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.RSSKiB, _ = strconv.ParseInt(fs[0], 10, 64)
		case "Threads":
			s.Threads, _ = strconv.ParseInt(fs[0], 10, 64)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, fmt.Errorf("read resources: %w", err)
	}
	s.FDs = int64(len(fds))
	return s, nil
}

// readRuntime sets the goroutines and the live heap of r from the daemon's
// metrics file, which it rewrites every 10 s; they stay 0 when it cannot
// be read.
func readRuntime(metricsFile string, r *sample) {
	b, err := os.ReadFile(metricsFile)
	if err != nil {
		return
	}
	for line := range strings.Lines(string(b)) {
		name, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "nfqknockd_goroutines":
			r.Goroutines = n
		case "nfqknockd_heap_live_bytes":
			r.HeapLiveKiB = n / 1024
		}
	}
}

// logMessages counts the WARN and ERROR lines of a daemon log (logfmt:
// level=WARN msg="..."), by level and message.
func logMessages(log string) map[string]int {
	m := map[string]int{}
	for _, l := range strings.Split(log, "\n") {
		level := ""
		switch {
		case strings.Contains(l, "level=WARN"):
			level = "WARN"
		case strings.Contains(l, "level=ERROR"):
			level = "ERROR"
		default:
			continue
		}
		m[level+" "+logMsg(l)]++
	}
	return m
}

// logMsg returns the msg= value of a logfmt line, unquoted.
func logMsg(l string) string {
	i := strings.Index(l, " msg=")
	if i < 0 {
		return "(no msg)"
	}
	rest := l[i+len(" msg="):]
	if strings.HasPrefix(rest, `"`) {
		if s, err := strconv.QuotedPrefix(rest); err == nil {
			if u, err := strconv.Unquote(s); err == nil {
				return u
			}
		}
		return rest
	}
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		return rest[:j]
	}
	return rest
}
