package main

// nfqknockd check: the configuration read as a start reads it, and what
// the start line and its warnings would say, without the kernel.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/nfqknockd/nfqknockd/cmd/internal/privdir"
)

// runCheck is nfqknockd check: cfg was parsed as for a start (the flags,
// the secrets from their file or credential, the access file, the
// --on-event program, the environment); it checks the start's directories
// without making or writing anything (checkDirs), prints on stdout the
// start line's settings and every warning a start would log, and returns
// 0, or 2 with one line on stderr when a start would refuse the
// configuration before touching the kernel. It opens no socket and writes
// no file: root is needed only to read files that only root may read.
func runCheck(cfg *config, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	d := newService(cfg, log, stderr)
	guard, err := cfg.checkGuard()
	if err == nil {
		err = cfg.checkDirs()
	}
	if err != nil {
		fmt.Fprintf(stderr, "nfqknockd: %s\n", err.msg)
		return err.code
	}
	settings := append([]any{"table", "inet " + cfg.Table, "queue", fmt.Sprintf("num %d total %d", cfg.Queue, cfg.Queues)}, d.settings(guard)...)
	d.log.Info("checked: a start would use", settings...)
	d.warnSecrets()
	d.warnOpenPorts()
	return 0
}

// checkGuard returns the ports to guard, or the error of a start that has
// none.
func (c *config) checkGuard() ([]uint16, *exitError) {
	guard := c.guardPorts()
	if len(guard) == 0 {
		return nil, fail(2, "--guard %s: no port to guard: every one is also given with -P/--open-port, which wins", portList(c.Guard))
	}
	return guard, nil
}

// warnOpenPorts logs the ports given with both --guard and --open-port:
// --open-port wins, they are not guarded.
func (d *service) warnOpenPorts() {
	for _, p := range d.cfg.Opened {
		for _, g := range d.cfg.Guard {
			if p == g {
				d.log.Warn("port given with both --guard and --open-port is not guarded", "port", p)
			}
		}
	}
}

// checkDirs is the start's checks of --lock-dir, --state-dir (with
// --one-time) and --metrics-file's directory, read only: a directory that a
// start would make is fine; whether the daemon may create files in a
// directory is judged from its owner and mode.
func (c *config) checkDirs() *exitError {
	if err := privdir.Check(c.LockDir); err != nil {
		return fail(2, "--lock-dir %s: %v", style.Quote(c.LockDir), err)
	}
	if c.keepsSpent() && c.StateDir != "" {
		if err := privdir.Check(c.StateDir); err != nil {
			return fail(2, "--state-dir %s: %v", style.Quote(c.StateDir), err)
		}
	}
	if c.MetricsFile != "" {
		dir := filepath.Dir(c.MetricsFile)
		if err := creatable(dir); err != nil {
			return fail(2, "--metrics-file %s: cannot create a file in %s: %v", style.Quote(c.MetricsFile), style.Quote(dir), err)
		}
	}
	return nil
}

// creatable says whether this process, without CAP_DAC_OVERRIDE (as the
// daemon runs), may create a file in dir, from dir's owner and mode.
func creatable(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok {
		return syscall.ENOTDIR
	}
	perm := fi.Mode().Perm()
	switch {
	case int(st.Uid) == os.Geteuid():
		perm &= 0o300
		if perm == 0o300 {
			return nil
		}
	case int(st.Gid) == os.Getegid():
		if perm&0o030 == 0o030 {
			return nil
		}
	case perm&0o003 == 0o003:
		return nil
	}
	return syscall.EACCES
}
