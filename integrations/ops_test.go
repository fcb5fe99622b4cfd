package integrations

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/medialink"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/testutil"
)

const opsSecret = "integrations-ops-test-secret"

func opsCall(t *testing.T, s *Service, method, path, body string, role auth.Role) (int, map[string]any) {
	t.Helper()
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	s.Register(app.Group("/v1/ops", auth.NewVerifier(opsSecret, "", "chatgate").Middleware(), auth.Require(auth.RoleAdmin)))
	tok, _ := auth.Mint(opsSecret, "chatgate", "ops", role, time.Hour, time.Now())
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := app.Test(req, 10000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// The operations API: status, replay (admin only, a bad time or subscription refused with nothing
// changed), dead letters.
func TestOperationsAPI(t *testing.T) {
	rc := newReceiver(t, secretA, nil)
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) {}))
	s := e.start(t, nil)
	e.customer(t, "5511999990008", "text", "oi")
	testutil.Eventually(t, 10*time.Second, "delivery", func() bool { return len(rc.acked()) >= 2 })
	n := len(rc.acked())

	if code, out := opsCall(t, s, "GET", "/v1/ops/integrations", "", auth.RoleAdmin); code != 200 ||
		out["subscriptions"].([]any)[0].(map[string]any)["state"] != "healthy" {
		t.Fatalf("status: %d %v", code, out)
	}
	if code, out := opsCall(t, s, "POST", "/v1/ops/integrations/crm/replay", `{"since":"2020-01-01T00:00:00Z"}`, auth.RoleSupervisor); code != 403 || errCode(out) != "role_required" {
		t.Fatalf("a supervisor replaying: %d %v", code, out)
	}
	if code, out := opsCall(t, s, "POST", "/v1/ops/integrations/crm/replay", `{"since":"yesterday"}`, auth.RoleAdmin); code != 400 || errCode(out) != "invalid_since" {
		t.Fatalf("bad since: %d %v", code, out)
	}
	if code, out := opsCall(t, s, "POST", "/v1/ops/integrations/nope/replay", `{"since":"2020-01-01T00:00:00Z"}`, auth.RoleAdmin); code != 404 || errCode(out) != "subscription_not_found" {
		t.Fatalf("unknown subscription: %d %v", code, out)
	}
	if len(rc.all()) != n {
		t.Fatal("a refused replay sent something")
	}
	code, out := opsCall(t, s, "POST", "/v1/ops/integrations/crm/replay", `{"since":"2020-01-01T00:00:00Z"}`, auth.RoleAdmin)
	if code != 202 || out["replayed"].(float64) != float64(n) {
		t.Fatalf("replay: %d %v", code, out)
	}
	testutil.Eventually(t, 10*time.Second, "the replay delivered", func() bool { return len(rc.acked()) == 2*n })
	if code, out := opsCall(t, s, "GET", "/v1/ops/integrations/crm/dead-letters", "", auth.RoleAdmin); code != 200 || len(out["dead_letters"].([]any)) != 0 {
		t.Fatalf("dead letters: %d %v", code, out)
	}
	if code, out := opsCall(t, s, "DELETE", "/v1/ops/integrations/crm/dead-letters/evt_nope", "", auth.RoleAdmin); code != 404 || errCode(out) != "dead_letter_not_found" {
		t.Fatalf("unknown dead letter: %d %v", code, out)
	}
	if code, _ := opsCall(t, s, "POST", "/v1/ops/integrations/crm/enable", "", auth.RoleAdmin); code != http.StatusNoContent {
		t.Fatalf("enable: %d", code)
	}
}

// testMediaLinks signs the events' media links as the gateway's media endpoint checks them.
var testMediaLinks, _ = medialink.New([]byte("0123456789abcdef0123456789abcdef"), nil)
