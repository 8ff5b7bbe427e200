package main

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
)

// The places of nfqknock's own files. They are found by the program itself,
// never by a shell expanding ~: ssh on Windows runs a ProxyCommand without
// a shell.
const (
	appDir         = "nfqknock"
	configName     = "config"
	secretFileName = "secrets"
)

// sys is what the places depend on: the environment and the system
// (runtime.GOOS), given so that the tests can play any system.
type sys struct {
	getenv func(string) string
	goos   string
}

// configDir returns the directory of nfqknock's files: on Windows
// %AppData%\nfqknock; elsewhere, macOS included, $XDG_CONFIG_HOME/nfqknock,
// or ~/.config/nfqknock when XDG_CONFIG_HOME is unset or not absolute (as
// the XDG base directory specification says). macOS gets ~/.config rather
// than ~/Library/Application Support, whose space every ssh config line and
// shell command would have to quote.
func (s sys) configDir() (string, error) {
	if s.goos == "windows" {
		d := s.getenv("AppData")
		if d == "" {
			return "", errors.New("%AppData% is not set")
		}
		return filepath.Join(d, appDir), nil
	}
	if d := s.getenv("XDG_CONFIG_HOME"); d != "" && strings.HasPrefix(d, "/") {
		return filepath.Join(d, appDir), nil
	}
	home := s.getenv("HOME")
	if home == "" {
		return "", errors.New("$HOME is not set")
	}
	return filepath.Join(home, ".config", appDir), nil
}

// home returns the home directory: %USERPROFILE% on Windows, $HOME
// elsewhere; "" when unset.
func (s sys) home() string {
	if s.goos == "windows" {
		return s.getenv("USERPROFILE")
	}
	return s.getenv("HOME")
}

// expandHome replaces a leading "~/" (also "~\" on Windows) or a lone "~"
// in path by the home directory. Other paths, "~user/..." among them, and
// every path when the home directory is unknown, stay as they are.
func (s sys) expandHome(path string) string {
	home := s.home()
	if home == "" || !strings.HasPrefix(path, "~") {
		return path
	}
	rest := path[1:]
	if rest == "" {
		return home
	}
	if rest[0] == '/' || (s.goos == "windows" && rest[0] == '\\') {
		return filepath.Join(home, rest[1:])
	}
	return path
}

// resolve returns path with ~ expanded; a relative result is taken
// relative to dir (when dir is not "").
func (s sys) resolve(path, dir string) string {
	path = s.expandHome(path)
	if dir == "" || path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// The default places as the help shows them.
var defaultConfigHelp, defaultSecretsHelp = helpPlaces(runtime.GOOS)

// xdgHelp ends the help's words on the config outside Windows.
var xdgHelp = helpXDG(runtime.GOOS)

// helpXDG returns what the help says of $XDG_CONFIG_HOME on goos.
func helpXDG(goos string) string {
	if goos == "windows" {
		return ""
	}
	return "\n~/.config stands for $XDG_CONFIG_HOME when that is set."
}

// helpPlaces returns how the help names the default config and secret
// file on the system goos.
func helpPlaces(goos string) (config, secrets string) {
	if goos == "windows" {
		return `%AppData%\nfqknock\` + configName, `%AppData%\nfqknock\` + secretFileName
	}
	return "~/.config/nfqknock/" + configName, "~/.config/nfqknock/" + secretFileName
}
