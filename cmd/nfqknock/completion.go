package main

import "github.com/nfqknockd/nfqknockd/cmd/internal/cli"

// completion describes nfqknock for its shell completion scripts
// (nfqknock --completion bash|zsh|fish), made from its flag set, with its
// subcommands (TestCompletionCommands checks them against parseCommand).
// show's HOST may be left out.
func completion() cli.Completion {
	var (
		o options
		v flagValues
	)
	return cli.Completion{
		Name:  "nfqknock",
		Flags: newFlagSet(&o, &v),
		Files: []string{"secret-file", "config"},
		Commands: []cli.Subcommand{
			{Name: "show", Help: "print the current OPEN: and CLOSE: sequences (of HOST's config section)", Args: []string{cli.ArgHost}},
			{Name: "open", Help: "knock the open sequence at HOST (--spa: send an SPA packet)", Args: []string{cli.ArgHost}},
			{Name: "close", Help: "knock the close sequence at HOST (--spa: send an SPA packet)", Args: []string{cli.ArgHost}},
			{Name: "proxy", Help: "knock open (or SPA), carry stdin and stdout to HOST:PORT, knock close", Args: []string{cli.ArgHost, cli.ArgPort}},
			{Name: "doctor", Help: "check that knocking opens PORT of HOST, and say why not", Args: []string{cli.ArgHost, cli.ArgPort}},
		},
	}
}
