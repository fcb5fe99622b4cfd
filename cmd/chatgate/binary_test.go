package main

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
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
	var logs testutil.Buffer
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
	ready := testutil.Within(2*time.Second-time.Since(start), func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
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

	drainUnderSIGTERM(t, bin)
}

// drainUnderSIGTERM runs the binary with a shutdown delay and has a request in flight when SIGTERM
// arrives: /readyz must answer 503 while the process still accepts, and the request must complete
// with 200 after the listener has closed. The slow request is a real WhatsApp webhook whose body the
// client sends in two halves around the signal: no test-only route exists in the binary, and an
// event stream would not do, as shutdown ends those on purpose.
func drainUnderSIGTERM(t *testing.T, bin string) {
	raw := strings.Replace(string(configs.Example), "shutdown_grace: 15s", "shutdown_grace: 6s", 1)
	raw = strings.Replace(raw, "shutdown_delay: 0s", "shutdown_delay: 1s", 1)
	cfgPath := filepath.Join(t.TempDir(), "chatgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Parse([]byte(raw), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	cmd := exec.Command(bin, "serve")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "CHATGATE_LISTEN="+addr, "CHATGATE_CONFIG="+cfgPath)
	var logs testutil.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{}) // closed when the process has exited; waitErr is then set
	go func() { waitErr = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Kill() // harmless once it has exited
		<-done
	}()
	// A fresh connection per probe: a kept-alive one would be closed by the drain, not refused.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	readyz := func() int {
		resp, err := probe.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitUntil(t, 5*time.Second, "ready", func() bool { return readyz() == 200 }, &logs)

	body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi"})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	half := len(body) / 2
	// Expect: 100-continue makes the server say when it has read the headers and begun this request.
	fmt.Fprintf(conn, "POST /webhooks/whatsapp HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\nX-Hub-Signature-256: %s\r\nExpect: 100-continue\r\n\r\n",
		len(body), simulate.SignWhatsApp(body, cfg.WhatsApp.AppSecret))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	answers := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(answers, nil); err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("the server did not begin the request (100 Continue): %v %v\n%s", resp, err, logs.String())
	}
	if _, err := conn.Write(body[:half]); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Second, "/readyz 503 during the shutdown delay", func() bool { return readyz() == 503 }, &logs)
	waitUntil(t, 3*time.Second, "the listener closing for the drain", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}, &logs)
	select {
	case <-done:
		t.Fatalf("the process exited (%v) with a request in flight:\n%s", waitErr, logs.String())
	default:
	}

	if _, err := conn.Write(body[half:]); err != nil {
		t.Fatalf("finish the in-flight request: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(answers, nil)
	if err != nil {
		t.Fatalf("no answer to the in-flight request: %v\n%s", err, logs.String())
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("in-flight webhook during the drain: got %d %s, want 200", resp.StatusCode, answer)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", waitErr, logs.String())
		}
	case <-time.After(cfg.ShutdownGrace + 2*time.Second):
		t.Fatalf("no exit within the grace of SIGTERM:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "http drained") {
		t.Errorf("the drain was not logged:\n%s", logs.String())
	}
}

// waitUntil is testutil.Eventually with the process' logs in the failure.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool, logs *testutil.Buffer) {
	t.Helper()
	if !testutil.Within(within, cond) {
		t.Fatalf("not %s within %v; logs:\n%s", what, within, logs.String())
	}
}
