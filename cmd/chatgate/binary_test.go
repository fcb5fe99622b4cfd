package main

import (
	"debug/elf"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/redistest"
)

// TestStaticBinaryStartsFastAndStopsOnSIGTERM builds the binary as the Dockerfile does (CGO_ENABLED=0),
// runs the README's command from an empty directory (built-in example, embedded store), and checks
// readiness time, the container health check and a clean SIGTERM.
func TestStaticBinaryStartsFastAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "chatgate")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary needs a dynamic loader; the container image has none")
		}
	}
	f.Close()

	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	cmd := exec.Command(bin, "serve")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "CHATGATE_LISTEN="+addr, "CHATGATE_CONFIG=")
	var logs syncBuffer
	cmd.Stderr = &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	ready := false
	for time.Since(start) < 2*time.Second {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ready = true
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !ready {
		t.Fatalf("not ready within 2s of start; logs:\n%s", logs.String())
	}
	t.Logf("ready after %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(logs.String(), "EMBEDDED IN-MEMORY REDIS") {
		t.Error("embedded mode was not announced at start-up")
	}

	hc := exec.Command(bin, "healthcheck")
	hc.Env = append(os.Environ(), "CHATGATE_LISTEN="+addr)
	if out, err := hc.CombinedOutput(); err != nil {
		t.Fatalf("healthcheck against the running binary: %v %s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10s of SIGTERM")
	}
	hc = exec.Command(bin, "healthcheck", "--url", "http://"+addr+"/healthz")
	if err := hc.Run(); err == nil {
		t.Error("healthcheck succeeded against a stopped gateway")
	}
}
