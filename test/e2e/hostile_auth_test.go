package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/testutil"
)

// signedClaims signs any claims with the gateway's secret: the signature is good, the claims are the attack.
func signedClaims(t *testing.T, claims jwt.MapClaims) map[string]string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"Authorization": "Bearer " + tok}
}

// TestHostileTokensAndSignInAreRefusedAndChangeNothing: tokens signed with the right secret whose
// claims are wrong (a string exp, a lifetime over auth.max_token_ttl, an iat in the future, an agent
// that is not configured), and the development sign-in asked for more than an agent token or reached
// through a proxy. Each is refused with its JSON error and Redis holds nothing new afterwards.
func TestHostileTokensAndSignInAreRefusedAndChangeNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{agents: 2})
	r1, r2 := e.replicas[0].url(), e.replicas[1].url()
	now := time.Now()
	claims := func(sub, role string, extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": sub, "role": role, "iss": "chatgate"}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	hour := now.Add(time.Hour).Unix()
	cases := []hostile{
		{name: "exp as a string", method: "GET", path: "/v1/agents/me/presence", headers: signedClaims(t, claims("a01", "agent", jwt.MapClaims{"exp": "9999999999"})), status: 401, code: "invalid_token"},
		{name: "admin token with exp as a string", method: "GET", path: "/v1/ops/queues", headers: signedClaims(t, claims("ops", "admin", jwt.MapClaims{"iat": now.Unix(), "exp": "9999999999"})), status: 401, code: "invalid_token"},
		{name: "iat as a string", method: "GET", path: "/v1/agents/me/presence", headers: signedClaims(t, claims("a01", "agent", jwt.MapClaims{"iat": "0", "exp": hour})), status: 401, code: "invalid_token"},
		{name: "exp null", method: "GET", path: "/v1/agents/me/presence", headers: signedClaims(t, claims("a01", "agent", jwt.MapClaims{"exp": nil})), status: 401, code: "invalid_token"},
		{name: "token living 48 hours", method: "GET", path: "/v1/agents/me/presence", headers: signedClaims(t, claims("a01", "agent", jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(48 * time.Hour).Unix()})), status: 401, code: "invalid_token"},
		{name: "admin token living ten years", method: "GET", path: "/v1/ops/queues", headers: signedClaims(t, claims("ops", "admin", jwt.MapClaims{"iat": now.Unix(), "exp": now.AddDate(10, 0, 0).Unix()})), status: 401, code: "invalid_token"},
		{name: "token without iat expiring in a year", method: "GET", path: "/v1/agents/me/presence", headers: signedClaims(t, claims("a01", "agent", jwt.MapClaims{"exp": now.AddDate(1, 0, 0).Unix()})), status: 401, code: "invalid_token"},
		{name: "token issued an hour in the future", method: "GET", path: "/v1/agents/me/presence", headers: signedClaims(t, claims("a01", "agent", jwt.MapClaims{"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})), status: 401, code: "invalid_token"},
		{name: "agent token for an agent not configured", method: "GET", path: "/v1/agents/me/presence", headers: bearer(t, "nobody", auth.RoleAgent), status: 401, code: "invalid_token"},
		{name: "agent token for an agent not configured, toggling", method: "PUT", path: "/v1/agents/me/channels/whatsapp", body: []byte(`{"state":"online"}`), headers: bearer(t, "nobody", auth.RoleAgent), status: 401, code: "invalid_token"},
		{name: "stream for an agent not configured", method: "GET", path: "/v1/agents/nobody/events", headers: bearer(t, "nobody", auth.RoleAgent), status: 401, code: "invalid_token"},
		{name: "dev token with role admin", method: "POST", path: "/console/dev-token", body: []byte(`{"agent":"a01","role":"admin"}`), status: 403, code: "dev_signin_agent_only"},
		{name: "dev token with role supervisor", method: "POST", path: "/console/dev-token", body: []byte(`{"agent":"a01","role":"supervisor"}`), status: 403, code: "dev_signin_agent_only"},
		{name: "dev token for an operator who is no agent", method: "POST", path: "/console/dev-token", body: []byte(`{"agent":"ops"}`), status: 404, code: "agent_not_found"},
		{name: "dev token through a proxy", method: "POST", path: "/console/dev-token", body: []byte(`{"agent":"a01"}`), headers: map[string]string{"X-Forwarded-For": "203.0.113.9"}, status: 403, code: "dev_signin_loopback_only"},
		{name: "dev token claiming loopback through a proxy", method: "POST", path: "/console/dev-token", body: []byte(`{"agent":"a01"}`), headers: map[string]string{"X-Real-IP": "127.0.0.1"}, status: 403, code: "dev_signin_loopback_only"},
		{name: "dev agents through a proxy", method: "GET", path: "/console/dev-agents", headers: map[string]string{"Forwarded": "for=198.51.100.1"}, status: 403, code: "dev_signin_loopback_only"},
	}
	ignored := []string{"asynq:servers", "asynq:workers", prefix + "retention", prefix + "board:"} // background: see hostile_test.go
	for i, c := range cases {
		base := []string{r1, r2}[i%2]
		before := snapshot(t, e.client, ignored)
		r, err := e.do(c.method, base+c.path, c.body, c.headers)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if r.status != c.status || r.code != c.code {
			t.Errorf("%s: got %d %q, want %d %q (%s)", c.name, r.status, r.code, c.status, c.code, truncate(r.body))
		}
		if leaked := leaks(r.body); leaked != "" {
			t.Errorf("%s: the answer echoes a secret (%s)", c.name, leaked)
		}
		if after := snapshot(t, e.client, ignored); after != before {
			t.Errorf("%s: Redis changed:\n%s", c.name, diff(before, after))
		}
	}
	// The same claims, well formed, are accepted: the refusals above are about what is wrong.
	for name, h := range map[string]map[string]string{
		"numeric dates, a day":      signedClaims(t, claims("a01", "agent", jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix()})),
		"no iat, an hour":           signedClaims(t, claims("a01", "agent", jwt.MapClaims{"exp": hour})),
		"an operator's admin token": bearer(t, "ops", auth.RoleAdmin),
	} {
		path := "/v1/agents/me/presence"
		if name == "an operator's admin token" {
			path = "/v1/ops/queues"
		}
		if r, err := e.do("GET", r1+path, nil, h); err != nil || r.status != 200 {
			t.Errorf("%s: got %d %s %v, want 200", name, r.status, truncate(r.body), err)
		}
	}
	if r, err := e.do("POST", r1+"/console/dev-token", []byte(`{"agent":"a01"}`), nil); err != nil || r.status != 200 {
		t.Errorf("dev token for a configured agent from this host: %d %s %v, want 200", r.status, truncate(r.body), err)
	}
	t.Logf("%d hostile tokens and sign-ins, each refused as expected and none changed Redis", len(cases))
}

// TestSafeByDefault: a configuration without env is production. A gateway started from the
// end-to-end file with its env line removed serves no development sign-in to anyone; the production
// check names every placeholder of the example with its variable; chatgate token refuses an agent
// that is not configured.
func TestSafeByDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{replicas: 1, agents: 1})
	var redisYAML string
	if e.cluster != nil {
		redisYAML = fmt.Sprintf("  addrs: [%s]\n", strings.Join(e.cluster.Addrs, ", "))
	} else {
		redisYAML = fmt.Sprintf("  url: %q\n", e.redis.URL())
	}
	raw := e.configYAML(redisYAML)
	withoutEnv := strings.Replace(raw, "env: development\n", "", 1)
	if withoutEnv == raw {
		t.Fatal("the end-to-end configuration has no env line to remove")
	}
	path := filepath.Join(e.dir, "no-env.yaml")
	if err := writeFile(path, withoutEnv); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	prod := e.startCmd("no-env", exec.Command(binary, "serve", "--listen", addr), path)
	prod.addr = addr
	e.waitHTTP(prod.url()+"/readyz", 200)
	ignored := []string{"asynq:servers", "asynq:workers", prefix + "retention", prefix + "board:"} // background: see hostile_test.go
	for _, c := range []hostile{
		{name: "admin dev token without env", method: "POST", path: "/console/dev-token", body: []byte(`{"agent":"a01","role":"admin"}`), status: 404, code: "route_not_found"},
		{name: "agent dev token without env", method: "POST", path: "/console/dev-token", body: []byte(`{"agent":"a01"}`), status: 404, code: "route_not_found"},
		{name: "dev agents without env", method: "GET", path: "/console/dev-agents", status: 404, code: "route_not_found"},
	} {
		before := snapshot(t, e.client, ignored)
		r, err := e.do(c.method, prod.url()+c.path, c.body, c.headers)
		if err != nil || r.status != c.status || r.code != c.code {
			t.Errorf("%s: got %d %q %v, want %d %q", c.name, r.status, r.code, err, c.status, c.code)
		}
		if after := snapshot(t, e.client, ignored); after != before {
			t.Errorf("%s: Redis changed:\n%s", c.name, diff(before, after))
		}
	}
	// Logs are buffered: wait for the start-up lines.
	if !testutil.Within(3*time.Second, func() bool { return strings.Contains(prod.logs.String(), `"env":"production"`) }) ||
		strings.Contains(prod.logs.String(), "DEVELOPMENT MODE") {
		t.Errorf("the gateway without env does not say it runs as production:\n%s", prod.logs.String())
	}
	if !testutil.Within(3*time.Second, func() bool { return strings.Contains(e.replicas[0].logs.String(), "DEVELOPMENT MODE") }) {
		t.Errorf("the development gateway does not warn that its sign-in is on")
	}

	run := func(env []string, args ...string) (int, string) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(cleanEnv(), env...)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	code, out := run([]string{"CHATGATE_ENV=production"}, "config", "check", "../../configs/chatgate.yaml")
	if code != 2 {
		t.Errorf("config check in production on the example: exit %d, want 2\n%s", code, out)
	}
	for _, want := range []string{"CHATGATE_AUTH_JWT_SECRET", "CHATGATE_WHATSAPP_APP_SECRET", "CHATGATE_WHATSAPP_VERIFY_TOKEN",
		"whatsapp.numbers[0].access_token: is a development placeholder (or empty); in production set CHATGATE_WHATSAPP_NUMBERS_100200300_ACCESS_TOKEN",
		"CHATGATE_WEBCHAT_SITES_SHOP_SECRET", "CHATGATE_REDIS_URL"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check in production does not name %s:\n%s", want, out)
		}
	}
	if code, out := run(nil, "token", "--config", e.config, "--agent", "nobody"); code != 2 || !strings.Contains(out, `agent "nobody" is not configured`) {
		t.Errorf("chatgate token --agent nobody: exit %d %q, want 2 and a clear message", code, out)
	}
	if code, out := run(nil, "token", "--config", e.config, "--agent", agentID(1), "--ttl", "25h"); code != 2 || !strings.Contains(out, "auth.max_token_ttl") {
		t.Errorf("chatgate token --ttl 25h: exit %d %q, want 2 naming auth.max_token_ttl", code, out)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
