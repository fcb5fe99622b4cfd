package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

const brokenConfig = `
listen: ":8080"
auth: { jwt_secret: "short" }
pause_reasons: [{ id: lunch, label: Lunch }]
queues:
  - { id: sales, channels: [whatsapp], strategy: fastest, bogus: 1 }
agents:
  - { id: ana, queues: [nowhere], channels: { whatsapp: { capacity: 0 } } }
`

func TestConfigCheckListsEveryProblemAndExits2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(path, []byte(brokenConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", path}, &stdout, &stderr); code != exitInvalid {
		t.Fatalf("config check on a broken file: exit %d, want %d", code, exitInvalid)
	}
	// The unknown key is reported with its path alongside the validation problems, not instead of them.
	for _, want := range []string{"queues[0].bogus: unknown key (line 6)", "auth.jwt_secret", "queues[0].strategy", "agents[0].queues[0]", "agents[0].channels[whatsapp].capacity"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("config check output lacks %q:\n%s", want, stderr.String())
		}
	}

	// serve reports the same list and exits before binding its port.
	var serveErr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if code := run(ctx, []string{"serve", "--config", path, "--listen", "127.0.0.1:0"}, &bytes.Buffer{}, &serveErr); code != exitInvalid {
		t.Fatalf("serve with a broken file: exit %d, want %d", code, exitInvalid)
	}
	if serveErr.String() != stderr.String() {
		t.Errorf("serve's problems differ from config check's:\n%s\nvs\n%s", serveErr.String(), stderr.String())
	}
	if strings.Contains(serveErr.String(), "listening") {
		t.Error("serve listened despite an invalid configuration")
	}
}

func TestConfigCheckAcceptsTheExample(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", "../../configs/chatgate.yaml"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("config check on the example: exit %d: %s", code, stderr.String())
	}
}

// TestConfigCheckWarnsOfRemovedSettings: events.retention, which nothing read, still loads (old
// configurations keep working) but is named as ignored.
func TestConfigCheckWarnsOfRemovedSettings(t *testing.T) {
	raw := strings.Replace(string(configs.Example), "events:\n", "events:\n  retention: 15m\n", 1)
	if raw == string(configs.Example) {
		t.Fatal("the example has no events section to add the setting to")
	}
	path := filepath.Join(t.TempDir(), "old.yaml")
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", path}, &stdout, &stderr); code != exitOK {
		t.Fatalf("config check with events.retention: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "warning: events.retention: is ignored") {
		t.Errorf("no warning naming events.retention: %q", stderr.String())
	}
	stderr.Reset()
	run(context.Background(), []string{"config", "check", "../../configs/chatgate.yaml"}, &stdout, &stderr)
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("the example draws a warning: %q", stderr.String())
	}
}

func TestTokenMintsAVerifiableToken(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"token", "--agent", "ana", "--role", "supervisor", "--ttl", "1h", "--config", "../../configs/chatgate.yaml"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("token: exit %d: %s", code, stderr.String())
	}
	cfg, _ := configs.Parse(configs.Example, func(string) (string, bool) { return "", false })
	p, err := auth.NewVerifier(cfg.Auth.JWTSecret, "", cfg.Auth.Issuer).Verify(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if p.Agent != "ana" || p.Role != auth.RoleSupervisor {
		t.Fatalf("got %+v, want ana/supervisor", p)
	}
	for _, args := range [][]string{{"token"}, {"token", "--agent", "ana", "--role", "root"}} {
		if code := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); code != exitInvalid {
			t.Errorf("%v: exit %d, want %d", args, code, exitInvalid)
		}
	}
}

func TestUnknownCommandExits2(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &bytes.Buffer{}, &stderr); code != exitInvalid {
		t.Fatalf("exit %d, want %d", code, exitInvalid)
	}
	if !strings.Contains(stderr.String(), "Usage") {
		t.Error("no usage printed for an unknown command")
	}
}

func TestFakeWhatsAppCommandServesTheConfiguredNumbers(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out testutil.Buffer
	go func() {
		done <- run(ctx, []string{"fake-whatsapp", "--listen", addr, "--config", "../../configs/chatgate.yaml"}, &out, io.Discard)
	}()
	body := `{"messaging_product":"whatsapp","to":"5511999990001","type":"text","text":{"body":"hi"}}`
	var resp *http.Response
	testutil.EventuallyNoError(t, 5*time.Second, "the fake provider answering", func() (err error) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v21.0/100200300/messages", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer dev-only-token")
		req.Header.Set("Content-Type", "application/json")
		resp, err = http.DefaultClient.Do(req)
		return err
	})
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "wamid.") {
		t.Fatalf("send to the fake: %d %s", resp.StatusCode, b)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("fake-whatsapp exit %d", code)
	}
}

// The parser refuses development secrets in production (configs tests); serve must act on it: exit
// non-zero with the list, before binding its port.
func TestServeInProductionWithDevelopmentSecretsExits(t *testing.T) {
	t.Setenv("CHATGATE_ENV", "production")
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	var stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code := run(ctx, []string{"serve", "--config", "../../configs/chatgate.yaml", "--listen", addr}, &bytes.Buffer{}, &stderr); code != exitInvalid {
		t.Fatalf("serve in production with the example's secrets: exit %d, want %d\n%s", code, exitInvalid, stderr.String())
	}
	for _, want := range []string{"auth.jwt_secret: is a development placeholder (or empty); in production set CHATGATE_AUTH_JWT_SECRET", "whatsapp.app_secret", "webchat.sites[0].secret", "redis.url: is empty"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve's message lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "listening") {
		t.Error("serve listened in production with development secrets")
	}
}

func TestVersionPrintsTheBuildVersion(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &stdout, &bytes.Buffer{}); code != exitOK {
		t.Fatalf("version: exit %d", code)
	}
	if got := stdout.String(); got != "chatgate "+version+"\n" {
		t.Fatalf("version printed %q, want %q", got, "chatgate "+version+"\n")
	}
}

// worker through run(): starts on a real Redis, answers /healthz on its listen address, serves no
// agent API, and stops with exit 0 when its context ends (SIGTERM, in main).
func TestWorkerCommandServesHealthAndStopsOnCancel(t *testing.T) {
	t.Setenv("CHATGATE_REDIS_URL", redistest.URL(t))
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testutil.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"worker", "--config", "../../configs/chatgate.yaml", "--listen", addr}, &bytes.Buffer{}, &logs)
	}()
	healthy := testutil.Within(5*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		select {
		case code := <-done:
			t.Fatalf("worker exited %d before answering:\n%s", code, logs.String())
		default:
		}
		return false
	})
	if !healthy {
		t.Fatalf("worker /healthz not 200 within 5s:\n%s", logs.String())
	}
	if code, _ := do(t, "GET", "http://"+addr+"/v1/pause-reasons", "", nil); code != 404 {
		t.Errorf("worker serves the agent API: got %d, want 404", code)
	}
	// Info lines reach stderr within logging.FlushInterval.
	logged := func() bool {
		return strings.Contains(logs.String(), "mode=worker") && strings.Contains(logs.String(), "workers started")
	}
	if !testutil.Within(2*time.Second, logged) {
		t.Errorf("worker did not log its mode and start:\n%s", logs.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("worker exit %d after cancel, want 0:\n%s", code, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop within 20s of cancel")
	}
	if _, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		t.Error("the worker still listens after stopping")
	}
	http.DefaultClient.CloseIdleConnections()
}
