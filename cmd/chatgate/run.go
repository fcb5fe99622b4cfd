package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/logging"
	"github.com/chatgate/chatgate/internal/redisx"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `chatgate — a gateway between WhatsApp/WebChat and contact-center agents

Usage:
  chatgate serve   [--config FILE] [--listen ADDR] [--workers=false]
                                                    HTTP server and asynq workers (default)
  chatgate worker  [--config FILE]                   asynq workers only
  chatgate token   --agent ID [--role agent|supervisor|admin] [--ttl 12h] [--config FILE]
  chatgate config check [FILE]                       validate a configuration (exit 2 when invalid)
  chatgate simulate whatsapp|webchat [flags]         post a signed provider notification to a gateway
  chatgate templates sync [--check]                  list approved templates at the Graph API, diff the config
  chatgate fake-whatsapp [--listen ADDR]             a fake WhatsApp Cloud API for demos and tests
  chatgate healthcheck [--url URL]                   ask a running gateway's /healthz
  chatgate version

The configuration file defaults to $CHATGATE_CONFIG, then configs/chatgate.yaml, then the built-in example.
`

// Exit codes: 0 success, 1 runtime failure, 2 invalid usage or configuration.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2
)

// run is the whole program behind main, testable with its own arguments, context and outputs.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr, modeServe)
	case "worker":
		return runServe(ctx, rest, stdout, stderr, modeWorker)
	case "token":
		return runToken(rest, stdout, stderr)
	case "config":
		if len(rest) == 0 || rest[0] != "check" {
			fmt.Fprint(stderr, usage)
			return exitInvalid
		}
		return runConfigCheck(rest[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "chatgate", version)
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	extra, ok := extraCommands[cmd]
	if ok {
		return extra(ctx, rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return exitInvalid
}

// extraCommands holds subcommands that live in their own files (simulate, fake-whatsapp, …).
var extraCommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{}

// configSource resolves which configuration to read: the flag, $CHATGATE_CONFIG, the conventional
// path, or the built-in example (so a fresh checkout runs with nothing to set up).
func configSource(flagValue string) (path string, raw []byte, err error) {
	path = flagValue
	if path == "" {
		path = os.Getenv("CHATGATE_CONFIG")
	}
	if path == "" {
		if _, statErr := os.Stat("configs/chatgate.yaml"); statErr == nil {
			path = "configs/chatgate.yaml"
		}
	}
	if path == "" {
		return "built-in example", configs.Example, nil
	}
	raw, err = os.ReadFile(path)
	return path, raw, err
}

// loadConfig reads and validates the configuration, printing every problem to stderr.
func loadConfig(flagValue string, stderr io.Writer) (configs.Config, string, bool) {
	path, raw, err := configSource(flagValue)
	if err != nil {
		fmt.Fprintf(stderr, "chatgate: read configuration: %v\n", err)
		return configs.Config{}, path, false
	}
	cfg, err := configs.Parse(raw, os.LookupEnv)
	if err != nil {
		var ps configs.Problems
		if errors.As(err, &ps) {
			fmt.Fprintf(stderr, "chatgate: %s has %d problem(s):\n", path, len(ps))
			for _, p := range ps {
				fmt.Fprintf(stderr, "  %s\n", p)
			}
		} else {
			fmt.Fprintf(stderr, "chatgate: %s: %v\n", path, err)
		}
		return cfg, path, false
	}
	return cfg, path, true
}

// newLogger builds the process logger (buffered: see internal/logging); close the Writer before exit.
// Warnings caused by Redis being away are paced: once, then once a minute per line (see logging).
func newLogger(cfg configs.Log, w io.Writer) (*slog.Logger, *logging.Writer) {
	logger, writer := logging.New(cfg.Level, cfg.Format, w)
	return slog.New(logging.PaceOutages(logger.Handler(), redisx.OutageReminder, redisx.IsUnavailable)), writer
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func runConfigCheck(args []string, stdout, stderr io.Writer) int {
	file := ""
	if len(args) > 0 {
		file = args[0]
	}
	cfg, path, ok := loadConfig(file, stderr)
	if !ok {
		return exitInvalid
	}
	for _, p := range cfg.Deprecations() {
		fmt.Fprintf(stderr, "chatgate: warning: %s\n", p)
	}
	fmt.Fprintf(stdout, "%s: configuration OK\n", path)
	return exitOK
}
