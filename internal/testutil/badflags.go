package testutil

import "strings"

// The reasons of nfqknockd's secret errors, spelt out.
const (
	WantWhyOpen  = "give both (with the C daemon's public default open secret, anyone could open the guarded ports)"
	WantWhyClose = "give both (with the C daemon's public default close secret, anyone could close the sources you open)"
	WantWhyEqual = "give two different secrets (the open and close sequences would be the same)"
)

// BadFlag is a bad command line of nfqknockd and the one line it must
// print.
type BadFlag struct {
	Args []string
	Want string // without "nfqknockd: "
}

// BadFlags are the bad command lines of every flag of nfqknockd.
// cmd/nfqknockd's TestBadFlags runs them in process, internal/e2e's
// TestBadInputLeavesNoTable through the binary.
func BadFlags() []BadFlag {
	const (
		notNumber = "port must be a number 1..65535"
		outside   = "port must be 1..65535"
		differ    = "start and end must differ: the sequence formula divides by end-start"
		timeout   = "timeout must be 1..600 seconds, or a duration from 1s to 600s"
		table     = "use letters, digits, '_', '-' and '.', starting with a letter or '_'"
		notPrefix = "not an address or CIDR prefix: want for example 10.8.0.0/16, fd00:8::/48 or 192.0.2.7"
		mapped    = "an IPv4-mapped IPv6 prefix never matches: the kernel sees IPv4 sources as IPv4"
		slash0    = "a /0 prefix is every source: it would switch the guard off for everyone"
		zone      = "an address with a zone (%...) cannot be allowed: give it without the zone"
	)
	return []BadFlag{
		// Directories.
		{[]string{"--lock-dir", ""}, "--lock-dir '': empty: give a directory"},
		{[]string{"--lock-dir", "run/nfqknockd"}, "--lock-dir run/nfqknockd: not an absolute path"},
		{[]string{"--state-dir", "lib"}, "--state-dir lib: not an absolute path"},
		// Ports.
		{[]string{"-a", "0"}, "--start 0: " + outside},
		{[]string{"-a", "65536"}, "--start 65536: " + outside},
		{[]string{"-a", "ssh"}, "--start ssh: " + notNumber},
		{[]string{"--start", "-1"}, "--start -1: " + notNumber},
		{[]string{"-b", "0"}, "--end 0: " + outside},
		{[]string{"-b", "99999999999999999999999"}, "--end 99999999999999999999999: " + outside},
		{[]string{"-b", "1e3"}, "--end 1e3: " + notNumber},
		{[]string{"-p", "0"}, "--guard 0: " + outside},
		{[]string{"--guard", "0"}, "--guard 0: " + outside},
		{[]string{"-p", "65536"}, "--guard 65536: " + outside},
		{[]string{"-p", "ssh"}, "--guard ssh: " + notNumber},
		{[]string{"-p", ""}, "--guard '': " + notNumber},
		{[]string{"-p", "22,0"}, `--guard 22,0: "0": ` + outside},
		{[]string{"-p", "22,,443"}, `--guard 22,,443: "": ` + notNumber},
		{[]string{"-P", "0"}, "--open-port 0: " + outside},
		{[]string{"-P", "70000"}, "--open-port 70000: " + outside},
		{[]string{"--open-port", "http"}, "--open-port http: " + notNumber},
		{[]string{"--range", "0-100"}, "--range 0-100: start: " + outside},
		{[]string{"--range", "1-65536"}, "--range 1-65536: end: " + outside},
		{[]string{"--range", "a-b"}, "--range a-b: start: " + notNumber},
		{[]string{"--range", "1000"}, "--range 1000: range must be START-END, for example 1-65535"},
		{[]string{"--range", "2000-1000"}, "--range 2000-1000: start 2000 is above end 1000"},
		{[]string{"--range", "5-5"}, "--range 5-5: " + differ},
		{[]string{"--range", "1-100", "-a", "2"}, "--range 1-100: conflicts with --start (-a) and --end (-b): give either"},
		{[]string{"-b", "100", "--range", "1-100"}, "--range 1-100: conflicts with --start (-a) and --end (-b): give either"},
		{[]string{"-a", "100", "-b", "50"}, "--end 50: end 50 is below start 100"},
		{[]string{"-b", "50", "-a", "100"}, "--end 50: end 50 is below start 100"},
		{[]string{"-a", "50", "-b", "50"}, "--end 50: " + differ},
		{[]string{"-a", "65535"}, "--start 65535: " + differ},
		{[]string{"-b", "1"}, "--end 1: " + differ},
		// Digest, secrets, timeout.
		{[]string{"-d", "sha1"}, "--digest sha1: unknown digest: want md5, sha256, sha384 or sha512"},
		{[]string{"--digest", ""}, "--digest '': unknown digest: want md5, sha256, sha384 or sha512"},
		{[]string{"-o", ""}, "--open-secret '': secret must not be empty"},
		{[]string{"--close-secret="}, "--close-secret '': secret must not be empty"},
		{[]string{"-p", "22", "-o", "only-the-open-secret"}, "--open-secret: given without --close-secret: " + WantWhyClose},
		{[]string{"-p", "22", "--close-secret", "only-the-close-secret"}, "--close-secret: given without --open-secret: " + WantWhyOpen},
		{[]string{"-s", "-c", "only-the-close-secret"}, "--close-secret: given without --open-secret: " + WantWhyOpen},
		{[]string{"-p", "22", "-o", "twin-secret", "-c", "twin-secret"},
			"--close-secret: same as --open-secret: " + WantWhyEqual},
		{[]string{"-t", "0"}, "--timeout 0: " + timeout},
		{[]string{"-t", "601"}, "--timeout 601: " + timeout},
		{[]string{"-t", "-5"}, "--timeout -5: " + timeout},
		{[]string{"-t", "999s"}, "--timeout 999s: " + timeout},
		{[]string{"-t", "500ms"}, "--timeout 500ms: " + timeout},
		{[]string{"-t", "ten"}, "--timeout ten: " + timeout},
		{[]string{"-t", "1.5"}, "--timeout 1.5: " + timeout},
		// Time and periods.
		{[]string{"-s", "--at", "yesterday"}, "--at yesterday: not a time: use RFC 3339 (2025-11-04T12:34:56Z) or Unix seconds"},
		{[]string{"-s", "--at", "2025-11-04 12:34:56"}, "--at '2025-11-04 12:34:56': not a time: use RFC 3339 (2025-11-04T12:34:56Z) or Unix seconds"},
		{[]string{"--at", "1762259696", "-p", "22"}, "--at 1762259696: only meaningful with -s (--show)"},
		// Single-packet authorization.
		{[]string{"--spa", "0", "-p", "22"}, "--spa 0: " + outside},
		{[]string{"--spa", "udp", "-p", "22"}, "--spa udp: " + notNumber},
		{[]string{"--spa", "62201,0", "-p", "22"}, `--spa 62201,0: "0": ` + outside},
		{[]string{"--spa-only", "-p", "22"}, "--spa-only: needs --spa PORT: without it nothing would open"},
		{[]string{"--spa", "62201", "--spa-only", "--one-time", "-p", "22"}, "--spa-only: not with --one-time: --spa-only accepts no knock sequence, one-time or not"},
		{[]string{"--spa", "62201", "--spa-window", "0s", "-p", "22"}, "--spa-window 0s: must be 1s..1h0m0s"},
		{[]string{"--spa", "62201", "--spa-window", "2h", "-p", "22"}, "--spa-window 2h: must be 1s..1h0m0s"},
		{[]string{"--spa", "62201", "--spa-window", "x", "-p", "22"}, "--spa-window x: not a duration: use for example 30s, 2m or 5m"},
		{[]string{"--spa-window", "30s", "-p", "22"}, "--spa-window 30s: only meaningful with --spa"},
		{[]string{"--period", "0s"}, "--period 0s: must be at least 1s"},
		{[]string{"--period", "1500ms"}, "--period 1500ms: must be a whole number of seconds"},
		{[]string{"--period", "hourly"}, "--period hourly: not a duration: use for example 90s, 10m or 1h"},
		{[]string{"--grace", "-1s"}, "--grace -1s: must be at least 0s"},
		{[]string{"--grace", "30m"}, "--grace 30m: must be below half the period (30m0s)"},
		{[]string{"--period", "1m"}, "--period 1m: must be more than twice the grace (1m0s): give a shorter --grace"},
		{[]string{"--period", "10s", "--grace", "1m", "-s"}, "--grace 1m: must be below half the period (5s)"},
		{[]string{"--period", "10s", "--grace", "5s"}, "--grace 5s: must be below half the period (5s)"},
		{[]string{"--local-hour", "--period", "30m"}, "--period 30m: --local-hour needs a period of 1h"},
		{[]string{"--open-timeout", "-1s"}, "--open-timeout -1s: must be at least 0s"},
		// Queues, sources, table.
		{[]string{"-q", "65536"}, "--queue 65536: must be a number 0..65535"},
		{[]string{"-q", "-1"}, "--queue -1: must be a number 0..65535"},
		{[]string{"-m", "0"}, "--max-queue-len 0: must be a number 1..4294967295"},
		{[]string{"-m", "4294967296"}, "--max-queue-len 4294967296: must be a number 1..4294967295"},
		{[]string{"--max-sources", "0"}, "--max-sources 0: must be a number 1..16777216"},
		{[]string{"--max-sources", "16777217"}, "--max-sources 16777217: must be a number 1..16777216"},
		{[]string{"--queues", "0"}, "--queues 0: must be a number 1..64"},
		{[]string{"--queues", "65"}, "--queues 65: must be a number 1..64"},
		{[]string{"-q", "65535", "--queues", "2"}, "--queues 2: queues 65535..65536 go past 65535"},
		{[]string{"--table", ""}, "--table '': table name is empty"},
		{[]string{"--table", "1table"}, `--table 1table: table name "1table": ` + table},
		{[]string{"--table", ".t"}, `--table .t: table name ".t": ` + table},
		{[]string{"--table", "-t"}, `--table -t: table name "-t": ` + table},
		{[]string{"--table", "a b"}, `--table 'a b': table name "a b": ` + table},
		{[]string{"--table", "no/slash"}, `--table no/slash: table name "no/slash": ` + table},
		{[]string{"--table", `t\n`}, `--table 't\n': table name "t\\n": ` + table},
		{[]string{"--table", "t\nx"}, `--table $'t\nx': table name "t\nx": ` + table},
		{[]string{"--table", strings.Repeat("t", 249)},
			"--table " + strings.Repeat("t", 249) + `: table name "tttttttttttttttttttt"...: longer than 248 bytes`},
		// Allowed sources.
		{[]string{"--allow", "x"}, "--allow x: " + notPrefix},
		{[]string{"--allow", ""}, "--allow '': " + notPrefix},
		{[]string{"--allow", "10.0.0.256"}, "--allow 10.0.0.256: " + notPrefix},
		{[]string{"--allow", "/8"}, "--allow /8: " + notPrefix},
		{[]string{"--allow", "10.0.0.0/"}, "--allow 10.0.0.0/: " + notPrefix},
		{[]string{"--allow", "10.0.0.0/33"}, "--allow 10.0.0.0/33: the prefix length of an IPv4 address must be 0..32"},
		{[]string{"--allow", "fd00::/129"}, "--allow fd00::/129: the prefix length of an IPv6 address must be 0..128"},
		{[]string{"--allow", "10.0.0.0/x"}, "--allow 10.0.0.0/x: the prefix length of an IPv4 address must be 0..32"},
		{[]string{"--allow", "fe80::1%eth0"}, "--allow fe80::1%eth0: " + zone},
		{[]string{"--allow", "fe80::%eth0/64"}, "--allow fe80::%eth0/64: " + zone},
		{[]string{"--allow", "::ffff:10.0.0.0/104"}, "--allow ::ffff:10.0.0.0/104: " + mapped + "; give 10.0.0.0/8"},
		{[]string{"--allow", "::ffff:192.0.2.7"}, "--allow ::ffff:192.0.2.7: " + mapped + "; give 192.0.2.7"},
		{[]string{"--allow", "::ffff:0:0/96"}, "--allow ::ffff:0:0/96: " + mapped},
		{[]string{"--allow", "0.0.0.0/0"}, "--allow 0.0.0.0/0: " + slash0},
		{[]string{"--allow", "::/0"}, "--allow ::/0: " + slash0},
		{[]string{"--allow", "10.1.2.3/0"}, "--allow 10.1.2.3/0: " + slash0},
		{[]string{"--allow", "10.1.2.3/8"}, "--allow 10.1.2.3/8: host bits are set after /8: give 10.0.0.0/8 for the network, or 10.1.2.3 for the one address"},
		{[]string{"--allow", "fd00:8::1/48"}, "--allow fd00:8::1/48: host bits are set after /48: give fd00:8::/48 for the network, or fd00:8::1 for the one address"},
		{[]string{"--allow", "10.8.0.0/16,,fd00::/8"}, `--allow 10.8.0.0/16,,fd00::/8: "": ` + notPrefix},
		{[]string{"-p", "22", "--allow", "10.8.0.0/16", "--allow", "10.8.0.0/16,::/0"}, `--allow 10.8.0.0/16,::/0: "::/0": ` + slash0},
		{[]string{"--allow", "240.0.0.0/4"}, "--allow 240.0.0.0/4: reaches the last address 255.255.255.255, which the kernel's interval set cannot end after; no source sends from there (reserved or multicast)"},
		{[]string{"--allow", "ff00::/8"}, "--allow ff00::/8: reaches the last address ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff, which the kernel's interval set cannot end after; no source sends from there (reserved or multicast)"},
		{[]string{"--allow"}, "--allow: needs a value"},
		// The metrics file: its directory must exist.
		{[]string{"--metrics-file", ""}, "--metrics-file '': file name is empty"},
		{[]string{"--metrics-file="}, "--metrics-file '': file name is empty"},
		{[]string{"--metrics-file", "/nonexistent-nfqknockd/nfqknockd.prom"}, "--metrics-file /nonexistent-nfqknockd/nfqknockd.prom: directory /nonexistent-nfqknockd does not exist"},
		{[]string{"--metrics-file", "/"}, "--metrics-file /: is a directory: give a file in it, such as /nfqknockd.prom"},
		{[]string{"--metrics-file", "/dev/null/nfqknockd.prom"}, "--metrics-file /dev/null/nfqknockd.prom: /dev/null is not a directory"},
		{[]string{"--metrics-file", "/tmp/no such dir/m.prom"}, "--metrics-file '/tmp/no such dir/m.prom': directory '/tmp/no such dir' does not exist"},
		{[]string{"--metrics-file"}, "--metrics-file: needs a value"},
		// The command line itself.
		{[]string{"--bogus"}, "--bogus: unknown flag (see --help)"},
		{[]string{"--bogus=1"}, "--bogus: unknown flag (see --help)"},
		{[]string{"-z"}, "-z: unknown flag (see --help)"},
		{[]string{"-fz"}, "-z: unknown flag (see --help)"},
		{[]string{"-p", "22", "stray"}, "stray: unexpected argument (nfqknockd takes flags only)"},
		{[]string{"-s", "--", "-p"}, "-p: unexpected argument (nfqknockd takes flags only)"},
		{[]string{"-s", "two words"}, "'two words': unexpected argument (nfqknockd takes flags only)"},
		{[]string{"-o"}, "--open-secret: needs a value"},
		{[]string{"--guard"}, "--guard: needs a value"},
		{[]string{"---x"}, "---x: bad flag syntax"},
		{[]string{"--show=maybe"}, "--show maybe: must be true or false, or no value"},
		{[]string{"-o", "x"}, "--guard: no port to guard: give at least one, for example -p 22"},
		{[]string{}, "--guard: no port to guard: give at least one, for example -p 22"},
	}
}
