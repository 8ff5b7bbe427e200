// Package pkgtest tests what the nfqknockd packages ship, as an admin gets
// it: the hardened systemd unit (systemd-analyze verify and security), the
// man pages, the nfpm packages' files and modes, and, as root, the .deb
// installed with dpkg on this machine, its daemon started the way the unit
// starts it (ExecStart, EnvironmentFile, the secrets credential, an
// unprivileged user with CAP_NET_ADMIN only) in a network namespace and
// checked with real TCP from another one; then the upgrade to a second
// .deb under a running daemon (the scripts see a fake systemd; the test
// does what systemctl try-restart and reload do with the installed unit),
// with a prober that must never get through. The .apk's OpenRC service is
// checked as far as Debian allows: parsed by each shell, run under stubs of
// openrc-run and supervise-daemon, and its command line run with the real
// daemon in a network namespace. README's quick start is followed word for
// word (TestQuickStart), and README, docs, the man pages and --help are
// checked against each other and the built commands (TestDocsAgree). The
// package holds only tests.
package pkgtest
