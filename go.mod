module github.com/nfqknockd/nfqknockd

go 1.26.8

require (
	github.com/florianl/go-nfqueue/v2 v2.0.2
	github.com/google/go-cmp v0.7.0
	github.com/google/nftables v0.3.0
	github.com/mdlayher/netlink v1.11.2
	github.com/spf13/pflag v1.1.0
	golang.org/x/sys v0.43.0
)

require (
	github.com/mdlayher/socket v0.6.0 // indirect
	golang.org/x/net v0.53.0 // indirect
	golang.org/x/sync v0.20.0 // indirect
)
