# nfqknockd: build, test, demo, install, bench, fuzz.
GO       ?= go
PREFIX   ?= /usr/local
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/nfqknockd/nfqknockd/cmd/internal/version.stamp=$(VERSION)
BIN      := bin

.PHONY: all build test demo install uninstall bench fuzz fuzz-spa vet cross-check clean soak vm-test wine-test

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/nfqknockd ./cmd/nfqknockd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/nfqknock ./cmd/nfqknock

vet:
	$(GO) vet ./...

# The tests: unit tests everywhere, and as root the network-namespace tests
# (real kernel, real packets). Prints how many tests ran, passed, skipped.
# Packages run one at a time (-p 1): the flood tests load both cores.
test: vet cross-check
	bash internal/testsummary.sh $(GO) test -count=1 -p 1 -v -timeout 20m ./...

# The client for the other systems of `make release`: go vet, and the
# tests compiled (go test -c, not run) with GOOS and GOARCH set, for the
# client and what it imports of ours (go list -deps ./cmd/nfqknock: the
# daemon's own cmd/internal packages are Linux only). Checks every target,
# then fails if one failed.
CLIENT_TARGETS := darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64
CLIENT_PKGS    := ./cmd/nfqknock ./cmd/internal/cli ./cmd/internal/version ./knock ./spa
cross-check:
	@failed=; for t in $(CLIENT_TARGETS); do \
		export CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/}; \
		echo "== $$t: go vet, go test -c"; \
		$(GO) vet $(CLIENT_PKGS) || failed="$$failed $$t(vet)"; \
		for p in $$($(GO) list $(CLIENT_PKGS)); do \
			$(GO) test -c -o /dev/null $$p || failed="$$failed $$t($$p)"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "cross-check failed:$$failed"; exit 1; fi

# Debian's own kernels in qemu, systemd as PID 1, the admin's whole path in
# each VM (root; see test/vm/README.md). Prints a matrix, writes
# dist/vm-matrix.md, fails when a security check fails. Images are cached in
# VM_CACHE (/var/cache/nfqknockd-vm). E.g. make vm-test VM_KERNELS="6.1 6.12"
VM_VARS := VM_KERNELS VM_REPEAT VM_BOOTS VM_STRICT VM_PROBE_EVERY VM_JOBS VM_OUT VM_CACHE VM_ACCEL VM_MEM VM_SMP VM_TIMEOUT VM_MIRROR
vm-test:
	$(foreach v,$(VM_VARS),$(if $($(v)),$(v)='$($(v))')) GO='$(GO)' bash test/vm/vm-test.sh

# The Windows client, nfqknock.exe, under Wine 10 in a Debian trixie chroot
# (root): show against nfqknockd -s, open and close against the daemon in
# network namespaces, the secret file's checks. One PASS or FAIL line a
# check (test/wine/README.md). The chroot is cached in WINE_CACHE
# (/var/cache/nfqknockd-wine).
wine-test:
	$(if $(WINE_CACHE),WINE_CACHE='$(WINE_CACHE)') GO='$(GO)' bash test/wine/run.sh

# A knock opening a guarded port, in two throw-away network namespaces.
demo: build
	bash internal/demo/demo.sh $(BIN)/nfqknockd

# Benchmarks (root; a few minutes on 2 cores): the per-packet path (ns/op,
# allocs/op), then SYN floods from 1 to 1,000,000 spoofed sources, and SPA
# under floods of random UDP payloads, in throw-away network namespaces. Prints one table and writes bench.json.
# Extra floodbench flags: make bench BENCHFLAGS='--daemon-args "--queues 2"'
bench: build
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./knock/ ./queue/ ./spa/ ./cmd/nfqknockd/ > $(BIN)/gobench.txt || { cat $(BIN)/gobench.txt; exit 1; }
	$(GO) build -o $(BIN)/floodbench ./internal/floodbench
	$(BIN)/floodbench --daemon $(BIN)/nfqknockd --gobench $(BIN)/gobench.txt --json bench.json $(BENCHFLAGS)

# The soak (root): the daemon for SOAK in throw-away network namespaces
# under random events (nft flushes, reloads, restarts, SIGKILL, floods,
# clients, one-time replays) and a prober that must never get in. Prints
# its figures, writes soak.json, exits 1 on a failure (internal/soak).
# Extra flags: make soak SOAKFLAGS='--gen owner --seed 42'
SOAK ?= 10m
soak: build
	$(GO) build -o $(BIN)/soak ./internal/soak
	$(BIN)/soak --daemon $(BIN)/nfqknockd --duration $(SOAK) --json soak.json --daemon-log $(BIN)/soak-daemon.log $(SOAKFLAGS)

# Each fuzz target for FUZZTIME (go test -fuzz); crashers land in the
# package's testdata/fuzz/ and are kept as regression inputs.
FUZZTIME ?= 1m
FUZZ_TARGETS := knock:FuzzTracker knock:FuzzParseRange knock:FuzzParsePorts knock:FuzzParseSecrets knock:FuzzAccessFile \
	queue:FuzzParse queue:FuzzWalk cmd/nfqknockd:FuzzParseFlags cmd/nfqknock:FuzzClientConfig \
	cmd/internal/spentfile:FuzzParse spa:FuzzOpen

# The SPA packet parser alone for 5 minutes (issue 23's bar).
fuzz-spa:
	$(MAKE) fuzz FUZZ_TARGETS=spa:FuzzOpen FUZZTIME=5m
fuzz:
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "== $$fn ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -parallel 1 ./$$pkg/ >$$log 2>&1; rc=$$?; \
		grep '^fuzz: elapsed' $$log | tail -n 1; grep -v '^fuzz: elapsed' $$log; \
		[ $$rc = 0 ] || exit $$rc; \
	done

install: build
	install -D -m 0755 $(BIN)/nfqknockd $(DESTDIR)$(PREFIX)/sbin/nfqknockd
	install -D -m 0755 $(BIN)/nfqknock $(DESTDIR)$(PREFIX)/bin/nfqknock

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/nfqknockd $(DESTDIR)$(PREFIX)/bin/nfqknock

clean:
	rm -rf $(BIN) bench.json soak.json $(DIST)

# ---------------------------------------------------------------------------
# Packages and release builds (paste into Makefile after the existing
# targets; uses GO, VERSION, LDFLAGS from the top of the Makefile).
#
#   make man        dist/man/nfqknockd.8.gz, dist/man/nfqknock.1.gz
#   make completions  dist/completions: bash, zsh and fish, for both commands
#   make deb        dist/nfqknockd_<version>-1_<arch>.deb   (also rpm, apk)
#   make packages   the three
#   make release    static binaries for linux amd64, arm64, armv7, mips, mipsle,
#                   and the client for darwin amd64 and arm64, windows amd64,
#                   freebsd amd64
#
# Packages are for the machine's GOARCH; another one with PKG_ARCH (a Go
# GOARCH, or arm7 for ARMv7 hard-float): make deb PKG_ARCH=arm64.
# The tools are Go modules, pinned, fetched by `go run` from the module proxy.
NFPM        ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
MD2MAN      ?= $(GO) run github.com/cpuguy83/go-md2man/v2@v2.0.7
DIST        := dist
PKG_ARCH    ?= $(shell $(GO) env GOARCH)
PKG_GOARCH   = $(if $(filter arm7,$(PKG_ARCH)),arm,$(PKG_ARCH))
PKG_BIN      = $(DIST)/pkg-bin-$(PKG_ARCH)
# The package version, which deb, rpm and apk all accept: 1.2.3 on the tag
# v1.2.3, else a pre-release such as 1.2.3-git20251125011000 (see the script).
PKG_VERSION ?= $(shell sh packaging/version.sh)
# Static builds everywhere; GOARM and GOMIPS matter only for arm and mips
# (ARMv7; soft float, as most MIPS routers have no FPU).
CROSS_ENV    = CGO_ENABLED=0 GOOS=linux GOARM=7 GOMIPS=softfloat

.PHONY: man completions pkg-bin deb rpm apk packages release

man:
	@mkdir -p $(DIST)/man
	for m in nfqknockd.8 nfqknock.1; do \
		sed 's/@VERSION@/$(VERSION)/' packaging/$$m.md | $(MD2MAN) -out $(DIST)/man/$$m || exit 1; \
		gzip -9nf $(DIST)/man/$$m || exit 1; \
	done

# The shell completions, made from each command's flags by its hidden
# --completion flag, run on the host (go run): the packages' binaries may
# be for another GOARCH.
completions:
	@mkdir -p $(DIST)/completions
	set -e; for c in nfqknockd nfqknock; do \
		$(GO) run ./cmd/$$c --completion bash > $(DIST)/completions/$$c.bash; \
		$(GO) run ./cmd/$$c --completion zsh > $(DIST)/completions/_$$c; \
		$(GO) run ./cmd/$$c --completion fish > $(DIST)/completions/$$c.fish; \
	done

pkg-bin:
	$(CROSS_ENV) GOARCH=$(PKG_GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PKG_BIN)/nfqknockd ./cmd/nfqknockd
	$(CROSS_ENV) GOARCH=$(PKG_GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PKG_BIN)/nfqknock ./cmd/nfqknock

# One nfpm config for the three formats: packaging/nfpm.yaml.
deb rpm apk: man completions pkg-bin
	VERSION='$(PKG_VERSION)' ARCH=$(PKG_ARCH) BINDIR=$(PKG_BIN) MANDIR=$(DIST)/man COMPDIR=$(DIST)/completions \
		$(NFPM) pkg --packager $@ --config packaging/nfpm.yaml --target $(DIST)/

packages: deb rpm apk

# dist/nfqknockd_<VERSION>_linux_<arch> and nfqknock_..., static, stripped;
# the client also as nfqknock_<VERSION>_<os>_<arch>[.exe] for the admins'
# laptops (CLIENT_TARGETS); one SHA256SUMS_<VERSION> lists them all.
release:
	@mkdir -p $(DIST)
	set -e; for t in amd64:amd64 arm64:arm64 arm:armv7 mips:mips mipsle:mipsle; do \
		goarch=$${t%%:*}; name=$${t#*:}; \
		for cmd in nfqknockd nfqknock; do \
			$(CROSS_ENV) GOARCH=$$goarch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
				-o $(DIST)/$${cmd}_$(VERSION)_linux_$$name ./cmd/$$cmd; \
		done; \
	done
	set -e; for t in $(CLIENT_TARGETS); do \
		goos=$${t%/*}; goarch=$${t#*/}; ext=; [ $$goos != windows ] || ext=.exe; \
		CGO_ENABLED=0 GOOS=$$goos GOARCH=$$goarch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o $(DIST)/nfqknock_$(VERSION)_$${goos}_$$goarch$$ext ./cmd/nfqknock; \
	done
	cd $(DIST) && sha256sum nfqknockd_$(VERSION)_linux_* nfqknock_$(VERSION)_* > SHA256SUMS_$(VERSION)
