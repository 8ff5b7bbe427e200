package cli

import (
	"fmt"
	"strings"
)

// The scripts. Each takes what it needs from c.flags() and c.Commands; none
// needs a completion framework beyond the shell's own (bash: complete and
// compgen, without the bash-completion package's helpers; zsh: compsys's
// _arguments; fish: complete).

// bash returns the bash script: a function that fills COMPREPLY from
// COMP_WORDS and COMP_CWORD, registered with complete -F.
func (c Completion) bash() string {
	var all, valued []string
	var values strings.Builder
	for _, f := range c.flags() {
		all = append(all, f.names()...)
		if !f.value {
			continue
		}
		valued = append(valued, f.names()...)
		pattern := strings.Join(f.names(), " | ")
		switch {
		case f.choices != nil:
			fmt.Fprintf(&values, "\t\t%s) mapfile -t COMPREPLY < <(compgen -W %s -- \"$cur\") ;;\n", pattern, singleQuote(strings.Join(f.choices, " "), false))
		case f.file:
			fmt.Fprintf(&values, "\t\t%s)\n\t\t\tcompopt -o filenames 2>/dev/null\n\t\t\tmapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n\t\t\t;;\n", pattern)
		}
	}
	fn := "_" + c.ident()
	var b strings.Builder
	b.WriteString(c.header("bash"))
	fmt.Fprintf(&b, `%s() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev= flag= w i n=0 cmd= ended=
	local flags=%s
	local valued=%s
	COMPREPLY=()
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	# The flag whose value is being completed: --flag VALUE, -f VALUE,
	# -xf VALUE, --flag=VALUE (which bash splits at "=").
	if [[ $cur == = ]]; then
		flag=$prev cur=
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		flag=${COMP_WORDS[COMP_CWORD - 2]}
	elif [[ $cur == --*=* ]]; then
		flag=${cur%%%%=*} cur=${cur#*=}
	elif [[ " $valued " == *" $prev "* ]]; then
		flag=$prev
	elif [[ $prev == -[!-]?* && " $valued " == *" -${prev: -1} "* ]]; then
		flag=-${prev: -1}
	fi
	if [[ -n $flag ]]; then
		case $flag in
%s		esac
		return 0
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
		return 0
	fi
`, fn, singleQuote(strings.Join(all, " "), false), singleQuote(strings.Join(valued, " "), false), values.String())
	if len(c.Commands) == 0 {
		b.WriteString("\tmapfile -t COMPREPLY < <(compgen -W \"$flags\" -- \"$cur\")\n}\n")
		fmt.Fprintf(&b, "complete -F %s %s\n", fn, c.Name)
		return b.String()
	}
	// The words before: the subcommand and its arguments, skipping the
	// flags and their values.
	b.WriteString(`	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ -z $ended && $w == -- ]]; then
			ended=1
		elif [[ -z $ended && $w == -?* ]]; then
			if [[ $w != *=* && (" $valued " == *" $w "* || ($w == -[!-]?* && " $valued " == *" -${w: -1} "*)) ]]; then
				[[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))
				((i++))
			fi
		elif [[ -z $ended && $w == = ]]; then
			((i++))
		else
			((n++))
			[[ -n $cmd ]] || cmd=$w
		fi
	done
	if ((n == 0)); then
`)
	var names, hosts []string
	for _, s := range c.Commands {
		names = append(names, s.Name)
		for i, a := range s.Args {
			if a == ArgHost {
				hosts = append(hosts, fmt.Sprintf("%s:%d", s.Name, i+1))
			}
		}
	}
	fmt.Fprintf(&b, "\t\tmapfile -t COMPREPLY < <(compgen -W %s -- \"$cur\")\n\t\treturn 0\n\tfi\n", singleQuote(strings.Join(names, " "), false))
	if len(hosts) > 0 {
		fmt.Fprintf(&b, "\tcase $cmd:$n in\n\t%s) mapfile -t COMPREPLY < <(compgen -A hostname -- \"$cur\") ;;\n\tesac\n", strings.Join(hosts, " | "))
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "complete -F %s %s\n", fn, c.Name)
	return b.String()
}

// zsh returns the zsh script: a compsys function with _arguments, for
// $fpath (#compdef) or to be sourced after compinit.
func (c Completion) zsh() string {
	esc := strings.NewReplacer(`'`, `'\''`, `[`, `\[`, `]`, `\]`)
	escMsg := strings.NewReplacer(`'`, `'\''`, `:`, `\:`)
	fn := "_" + c.ident()
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n", c.Name)
	b.WriteString(c.header("zsh"))
	fmt.Fprintf(&b, "%s() {\n\tlocal context state state_descr line\n\ttypeset -A opt_args\n\t_arguments -s -S \\\n", fn)
	for _, f := range c.flags() {
		spec := "'*--" + f.long
		if f.short != "" {
			spec = "'*'{-" + f.short
			if f.value {
				spec += "+"
			}
			spec += ",--" + f.long
		}
		if f.value {
			spec += "="
		}
		if f.short != "" {
			spec += "}'"
		}
		spec += "[" + esc.Replace(f.help) + "]"
		if f.value {
			action := " "
			switch {
			case f.choices != nil:
				action = "(" + strings.Join(f.choices, " ") + ")"
			case f.file:
				action = "_files"
			}
			spec += ":" + escMsg.Replace(f.meta) + ":" + action
		}
		fmt.Fprintf(&b, "\t\t%s' \\\n", spec)
	}
	if len(c.Commands) == 0 {
		b.WriteString("\t\t&& return 0\n}\n")
	} else {
		var cmds []string
		for _, s := range c.Commands {
			cmds = append(cmds, s.Name+`\:"`+strings.NewReplacer(`'`, `'\''`, `"`, `\"`, `:`, `\:`).Replace(s.Help)+`"`)
		}
		fmt.Fprintf(&b, "\t\t'1:command:((%s))' \\\n\t\t'*::argument:->args' && return 0\n", strings.Join(cmds, " "))
		b.WriteString("\tcase $state in\n\targs)\n\t\tcase $words[1] in\n")
		for _, s := range c.Commands {
			if len(s.Args) == 0 {
				continue
			}
			var specs []string
			for i, a := range s.Args {
				action := " "
				if a == ArgHost {
					action = "_hosts"
				}
				specs = append(specs, fmt.Sprintf("'%d:%s:%s'", i+1, a, action))
			}
			fmt.Fprintf(&b, "\t\t%s) _arguments %s ;;\n", s.Name, strings.Join(specs, " "))
		}
		b.WriteString("\t\tesac\n\t\t;;\n\tesac\n}\n")
	}
	fmt.Fprintf(&b, "if [ \"$funcstack[1]\" = %q ]; then\n\t%s \"$@\"\nelse\n\tcompdef %s %s\nfi\n", fn, fn, fn, c.Name)
	return b.String()
}

// fish returns the fish script: complete commands.
func (c Completion) fish() string {
	var b strings.Builder
	b.WriteString(c.header("fish"))
	fmt.Fprintf(&b, "complete -c %s -f\n", c.Name)
	for _, f := range c.flags() {
		line := "complete -c " + c.Name
		if f.short != "" {
			line += " -s " + f.short
		}
		line += " -l " + f.long
		switch {
		case f.value && f.file:
			line += " -r -F"
		case f.value && f.choices != nil:
			line += " -x -a " + singleQuote(strings.Join(f.choices, " "), true)
		case f.value:
			line += " -x"
		}
		fmt.Fprintf(&b, "%s -d %s\n", line, singleQuote(f.help, true))
	}
	var hosts []string
	for _, s := range c.Commands {
		fmt.Fprintf(&b, "complete -c %s -n __fish_use_subcommand -a %s -d %s\n", c.Name, s.Name, singleQuote(s.Help, true))
		if len(s.Args) > 0 && s.Args[0] == ArgHost {
			hosts = append(hosts, s.Name)
		}
	}
	if len(hosts) > 0 {
		fmt.Fprintf(&b, "complete -c %s -n %s -a '(__fish_print_hostnames)'\n", c.Name,
			singleQuote("__fish_seen_subcommand_from "+strings.Join(hosts, " "), true))
	}
	return b.String()
}
