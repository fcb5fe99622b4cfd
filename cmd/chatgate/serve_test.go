package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
)

// testGateway is a gateway serving on 127.0.0.1:0 inside the test process.
type testGateway struct {
	g      *gateway
	base   string
	cancel context.CancelFunc
	done   chan error
	logs   *testutil.Buffer
}

func exampleConfig(t *testing.T, env map[string]string) configs.Config {
	t.Helper()
	cfg, err := configs.Parse(configs.Example, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownGrace = 5 * time.Second
	return cfg
}

// startTestGateway wires a gateway; before may add routes before it starts serving.
func startTestGateway(t *testing.T, cfg configs.Config, before func(*gateway)) *testGateway {
	t.Helper()
	return startTestGatewayOn(t, cfg, nil, before)
}

// startTestGatewayOn serves on ln (nil: a new loopback port), for a test that must know its address
// before the configuration is read, such as a site's allowed origin.
func startTestGatewayOn(t *testing.T, cfg configs.Config, ln net.Listener, before func(*gateway)) *testGateway {
	t.Helper()
	logs := &testutil.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := newGateway(context.Background(), cfg, modeServe, logger)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(g)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	// Every answer the test gets from this gateway through http.DefaultClient must match the
	// OpenAPI document (reported when the test ends).
	t.Cleanup(apiCheck.Watch(ln.Addr().String(), t).Stop)
	ctx, cancel := context.WithCancel(context.Background())
	tg := &testGateway{g: g, base: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { tg.done <- g.run(ctx, ln) }()
	t.Cleanup(tg.stop)
	return tg
}

func (tg *testGateway) stop() {
	tg.cancel()
	<-tg.done
	tg.done <- nil // later calls return at once
}

func adminToken(t *testing.T, cfg configs.Config) string {
	t.Helper()
	tok, err := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ops", auth.RoleAdmin, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func do(t *testing.T, method, url, token string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct {
			Code      string `json:"code"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if e.Error.RequestID == "" {
		t.Errorf("error body has no request_id: %s", body)
	}
	return e.Error.Code
}

func TestEmbeddedGatewayServesOperationsEndpoints(t *testing.T) {
	cfg := exampleConfig(t, nil)
	tg := startTestGateway(t, cfg, func(g *gateway) {
		g.app.Get("/test/panic", func(*fiber.Ctx) error { panic("boom") })
	})
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := do(t, "GET", tg.base+path, "", nil); code != 200 {
			t.Errorf("GET %s: got %d %s, want 200", path, code, body)
		}
	}
	if code, body := do(t, "GET", tg.base+"/metrics", "", nil); code != 401 || errorCode(t, body) != "invalid_token" {
		t.Errorf("GET /metrics without a token: got %d %s, want 401 invalid_token", code, body)
	}
	code, body := do(t, "GET", tg.base+"/metrics", adminToken(t, cfg), nil)
	if code != 200 {
		t.Fatalf("GET /metrics as admin: got %d", code)
	}
	for _, metric := range []string{"go_goroutines", "process_resident_memory_bytes", "chatgate_http_requests_total"} {
		if !bytes.Contains(body, []byte(metric)) {
			t.Errorf("/metrics lacks %s", metric)
		}
	}

	code, body = do(t, "GET", tg.base+"/no/such/path", "", nil)
	if code != 404 || errorCode(t, body) != "route_not_found" {
		t.Errorf("unknown path: got %d %s, want 404 route_not_found", code, body)
	}
	// A body declared far over the limit is refused from its header, before anything is read (one
	// up to twice the limit is read and refused on a live connection: internal/httpx's test).
	code, body = postDeclaringLength(t, tg.base, "/healthz", 2*cfg.HTTP.BodyLimit+1)
	if code != 413 || errorCode(t, body) != "body_too_large" {
		t.Errorf("oversized body: got %d %s, want 413 body_too_large", code, body)
	}
	code, body = do(t, "GET", tg.base+"/test/panic", "", nil)
	if code != 500 || errorCode(t, body) != "internal" {
		t.Errorf("panicking handler: got %d %s, want 500 internal", code, body)
	}
	if !strings.Contains(tg.logs.String(), "handler panicked") {
		t.Error("the panic was not logged")
	}
	if code, _ := do(t, "GET", tg.base+"/healthz", "", nil); code != 200 {
		t.Errorf("after a panic /healthz: got %d, want 200 (process up)", code)
	}
}

func TestReadinessFollowsRealRedis(t *testing.T) {
	srv := redistest.StartServer(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": srv.URL()})
	tg := startTestGateway(t, cfg, nil)
	if code, _ := do(t, "GET", tg.base+"/readyz", "", nil); code != 200 {
		t.Fatalf("readyz with Redis up: got %d, want 200", code)
	}
	srv.Stop(t)
	stopped := time.Now()
	waitStatus(t, tg.base+"/readyz", 503, 2*time.Second)
	t.Logf("readyz turned 503 %v after Redis stopped", time.Since(stopped).Round(time.Millisecond))
	for i := 0; i < 20; i++ { // requests during the outage must not each log it
		do(t, "GET", tg.base+"/readyz", "", nil)
	}
	if code, _ := do(t, "GET", tg.base+"/healthz", "", nil); code != 200 {
		t.Errorf("healthz during the outage: got %d, want 200 (the process is up)", code)
	}
	srv.Start(t)
	waitStatus(t, tg.base+"/readyz", 200, 5*time.Second)
	if got := strings.Count(tg.logs.String(), "redis became unreachable"); got != 1 {
		t.Errorf("outage logged %d times, want once", got)
	}
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	// fasthttp's worker-pool cleaner sleeps out its interval after Stop; it exits by itself. Its
	// Date-header updater is started once per process, by whichever test serves first.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	entered := make(chan struct{})
	tg := startTestGateway(t, cfg, func(g *gateway) {
		g.app.Get("/test/slow", func(c *fiber.Ctx) error {
			close(entered)
			time.Sleep(700 * time.Millisecond) // the request the shutdown finds in flight
			return c.SendString("finished")
		})
	})
	var wg sync.WaitGroup
	var code int
	var body []byte
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, body = do(t, "GET", tg.base+"/test/slow", "", nil)
	}()
	<-entered
	tg.cancel() // what SIGTERM does through signal.NotifyContext
	wg.Wait()
	if code != 200 || string(body) != "finished" {
		t.Fatalf("in-flight request during shutdown: got %d %q, want 200 finished", code, body)
	}
	if err := <-tg.done; err != nil {
		t.Fatalf("run returned %v", err)
	}
	tg.done <- nil
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(tg.base, "http://"), 200*time.Millisecond); err == nil {
		t.Error("the listener still accepts connections after shutdown")
	}
	logs := tg.logs.String()
	for _, step := range []string{"shutting down", "http drained", "redis closed", "stopped"} {
		if !strings.Contains(logs, step) {
			t.Errorf("shutdown did not log %q", step)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// postDeclaringLength announces a body over the limit and reads the answer without sending the body,
// as the server refuses it from the header alone (a client still writing would see a reset instead).
func postDeclaringLength(t *testing.T, base, path string, length int) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, length)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func waitStatus(t *testing.T, url string, want int, within time.Duration) {
	t.Helper()
	testutil.EventuallyNoError(t, within, fmt.Sprintf("GET %s to answer %d", url, want), func() error {
		if code, _ := do(t, "GET", url, "", nil); code != want {
			return fmt.Errorf("still %d", code)
		}
		return nil
	})
}

func TestPresenceIsServedByTheGateway(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	tg := startTestGateway(t, cfg, nil)
	tok, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ana", auth.RoleAgent, time.Hour, time.Now())
	code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", tok, strings.NewReader(`{"state":"online"}`))
	if code != 200 || !strings.Contains(string(body), `"status":"online"`) {
		t.Fatalf("login through the gateway: got %d %s", code, body)
	}
}

func TestWorkerModeProcessesTasks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
	redisURL := redistest.URL(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redisURL})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := newGateway(context.Background(), cfg, modeWorker, logger)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	g.tasks.Handle("test:echo", asynq.HandlerFunc(func(_ context.Context, task *asynq.Task) error {
		done <- string(task.Payload())
		return nil
	}))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- g.run(ctx, ln) }()

	opt, _ := redis.ParseURL(redisURL)
	producer := redis.NewClient(opt)
	client := asynq.NewClientFromRedisClient(producer)
	if _, err := client.Enqueue(asynq.NewTask("test:echo", []byte("hello")), asynq.Queue(tasks.QueueDefault)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got != "hello" {
			t.Errorf("task payload: got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not process the task within 10s")
	}
	if code, _ := do(t, "GET", "http://"+ln.Addr().String()+"/healthz", "", nil); code != 200 {
		t.Errorf("worker /healthz: got %d", code)
	}
	if code, _ := do(t, "GET", "http://"+ln.Addr().String()+"/v1/pause-reasons", "", nil); code != 404 {
		t.Errorf("worker serves the agent API: got %d, want 404", code)
	}
	cancel()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	client.Close()
	producer.Close()
	http.DefaultClient.CloseIdleConnections()
}

// enqueueTest puts a task on the gateway's Redis and returns its id and an inspector of that Redis.
func enqueueTest(t *testing.T, redisURL, taskType string, opts ...asynq.Option) (string, *asynq.Inspector) {
	t.Helper()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	t.Cleanup(func() { rc.Close() })
	info, err := asynq.NewClientFromRedisClient(rc).Enqueue(asynq.NewTask(taskType, nil), append(opts, asynq.Queue(tasks.QueueDefault))...)
	if err != nil {
		t.Fatal(err)
	}
	return info.ID, asynq.NewInspectorFromRedisClient(rc)
}

// HTTP and asynq used to get the whole grace each, one after the other, so a stuck request and a
// stuck task made shutdown take twice the grace. Now the total stays within it and the task is
// handed back to the queue for another worker.
func TestShutdownEndsWithinTheGrace(t *testing.T) {
	redisURL := redistest.URL(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redisURL})
	cfg.ShutdownGrace = 2 * time.Second
	httpEntered, taskEntered, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	tg := startTestGateway(t, cfg, func(g *gateway) {
		g.app.Get("/test/stuck", func(c *fiber.Ctx) error {
			close(httpEntered)
			<-release
			return c.SendString("late")
		})
		g.tasks.Handle("test:stuck", asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
			close(taskEntered)
			<-ctx.Done()
			return ctx.Err()
		}))
	})
	id, inspector := enqueueTest(t, redisURL, "test:stuck")
	<-taskEntered
	requestDone := make(chan struct{})
	go func() {
		defer close(requestDone)
		if resp, err := http.Get(tg.base + "/test/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-httpEntered

	start := time.Now()
	tg.cancel()
	if err := <-tg.done; err != nil {
		t.Fatalf("run returned %v", err)
	}
	tg.done <- nil
	took := time.Since(start)
	close(release)
	<-requestDone
	t.Logf("shutdown took %v with a grace of %v", took.Round(time.Millisecond), cfg.ShutdownGrace)
	if took > cfg.ShutdownGrace+200*time.Millisecond {
		t.Errorf("shutdown took %v, more than the grace of %v", took, cfg.ShutdownGrace)
	}
	info, err := inspector.GetTaskInfo(tasks.QueueDefault, id)
	if err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("the unfinished task: got %+v %v, want it handed back as pending", info, err)
	}
	if logs := tg.logs.String(); !strings.Contains(logs, "http did not drain in time") || !strings.Contains(logs, "handing them back") {
		t.Errorf("shutdown did not log the stuck request and task:\n%s", logs)
	}
	http.DefaultClient.CloseIdleConnections()
}

// asynq's own shutdown timeout is short (the hand-back window); a task still running when shutdown
// begins gets what the HTTP drain leaves of the grace, so a one-second send completes.
func TestShutdownLetsActiveTasksUseTheRestOfTheGrace(t *testing.T) {
	redisURL := redistest.URL(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redisURL})
	cfg.ShutdownGrace = 2 * time.Second
	entered, finished := make(chan struct{}), make(chan error, 1)
	tg := startTestGateway(t, cfg, func(g *gateway) {
		g.tasks.Handle("test:slow", asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
			close(entered)
			select {
			case <-time.After(time.Second):
				finished <- nil
				return nil
			case <-ctx.Done():
				finished <- ctx.Err()
				return ctx.Err()
			}
		}))
	})
	if b := shutdownBudget(cfg.ShutdownGrace); b.handBack >= time.Second {
		t.Fatalf("hand-back window %v: the test needs it shorter than the task", b.handBack)
	}
	id, inspector := enqueueTest(t, redisURL, "test:slow", asynq.Retention(time.Hour))
	<-entered
	tg.stop()
	if err := <-finished; err != nil {
		t.Fatalf("the active task was cut short: %v", err)
	}
	info, err := inspector.GetTaskInfo(tasks.QueueDefault, id)
	if err != nil || info.State != asynq.TaskStateCompleted {
		t.Errorf("the task: got %+v %v, want completed", info, err)
	}
}
