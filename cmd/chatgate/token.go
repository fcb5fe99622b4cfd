package main

import (
	"fmt"
	"io"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
)

// runToken mints a JWT with the configured secret, for development, scripts and tests.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token", stderr)
	agent := fs.String("agent", "", "agent id (the token's sub)")
	roleName := fs.String("role", "agent", "agent, supervisor or admin")
	ttl := fs.Duration("ttl", 0, "lifetime (default auth.default_ttl)")
	configFile := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if *agent == "" {
		fmt.Fprintln(stderr, "chatgate token: --agent is required")
		return exitInvalid
	}
	role, err := auth.ParseRole(*roleName)
	if err != nil {
		fmt.Fprintln(stderr, "chatgate token:", err)
		return exitInvalid
	}
	cfg, _, ok := loadConfig(*configFile, stderr)
	if !ok {
		return exitInvalid
	}
	if *ttl == 0 {
		*ttl = cfg.Auth.DefaultTTL
	}
	// The gateway would refuse these tokens; say so now rather than hand out one that fails later.
	if _, known := cfg.Agent(*agent); role == auth.RoleAgent && !known {
		fmt.Fprintf(stderr, "chatgate token: agent %q is not configured (agents: in the configuration); the gateway refuses agent tokens for it\n", *agent)
		return exitInvalid
	}
	if *ttl < 0 || *ttl > cfg.Auth.MaxTokenTTL {
		fmt.Fprintf(stderr, "chatgate token: --ttl %v is outside 0…auth.max_token_ttl (%v); the gateway refuses longer tokens\n", *ttl, cfg.Auth.MaxTokenTTL)
		return exitInvalid
	}
	token, err := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, *agent, role, *ttl, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "chatgate token:", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, token)
	return exitOK
}
