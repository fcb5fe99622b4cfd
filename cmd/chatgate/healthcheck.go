package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func init() {
	extraCommands["healthcheck"] = runHealthcheck
}

// runHealthcheck asks a running gateway's /healthz; the container's HEALTHCHECK uses it because the
// image has no shell or curl.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("healthcheck", stderr)
	url := fs.String("url", "", "health URL (default http://127.0.0.1<port of CHATGATE_LISTEN>/healthz)")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if *url == "" {
		listen := os.Getenv("CHATGATE_LISTEN")
		if listen == "" {
			listen = ":8080"
		}
		*url = "http://" + loopbackAddr(listen) + "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return exitInvalid
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return exitFailure
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "healthcheck: status", resp.StatusCode)
		return exitFailure
	}
	fmt.Fprintln(stdout, "healthy")
	return exitOK
}

// loopbackAddr turns a listen address such as ":8080" or "0.0.0.0:8080" into one to dial locally.
func loopbackAddr(listen string) string {
	for i := len(listen) - 1; i >= 0; i-- {
		if listen[i] == ':' {
			host := listen[:i]
			if host == "" || host == "0.0.0.0" || host == "[::]" {
				host = "127.0.0.1"
			}
			return host + listen[i:]
		}
	}
	return listen
}
