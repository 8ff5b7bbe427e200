package main

// nfqknockd check: the configuration read as a start reads it, and what
// the start line and its warnings would say, without the kernel.

import (
	"fmt"
	"io"
	"log/slog"
)

// runCheck is nfqknockd check: cfg was parsed as for a start (the flags,
// the secrets from their file or credential, the access file, the
// environment); it prints, on stdout, the start line's settings and every
// warning a start would log, and returns 0, or 2 with one line on stderr
// when a start would refuse the configuration before touching the kernel.
// It opens no socket and writes no file: root is needed only to read files
// that only root may read.
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
