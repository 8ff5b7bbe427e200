package main

import "github.com/nfqknockd/nfqknockd/cmd/internal/cli"

// completion describes nfqknockd for its shell completion scripts
// (nfqknockd --completion bash|zsh|fish), made from its flag set.
func completion() cli.Completion {
	fs, _ := newFlagSet(defaultConfig())
	return cli.Completion{Name: "nfqknockd", Flags: fs, Files: []string{"secret-file", "metrics-file", "lock-dir", "state-dir"}}
}
