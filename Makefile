# nfqknockd: build, test, demo, install, bench, fuzz.
GO       ?= go
PREFIX   ?= /usr/local
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin

.PHONY: all build test demo install uninstall bench fuzz vet clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/nfqknockd ./cmd/nfqknockd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/nfqknock ./cmd/nfqknock

vet:
	$(GO) vet ./...

# The tests: unit tests everywhere, and as root the network-namespace tests
# (real kernel, real packets). Prints how many tests ran, passed, skipped.
# Packages run one at a time (-p 1): the flood tests load both cores.
test: vet
	bash internal/testsummary.sh $(GO) test -count=1 -p 1 -v -timeout 20m ./...

# A knock opening a guarded port, in two throw-away network namespaces.
demo: build
	bash internal/demo/demo.sh $(BIN)/nfqknockd

# Benchmarks (root; a few minutes on 2 cores): the per-packet path (ns/op,
# allocs/op), then SYN floods from 1 to 1,000,000 spoofed sources in
# throw-away network namespaces. Prints one table and writes bench.json.
# Extra floodbench flags: make bench BENCHFLAGS='--daemon-args "--queues 2"'
bench: build
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./knock/ ./queue/ ./cmd/nfqknockd/ > $(BIN)/gobench.txt || { cat $(BIN)/gobench.txt; exit 1; }
	$(GO) build -o $(BIN)/floodbench ./internal/floodbench
	$(BIN)/floodbench --daemon $(BIN)/nfqknockd --gobench $(BIN)/gobench.txt --json bench.json $(BENCHFLAGS)

# Each fuzz target for FUZZTIME (go test -fuzz); crashers land in the
# package's testdata/fuzz/ and are kept as regression inputs.
FUZZTIME ?= 1m
FUZZ_TARGETS := knock:FuzzTracker knock:FuzzParseRange knock:FuzzParsePorts knock:FuzzParseSecrets \
	queue:FuzzParse queue:FuzzWalk cmd/nfqknockd:FuzzParseFlags
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
	rm -rf $(BIN) bench.json
