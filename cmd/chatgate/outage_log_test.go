package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
)

// logfmt reads slog's text records: key=value or key="quoted value".
var logfmt = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// With Redis unreachable, the whole process (its loops, asynq, go-redis itself and the refused
// requests) says so in structured lines, each kind once: not once per loop turn or per request.
func TestRedisOutageIsLoggedOncePerKindNotPerAttempt(t *testing.T) {
	closed := redistest.FreePort(t) // nothing listens there
	t.Setenv("CHATGATE_REDIS_URL", "redis://127.0.0.1:"+strconv.Itoa(closed))
	t.Setenv("CHATGATE_ENV", "development")
	t.Setenv("CHATGATE_WHATSAPP_APP_SECRET", "outage-test-secret")
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testutil.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", "../../configs/chatgate.yaml", "--listen", addr}, &bytes.Buffer{}, &logs)
	}()
	answers := testutil.Within(10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if !answers {
		t.Fatalf("serve does not answer /healthz:\n%s", logs.String())
	}

	// Five seconds of outage: every background loop fails several times over, and 40 webhooks are
	// refused with a 503.
	body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Text: "oi"})
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(125 * time.Millisecond) { // paced over the outage
		req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/whatsapp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, "outage-test-secret"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("webhook during the outage: got %d, want 503", resp.StatusCode)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of cancel")
	}
	http.DefaultClient.CloseIdleConnections()

	seen := map[string]int{}
	problems, fromGoRedis, refused := 0, 0, 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		rec := logfmt.FindAllStringSubmatch(line, -1)
		if !strings.HasPrefix(line, "time=") || len(rec) == 0 {
			t.Errorf("a log line is not structured: %q", line)
			continue
		}
		attrs := map[string]string{}
		for _, kv := range rec {
			v := kv[2]
			if unq, err := strconv.Unquote(v); err == nil {
				v = unq
			}
			attrs[kv[1]] = v
		}
		// Each request's own line (a 503 is a warning) is the access log, one per request by design.
		if attrs["level"] != "WARN" && attrs["level"] != "ERROR" || attrs["msg"] == "request" {
			continue
		}
		problems++
		kind := attrs["component"] + " " + attrs["msg"]
		seen[kind]++
		switch attrs["msg"] {
		case "redis client":
			fromGoRedis++
		case "request failed":
			refused++
		}
	}
	for kind, n := range seen {
		// Shutdown may log asynq's last failure once more; the stop is not the outage.
		if n > 1 {
			t.Errorf("%q logged %d times within seconds of one outage, want once", kind, n)
		}
	}
	if fromGoRedis == 0 {
		t.Error("go-redis's own lines do not come through the gateway's logger")
	}
	if refused != 1 {
		t.Errorf("40 refused webhooks wrote %d warnings, want one", refused)
	}
	if seen["redis redis became unreachable; webhooks and toggles answer 503 until it returns"] != 1 {
		t.Errorf("the outage itself is not logged once:\n%s", logs.String())
	}
	t.Logf("%d warnings and errors over 5 s of outage, %d kinds", problems, len(seen))
	if problems > 30 {
		t.Errorf("%d warnings and errors over 5 s of outage; want a line per kind", problems)
	}
}
