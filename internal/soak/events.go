package main

// What each event does to the daemon, the table or the network.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// do runs event e and records it; errors are counted, by event, in the
// report (a daemon that cannot be started again ends the run: fatal).
func (s *soak) do(e event) {
	start := time.Now()
	var err error
	switch e.Kind {
	case evFlushRuleset:
		err = s.nftEvent(e.Kind, "flush", "ruleset")
	case evDeleteTable:
		err = s.nftEvent(e.Kind, "delete", "table", "inet", s.table)
	case evFlushTable:
		err = s.nftEvent(e.Kind, "flush", "table", "inet", s.table)
	case evFlushSetGuard:
		err = s.nftEvent(e.Kind, "flush", "set", "inet", s.table, "guard")
	case evHupNew:
		err = s.reload(true)
	case evHupBroken:
		err = s.reload(false)
	case evQuit:
		err = s.restart(syscall.SIGQUIT, winQuit)
	case evKill:
		err = s.restart(syscall.SIGKILL, winKill)
	case evFlood1:
		err = s.flood(e, 1)
	case evFloodMillion:
		err = s.flood(e, 1_000_000)
	case evClient4, evClient6, evOneTime:
		err = s.client(e.Family, e.Kind == evOneTime)
	}
	if s.verbose {
		fmt.Printf("%s %-20s %v\n", time.Now().UTC().Format("15:04:05.000"), e.Kind, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeline = append(s.timeline, eventRec{From: start, To: time.Now(), Event: e, Err: err})
	s.counts[e.Kind]++
	if err != nil {
		s.errs[e.Kind.String()+": "+firstLine(err.Error())]++
	}
}

// nftEvent runs nft with args in the server namespace, while a daemon runs
// (an admin's change while no daemon runs is not the daemon's to defend).
// Where the kernel owns the table nft is refused (EPERM): counted as
// "refused". On the generation none the table is put back by the daemon:
// the time until it logged so is a window.
func (s *soak) nftEvent(k kind, args ...string) error {
	s.life.Lock()
	defer s.life.Unlock()
	from := s.d.logLen()
	t0 := time.Now()
	_, err := netns.Nft(s.pair.server, "", args...)
	outcome := "done"
	if err != nil {
		if !strings.Contains(err.Error(), "Operation not permitted") {
			return err
		}
		outcome = "refused (EPERM)"
	}
	s.mu.Lock()
	s.nftOutcomes[k.String()+": "+outcome]++
	s.mu.Unlock()
	if err != nil || s.gen != "none" || k == evFlushSetGuard {
		return nil
	}
	_, werr := s.d.waitFor("put back", from, 3*time.Second)
	s.addWindow(t0, time.Now().Add(50*time.Millisecond), winRepair)
	if werr != nil {
		return fmt.Errorf("after nft %s: %w", strings.Join(args, " "), werr)
	}
	return nil
}

// reload sends SIGHUP after writing new secrets (fresh) or a broken file,
// which the daemon must refuse, keeping the secrets in force; the good
// file is then put back, so that a later restart reads it.
func (s *soak) reload(fresh bool) error {
	s.life.Lock()
	defer s.life.Unlock()
	if fresh {
		// No client knocks while the secrets change: they would knock the
		// old ones to a daemon that has the new.
		s.secrets.Lock()
		defer s.secrets.Unlock()
	}
	from := s.d.logLen()
	open, close := s.params.OpenSecret, s.params.CloseSecret
	if fresh {
		s.reloads++
		open = fmt.Sprintf("soak-open-%d-%x", s.reloads, s.rng.Uint64())
		close = fmt.Sprintf("soak-close-%d-%x", s.reloads, s.rng.Uint64())
		if err := writeSecrets(s.secretFile, open, close); err != nil {
			return err
		}
	} else if err := writeFile(s.secretFile, "open=soak\nthis line is not a secret\n"); err != nil {
		return err
	}
	if err := s.d.signal(syscall.SIGHUP); err != nil {
		return err
	}
	if fresh {
		if _, err := s.d.waitFor("msg=reloaded", from, 5*time.Second); err != nil {
			return err
		}
		s.params.OpenSecret, s.params.CloseSecret = open, close
		return nil
	}
	log, err := s.d.waitFor("msg=\"reload refused", from, 5*time.Second)
	if werr := writeSecrets(s.secretFile, open, close); werr != nil {
		return werr
	}
	if err != nil {
		if strings.Contains(s.d.stderr.String()[from:], "msg=reloaded") {
			return fmt.Errorf("a broken secret file was accepted: %s", testutil.Tail(log, 1))
		}
		return err
	}
	return nil
}

// restart sends sig (SIGQUIT or SIGKILL) and starts a new daemon, which
// takes the table over. From the signal until the new daemon logged
// msg=started is a window of reason why.
func (s *soak) restart(sig syscall.Signal, why string) error {
	s.life.Lock()
	defer s.life.Unlock()
	t0 := time.Now()
	if err := s.d.signal(sig); err != nil {
		return err
	}
	werr := s.d.wait(5 * time.Second)
	if sig == syscall.SIGKILL {
		werr = nil
	}
	s.d.kill()
	d, err := startDaemon(s.bin, s.pair.server, s.args, s.env, s.log)
	if err != nil {
		s.fatal(fmt.Errorf("after %v: %w", sig, err))
		return err
	}
	s.setDaemon(d)
	s.addWindow(t0, d.started, why)
	if werr != nil {
		return fmt.Errorf("exit after %v: %w", sig, werr)
	}
	return nil
}

// flood sends SYNs from sources spoofed sources (1: a single one; never a
// client's address) to random ports of the knock range, one flood at a
// time, at --flood-rate, for e.Flood.
func (s *soak) flood(e event, sources int) error {
	s.floodMu.Lock()
	defer s.floodMu.Unlock()
	dst := s.dst4.Addr()
	if e.Family == 6 {
		dst = s.dst6.Addr()
	}
	ctx, cancel := context.WithTimeout(s.ctx, e.Flood)
	defer cancel()
	res, err := syngen.Run(ctx, s.pair.client, syngen.Config{
		Dst:         dst,
		DstPorts:    syngen.Ports{First: s.params.Range.Start, Last: s.params.Range.End},
		RandomPorts: true,
		Seed:        uint64(time.Now().UnixNano()),
		Sources:     sources,
		Rate:        s.floodRate,
		Duration:    e.Flood,
	})
	s.mu.Lock()
	s.floodSent += res.Sent
	s.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("flood: %w", err)
	}
	return nil
}

// client knocks open with a fresh one-time sequence from an address of the
// pool of its family, connects, knocks close; with replay, the open
// sequence is then knocked again from another address.
func (s *soak) client(family int, replay bool) error {
	pool, dst := s.pool4, s.dst4
	if family == 6 {
		pool, dst = s.pool6, s.dst6
	}
	src := pool.get()
	defer pool.put(src)
	c := clientRun{ns: s.pair.client, src: src, dst: dst, replay: replay}
	if replay {
		c.other = pool.get()
		defer pool.put(c.other)
	}
	s.secrets.RLock()
	defer s.secrets.RUnlock()
	p := s.params
	now := time.Now()
	var err error
	if c.open, err = s.nonces.sequence(p, p.OpenSecret, now); err != nil {
		return err
	}
	if c.close, err = s.nonces.sequence(p, p.CloseSecret, now); err != nil {
		return err
	}
	from := len(s.allLog.String())
	a, err := c.run()
	if err != nil {
		return err
	}
	if a.Replayed {
		time.Sleep(100 * time.Millisecond) // the daemon's log, through a pipe
		a.ReplayOpen = strings.Contains(s.allLog.String()[from:], "msg=open source="+c.other.String()+" ")
	}
	s.mu.Lock()
	s.attempts = append(s.attempts, a)
	s.mu.Unlock()
	return nil
}

// eventRec is one event that ran: when, and how it ended.
type eventRec struct {
	From, To time.Time
	Event    event
	Err      error
}

// String is the event's line in the timeline.
func (r eventRec) String() string {
	s := fmt.Sprintf("%s..%s %s", r.From.UTC().Format("15:04:05.000"), r.To.UTC().Format("15:04:05.000"), r.Event.Kind)
	switch r.Event.Kind {
	case evFlood1, evFloodMillion, evOneTime:
		s += fmt.Sprintf(" ipv%d", r.Event.Family)
	}
	if r.Err != nil {
		s += ": " + firstLine(r.Err.Error())
	}
	return s
}

// writeSecrets writes a secret file (mode 0600) atomically.
func writeSecrets(name, open, close string) error {
	return writeFile(name, "open="+open+"\nclose="+close+"\n")
}

// writeFile replaces name with content, mode 0600, by a rename.
func writeFile(name, content string) error {
	tmp := filepath.Join(filepath.Dir(name), ".tmp-"+filepath.Base(name))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	return nil
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
