package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

func testConfig(t *testing.T, env string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse(configs.Example, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	// Set after parsing: production would refuse the example's development secrets, which do not
	// matter here.
	cfg.Env = env
	return &cfg
}

func testApp(t *testing.T, cfg *configs.Config, client redis.UniversalClient) *fiber.App {
	t.Helper()
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(), BodyLimit: 1 << 20})
	verifier := auth.NewVerifier(cfg.Auth.JWTSecret, "", cfg.Auth.Issuer)
	Register(app, Options{Config: cfg, Verifier: verifier, Redis: client, Queues: []string{"replies", "templates"}})
	return app
}

type answer struct {
	status int
	header map[string]string
	body   []byte
}

func call(t *testing.T, app *fiber.App, method, path, token, body string) answer {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := app.Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: b, header: map[string]string{}}
	for k := range resp.Header {
		a.header[k] = resp.Header.Get(k)
	}
	return a
}

func (a answer) code(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("not a JSON error: %d %s", a.status, a.body)
	}
	return e.Error.Code
}

func mint(t *testing.T, cfg *configs.Config, agent string, role auth.Role) string {
	t.Helper()
	tok, err := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, agent, role, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestPagesAreServedWithAStrictPolicy(t *testing.T) {
	cfg := testConfig(t, "development")
	app := testApp(t, cfg, redistest.Client(t))
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/console/", "text/html", `<script src="/console/console.js"`},
		{"/console/console.js", "javascript", "/v1/agents/me/events"},
		{"/ops/", "text/html", "Outbound task queues"},
		{"/ops/ops.js", "javascript", "/v1/ops/queues"},
		{"/assets/style.css", "text/css", "--paused"},
		{"/assets/common.js", "javascript", "textContent"},
		{"/assets/i18n.js", "javascript", `"pt-BR"`},
	} {
		a := call(t, app, "GET", tc.path, "", "")
		if a.status != 200 || !strings.Contains(a.header["Content-Type"], tc.contentType) || !strings.Contains(string(a.body), tc.contains) {
			t.Errorf("GET %s: got %d %q (%d bytes), want 200 %s containing %q", tc.path, a.status, a.header["Content-Type"], len(a.body), tc.contentType, tc.contains)
		}
		if csp := a.header["Content-Security-Policy"]; !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy = %q, want script-src 'self'", tc.path, csp)
		}
	}
	if a := call(t, app, "GET", "/console", "", ""); a.status != 301 || a.header["Location"] != "/console/" {
		t.Errorf("GET /console: got %d Location %q, want 301 to /console/", a.status, a.header["Location"])
	}
	for _, path := range []string{"/console/nope.js", "/assets/../web.go", "/ops/missing/", "/assets/axe.min.js"} {
		if a := call(t, app, "GET", path, "", ""); a.status != 404 {
			t.Errorf("GET %s: got %d %s, want 404", path, a.status, a.body)
		}
	}
}

// serveLoopback serves app on a loopback port, so requests reach it from 127.0.0.1 as a developer's
// browser does (app.Test's connection has no address).
func serveLoopback(t *testing.T, app *fiber.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return "http://" + ln.Addr().String()
}

func callURL(t *testing.T, method, url, body string, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: b, header: map[string]string{}}
}

func TestDevelopmentSignIn(t *testing.T) {
	cfg := testConfig(t, "development")
	base := serveLoopback(t, testApp(t, cfg, redistest.Client(t)))
	verifier := auth.NewVerifier(cfg.Auth.JWTSecret, "", cfg.Auth.Issuer)

	a := callURL(t, "GET", base+"/console/dev-agents", "", nil)
	var agents struct {
		Agents []struct {
			ID       string   `json:"id"`
			Channels []string `json:"channels"`
		} `json:"agents"`
	}
	if err := json.Unmarshal(a.body, &agents); a.status != 200 || err != nil || len(agents.Agents) != len(cfg.Agents) {
		t.Fatalf("dev-agents: %d %s", a.status, a.body)
	}
	if got := agents.Agents[0]; got.ID != "ana" || strings.Join(got.Channels, ",") != "webchat,whatsapp" {
		t.Errorf("first agent: got %+v, want ana on webchat,whatsapp", got)
	}

	for _, tc := range []struct {
		body      string
		agent     string
		role      auth.Role
		status    int
		errorCode string
	}{
		{`{"agent":"ana"}`, "ana", auth.RoleAgent, 200, ""},
		{`{"agent":"bruno","role":"agent"}`, "bruno", auth.RoleAgent, 200, ""},
		{`{"agent":"bruno","role":"supervisor"}`, "", "", 403, "dev_signin_agent_only"},
		{`{"agent":"ops","role":"admin"}`, "", "", 403, "dev_signin_agent_only"},
		{`{"agent":"ana","role":"admin"}`, "", "", 403, "dev_signin_agent_only"},
		{`{"agent":"zoe"}`, "", "", 404, "agent_not_found"},
		{`{"agent":"ana","role":"root"}`, "", "", 403, "dev_signin_agent_only"},
		{`{"agent":""}`, "", "", 422, "validation_failed"},
		{`{"agent":"../x","role":"admin"}`, "", "", 422, "validation_failed"},
		{`{"agent":`, "", "", 400, "invalid_json"},
	} {
		a := callURL(t, "POST", base+"/console/dev-token", tc.body, nil)
		if a.status != tc.status {
			t.Errorf("dev-token %s: got %d %s, want %d", tc.body, a.status, a.body, tc.status)
			continue
		}
		if tc.errorCode != "" {
			if got := a.code(t); got != tc.errorCode {
				t.Errorf("dev-token %s: code %q, want %q", tc.body, got, tc.errorCode)
			}
			continue
		}
		var tok struct {
			Token string `json:"token"`
		}
		_ = json.Unmarshal(a.body, &tok)
		p, err := verifier.Verify(tok.Token)
		if err != nil || p.Agent != tc.agent || p.Role != tc.role {
			t.Errorf("dev-token %s: token verifies as %+v, %v; want %s/%s", tc.body, p, err, tc.agent, tc.role)
		}
	}
}

// The development sign-in answers only a TCP peer on this host that no proxy forwarded: a client
// elsewhere (app.Test's connection is from 0.0.0.0) or one a local proxy forwards gets 403.
func TestDevelopmentSignInAnswersOnlyLoopbackClients(t *testing.T) {
	cfg := testConfig(t, "development")
	app := testApp(t, cfg, redistest.Client(t))
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/console/dev-token", `{"agent":"ana"}`},
		{"GET", "/console/dev-agents", ""},
	} {
		if a := call(t, app, tc.method, tc.path, "", tc.body); a.status != 403 || a.code(t) != "dev_signin_loopback_only" {
			t.Errorf("%s %s from a remote address: got %d %s, want 403 dev_signin_loopback_only", tc.method, tc.path, a.status, a.body)
		}
	}
	base := serveLoopback(t, app)
	for _, h := range []map[string]string{{"X-Forwarded-For": "203.0.113.7"}, {"X-Real-IP": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"},
		{"Host": "evil.example"}, {"Host": "evil.example:8080"}, {"Host": "127.0.0.1.evil.example"}} { // a rebound name sends its own Host
		if a := callURL(t, "POST", base+"/console/dev-token", `{"agent":"ana"}`, h); a.status != 403 || a.code(t) != "dev_signin_loopback_only" {
			t.Errorf("dev-token through a proxy or to another host (%v): got %d %s, want 403 dev_signin_loopback_only", h, a.status, a.body)
		}
	}
	port := base[strings.LastIndexByte(base, ':'):]
	for _, host := range []string{"localhost" + port, "LOCALHOST", "127.0.0.2" + port, "[::1]" + port} {
		if a := callURL(t, "POST", base+"/console/dev-token", `{"agent":"ana"}`, map[string]string{"Host": host}); a.status != 200 {
			t.Errorf("dev-token addressed to %s: got %d %s, want 200", host, a.status, a.body)
		}
	}
}

// Without an explicit env: development (a configuration built without env) there is no sign-in.
func TestDevelopmentSignInNeedsAnExplicitDevelopment(t *testing.T) {
	cfg := testConfig(t, "")
	base := serveLoopback(t, testApp(t, cfg, redistest.Client(t)))
	if a := callURL(t, "POST", base+"/console/dev-token", `{"agent":"ana"}`, nil); a.status != 404 || a.code(t) != "route_not_found" {
		t.Errorf("dev-token without env: got %d %s, want 404 route_not_found", a.status, a.body)
	}
}

func TestDevelopmentSignInDoesNotExistInProduction(t *testing.T) {
	cfg := testConfig(t, "production")
	app := testApp(t, cfg, redistest.Client(t))
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/console/dev-token", `{"agent":"ana"}`},
		{"POST", "/console/dev-token", `{"agent":"ops","role":"admin"}`},
		{"GET", "/console/dev-agents", ""},
	} {
		a := call(t, app, tc.method, tc.path, "", tc.body)
		if a.status != 404 || a.code(t) != "route_not_found" || strings.Contains(string(a.body), "token\"") {
			t.Errorf("production %s %s: got %d %s, want 404 route_not_found", tc.method, tc.path, a.status, a.body)
		}
	}
	// The pages themselves stay: they sign in with a token from elsewhere.
	if a := call(t, app, "GET", "/console/", "", ""); a.status != 200 {
		t.Errorf("production GET /console/: %d", a.status)
	}
}

func TestOpsNeedsAnAdmin(t *testing.T) {
	cfg := testConfig(t, "development")
	app := testApp(t, cfg, redistest.Client(t))
	for _, tc := range []struct {
		token     string
		status    int
		errorCode string
	}{
		{"", 401, "invalid_token"},
		{"not-a-jwt", 401, "invalid_token"},
		{mint(t, cfg, "ana", auth.RoleAgent), 403, "role_required"},
		{mint(t, cfg, "bruno", auth.RoleSupervisor), 403, "role_required"},
	} {
		for _, path := range []string{"/v1/ops/queues", "/v1/ops/servers", "/v1/ops/queues/templates/tasks", "/v1/ops/retention"} {
			a := call(t, app, "GET", path, tc.token, "")
			if a.status != tc.status || a.code(t) != tc.errorCode {
				t.Errorf("GET %s with %q: got %d %s, want %d %s", path, tc.token, a.status, a.body, tc.status, tc.errorCode)
			}
		}
	}
}

func TestOpsListsQueuesAndActsOnArchivedTasks(t *testing.T) {
	cfg := testConfig(t, "development")
	client := redistest.Client(t)
	app := testApp(t, cfg, client)
	admin := mint(t, cfg, "ops", auth.RoleAdmin)

	// Before any task, the configured queues are listed with zero counts.
	var qs struct {
		Queues []queueJSON `json:"queues"`
	}
	a := call(t, app, "GET", "/v1/ops/queues", admin, "")
	if err := json.Unmarshal(a.body, &qs); a.status != 200 || err != nil || len(qs.Queues) != 2 || qs.Queues[0].Queue != "replies" || qs.Queues[1].Size != 0 {
		t.Fatalf("empty queues: %d %s", a.status, a.body)
	}

	// A task nobody processes here, archived as a permanently failed task would be.
	enq := asynq.NewClientFromRedisClient(client)
	// Its id is shaped like an outbound send's ("msg:<id>"), whose colon the ops page sends as %3A.
	info, err := enq.Enqueue(asynq.NewTask("test:archived", []byte(`{"to":"+5511999990001"}`)), asynq.Queue("templates"),
		asynq.TaskID("msg:01TESTTASK"))
	if err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspectorFromRedisClient(client)
	if err := inspector.ArchiveTask("templates", info.ID); err != nil {
		t.Fatal(err)
	}
	a = call(t, app, "GET", "/v1/ops/queues", admin, "")
	_ = json.Unmarshal(a.body, &qs)
	if q := qs.Queues[1]; q.Queue != "templates" || q.Archived != 1 || q.Size != 1 || len(q.History) != historyDays ||
		q.History[0].Date != time.Now().UTC().Format("2006-01-02") {
		t.Fatalf("templates after archiving: %+v", q)
	}
	a = call(t, app, "GET", "/v1/ops/queues/templates/tasks?state=archived", admin, "")
	var tasks struct {
		Tasks []taskJSON `json:"tasks"`
	}
	if err := json.Unmarshal(a.body, &tasks); err != nil || len(tasks.Tasks) != 1 || tasks.Tasks[0].ID != info.ID || tasks.Tasks[0].Type != "test:archived" {
		t.Fatalf("archived tasks: %d %s", a.status, a.body)
	}
	if strings.Contains(string(a.body), "5511999990001") {
		t.Errorf("the task list shows the payload: %s", a.body)
	}

	taskPath := "/v1/ops/queues/templates/tasks/" + strings.ReplaceAll(info.ID, ":", "%3A") // as encodeURIComponent
	before := redistest.Snapshot(t, client)
	for _, tc := range []struct {
		method, path, errorCode string
		status                  int
	}{
		{"POST", "/v1/ops/queues/nowhere/tasks/" + info.ID + "/run", "queue_not_found", 404},
		{"POST", "/v1/ops/queues/templates/tasks/no-such-task/run", "task_not_found", 404},
		{"POST", "/v1/ops/queues/replies/tasks/" + info.ID + "/run", "task_not_found", 404}, // replies has never held a task
		{"POST", "/v1/ops/queues/templates/tasks/bad%20id/run", "invalid_id", 400},
		{"DELETE", "/v1/ops/queues/templates/tasks/no-such-task", "task_not_found", 404},
		{"GET", "/v1/ops/queues/templates/tasks?state=pending", "invalid_state", 400},
		{"GET", "/v1/ops/queues/nowhere/tasks", "queue_not_found", 404},
	} {
		a := call(t, app, tc.method, tc.path, admin, "")
		if a.status != tc.status || a.code(t) != tc.errorCode {
			t.Errorf("%s %s: got %d %s, want %d %s", tc.method, tc.path, a.status, a.body, tc.status, tc.errorCode)
		}
	}
	if after := redistest.Snapshot(t, client); after != before {
		t.Error("a rejected ops request changed Redis")
	}

	if a := call(t, app, "POST", taskPath+"/run", admin, ""); a.status != 200 {
		t.Fatalf("run: %d %s", a.status, a.body)
	}
	if got, err := inspector.GetTaskInfo("templates", info.ID); err != nil || got.State != asynq.TaskStatePending {
		t.Fatalf("after run: %+v %v, want pending", got, err)
	}
	// A pending task is already due: running it again is refused and changes nothing.
	if a := call(t, app, "POST", taskPath+"/run", admin, ""); a.status != 409 || a.code(t) != "task_state" {
		t.Errorf("run a pending task: got %d %s, want 409 task_state", a.status, a.body)
	}
	if err := inspector.ArchiveTask("templates", info.ID); err != nil {
		t.Fatal(err)
	}
	if a := call(t, app, "DELETE", taskPath, admin, ""); a.status != 200 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if _, err := inspector.GetTaskInfo("templates", info.ID); err == nil {
		t.Error("the deleted task is still there")
	}
	if a := call(t, app, "DELETE", taskPath, admin, ""); a.status != 404 || a.code(t) != "task_not_found" {
		t.Errorf("delete twice: got %d %s, want 404 task_not_found", a.status, a.body)
	}
}

func TestOpsListsConnectedServers(t *testing.T) {
	cfg := testConfig(t, "development")
	client := redistest.Client(t)
	app := testApp(t, cfg, client)
	srv := asynq.NewServerFromRedisClient(client, asynq.Config{Concurrency: 2, Queues: map[string]int{"templates": 1},
		LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.NewServeMux()); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	admin := mint(t, cfg, "ops", auth.RoleAdmin)
	// The server announces itself with its first heartbeat, shortly after Start.
	var servers []serverJSON
	testutil.EventuallyNoError(t, 10*time.Second, "the server listed", func() error {
		a := call(t, app, "GET", "/v1/ops/servers", admin, "")
		var out struct {
			Servers []serverJSON `json:"servers"`
		}
		if err := json.Unmarshal(a.body, &out); a.status != 200 || err != nil {
			t.Fatalf("servers: %d %s", a.status, a.body)
		}
		if servers = out.Servers; len(servers) != 1 {
			return fmt.Errorf("listed: %s", a.body)
		}
		return nil
	})
	if s := servers[0]; s.Concurrency != 2 || s.Queues["templates"] != 1 || s.Status != "active" {
		t.Errorf("server: %+v", s)
	}
}

// TestOpsShowsHeldRetention: conversations retention holds (the routing sweeper's held ZSET) are
// counted, with the age of the oldest hold.
func TestOpsShowsHeldRetention(t *testing.T) {
	cfg := testConfig(t, "development")
	client := redistest.Client(t)
	app := testApp(t, cfg, client)
	admin := mint(t, cfg, "ops", auth.RoleAdmin)
	read := func() map[string]any {
		a := call(t, app, "GET", "/v1/ops/retention", admin, "")
		var out map[string]any
		if err := json.Unmarshal(a.body, &out); a.status != 200 || err != nil {
			t.Fatalf("retention: %d %s", a.status, a.body)
		}
		return out
	}
	if out := read(); out["held"] != 0.0 || out["oldest_hold"] != nil {
		t.Errorf("nothing held: %v", out)
	}
	since := time.Now().Add(-90 * time.Minute)
	key := "cg:{" + cfg.Tenant + "}:retention:held"
	client.ZAdd(context.Background(), key, redis.Z{Score: float64(since.UnixMilli()), Member: "C1"},
		redis.Z{Score: float64(since.Add(time.Hour).UnixMilli()), Member: "C2"})
	out := read()
	if age, _ := out["oldest_hold_seconds"].(float64); out["held"] != 2.0 || age < 90*60 || age > 95*60 {
		t.Errorf("two held, the oldest 90 minutes ago: %v", out)
	}
}

// The pages run under script-src 'self' and style-src 'self': no inline script or style in the
// HTML, no style attribute built by the scripts, and no HTML sink for strings from the network.
func TestPagesNeedNoInlineScriptOrStyle(t *testing.T) {
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	for _, page := range []string{"static/console/index.html", "static/ops/index.html"} {
		html, err := static.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{" style=", "<style", " onclick=", " onload=", "javascript:"} {
			if strings.Contains(string(html), bad) {
				t.Errorf("%s contains %q", page, bad)
			}
		}
		if m := inlineScript.FindString(string(html)); m != "" {
			t.Errorf("%s has an inline script: %q", page, m)
		}
	}
	for _, script := range []string{"static/console/console.js", "static/ops/ops.js", "static/assets/common.js", "static/assets/i18n.js"} {
		js, err := static.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", ".style.", `"style"`, "cssText"} {
			if strings.Contains(string(js), bad) {
				t.Errorf("%s uses %s", script, bad)
			}
		}
	}
}
