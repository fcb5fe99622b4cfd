// Command chatgate is the gateway between messaging providers and contact-center agents.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// gcPercent replaces Go's default GOGC of 100. The gateway's live heap is small (tens of MB) and it
// allocates at the rate of requests, so at 100 it collects many times a second; at 400 collection
// costs a quarter as much CPU, for tens of MB more (BENCHMARKS.md). GOGC in the environment still decides.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
