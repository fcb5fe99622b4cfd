package widget_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/redisx"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/outbound"
	"github.com/chatgate/chatgate/outbound/webchat"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/webhooks"
	webchathook "github.com/chatgate/chatgate/webhooks/webchat"
	"github.com/chatgate/chatgate/widget"
)

const (
	jwtSecret   = "agent-secret-for-tests"
	shopSecret  = "shop-secret-for-tests"
	hookSecret  = "hooked-secret-for-tests"
	shopOrigin  = "https://shop.example"
	blogOrigin  = "https://blog.example"
	waitTimeout = 10 * time.Second
)

func testConfig(callbackURL string) *configs.Config {
	return &configs.Config{
		Auth:         configs.Auth{JWTSecret: jwtSecret},
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}},
		Queues: []configs.Queue{
			{ID: "sales", Channels: []string{"whatsapp", "webchat"}, Strategy: "longest_idle", OfferTimeout: time.Minute},
			{ID: "support", Channels: []string{"webchat"}, Strategy: "longest_idle", OfferTimeout: time.Minute},
		},
		Agents: []configs.Agent{
			{ID: "cat", Queues: []string{"support"}, Channels: map[string]configs.AgentChannel{"webchat": {Capacity: 3}}},
			{ID: "ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 3}, "webchat": {Capacity: 3}}},
		},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100200300", Queue: "sales"}}},
		WebChat: configs.WebChat{TimestampTolerance: 5 * time.Minute, VisitorTokenTTL: time.Hour, MaxMessageLength: 50,
			MaxAttachments: 2, VisitorRate: 5, IPRate: 1000, Sites: []configs.Site{
				{ID: "shop", Queue: "support", Secret: shopSecret, AllowedOrigins: []string{shopOrigin}},
				{ID: "blog", Queue: "sales", Secret: "blog-secret-for-tests", AllowedOrigins: []string{blogOrigin}},
				{ID: "hooked", Queue: "support", Secret: hookSecret, CallbackURL: callbackURL},
			}},
		Events: configs.Events{MaxLen: 100},
	}
}

type env struct {
	t        testing.TB
	url      string
	cfg      *configs.Config
	client   *redis.Client
	router   *routing.Router
	presence *presence.Store
	sender   *webchat.Sender
}

type envOptions struct {
	callbackURL string
	workers     bool // run the asynq workers (callbacks)
	env         string
	ipRate      int
	visitorRate int
}

// newEnv runs the gateway's WebChat parts on a real listener and a real Redis: the signed webhook,
// the widget, routing and presence, the agents' reply endpoint with the WebChat sender, and when
// asked the asynq workers that POST callbacks.
func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	client := redistest.Client(t)
	cfg := testConfig(o.callbackURL)
	cfg.Env = o.env
	if o.ipRate > 0 {
		cfg.WebChat.IPRate = o.ipRate
	}
	if o.visitorRate > 0 {
		cfg.WebChat.VisitorRate = o.visitorRate
	}
	ks := keyspace.New("t")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	ctx := context.Background()

	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clock.Real{}, Logger: logger})
	router := routing.NewRouter(client, ks, topology.New(cfg), routing.Options{Clock: clock.Real{}, Logger: logger, Pauser: ps})
	ps.AddListener(router)
	t.Cleanup(router.Shutdown)
	if err := router.SyncCapacity(ctx); err != nil {
		t.Fatal(err)
	}
	enqueuer := asynq.NewClientFromRedisClient(client)
	events := widget.NewEventLog(client, ks, cfg.Events.MaxLen, time.Hour)
	sender := webchat.NewSender(events, router, enqueuer, cfg, webchat.SenderOptions{Logger: logger, MaxRetry: 2, Timeout: 2 * time.Second})
	router.AddConversationListener(sender)
	if o.workers {
		srv := tasks.NewServer(client, logger, tasks.Options{Concurrency: 2, ShutdownTimeout: 2 * time.Second,
			RetryDelay: func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond }})
		sender.Register(srv)
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
	}

	app := httpx.NewApp(httpx.Options{Logger: logger, Registerer: reg, Unavailable: redisx.IsUnavailable, BodyLimit: 64 << 10})
	provider := webchathook.New(cfg.WebChat.Sites, webchathook.Options{Tolerance: cfg.WebChat.TimestampTolerance, MaxMessageLength: cfg.WebChat.MaxMessageLength,
		MaxAttachments: cfg.WebChat.MaxAttachments})
	webhooks.NewHandler("webchat", provider, router, logger, webhooks.NewMetrics(reg)).Register(app)
	visitors := widget.NewHandler(client, ks, cfg, widget.Options{Intake: router, Statuses: router, Events: events, Messages: provider,
		Logger: logger, KeepAlive: time.Second, Tokens: widget.NewTokens(jwtSecret, "", cfg.WebChat.VisitorTokenTTL, nil)})
	visitors.Register(app)
	if err := visitors.Start(); err != nil {
		t.Fatal(err)
	}
	svc := outbound.NewService(router, outbound.NewSequencer(client, ks, enqueuer, router, logger), topology.New(cfg),
		outbound.ServiceOptions{Templates: cfg.WhatsApp.Templates,
			Tasks: outbound.TaskOptions{MaxRetry: cfg.Outbound.MaxRetry, Timeout: cfg.Outbound.SendTimeout}}, logger)
	svc.SetSender("webchat", sender)
	v1 := app.Group("/v1", auth.NewVerifier(jwtSecret, "", "").Middleware())
	routing.NewHandler(router).Register(v1)
	outbound.NewHandler(svc, client, ks).Register(v1)
	widget.NewTypingHandler(router, events).Register(v1)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() {
		visitors.Shutdown()
		_ = app.ShutdownWithTimeout(2 * time.Second)
	})
	return &env{t: t, url: "http://" + ln.Addr().String(), cfg: cfg, client: client, router: router, presence: ps, sender: sender}
}

func (e *env) set(agent string, want presence.State, reason string) {
	e.t.Helper()
	if _, err := e.presence.Set(context.Background(), agent, "webchat", want, reason, agent, presence.CauseToggle); err != nil {
		e.t.Fatalf("presence %s %s: %v", agent, want, err)
	}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (r response) code() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (e *env) do(method, path string, body []byte, headers map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// webhook posts a signed WebChat webhook.
func (e *env) webhook(m simulate.WebChatMessage, secret string, at time.Time) response {
	e.t.Helper()
	body := simulate.WebChatBody(m)
	ts, sig := simulate.SignWebChat(body, secret, at)
	return e.do(http.MethodPost, "/webhooks/webchat", body, map[string]string{webchathook.HeaderTimestamp: ts, webchathook.HeaderSignature: sig})
}

// session starts a widget session from origin and returns its token and visitor id.
func (e *env) session(site, origin string) (token, visitor string) {
	e.t.Helper()
	r := e.do(http.MethodPost, "/webchat/v1/sessions", []byte(`{"site":"`+site+`","name":"Maria"}`), map[string]string{"Origin": origin})
	if r.status != http.StatusCreated {
		e.t.Fatalf("session: got %d %v", r.status, r.body)
	}
	return r.body["token"].(string), r.body["visitor_id"].(string)
}

func (e *env) send(token, origin, body string) response {
	e.t.Helper()
	return e.do(http.MethodPost, "/webchat/v1/messages", []byte(body), map[string]string{"Authorization": "Bearer " + token, "Origin": origin})
}

func agentToken(t testing.TB, agent string) string {
	t.Helper()
	tok, err := auth.Mint(jwtSecret, "", agent, auth.RoleAgent, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// offered waits for a card offered to agent and returns it.
func (e *env) offered(agent string) routing.Card {
	e.t.Helper()
	var card routing.Card
	testutil.Eventually(e.t, waitTimeout, "a card offered to "+agent, func() bool {
		cards, err := e.router.Cards(context.Background(), agent)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, c := range cards {
			if c.State == routing.CardOffered {
				card = c
				return true
			}
		}
		return false
	})
	return card
}

func (e *env) waiting(queue string) int64 {
	e.t.Helper()
	qs, err := e.router.QueuesStatus(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, q := range qs {
		if q.ID != queue {
			continue
		}
		for _, c := range q.Channels {
			if c.Channel == "webchat" {
				return c.Waiting
			}
		}
	}
	return 0
}

// tenantState renders the tenant's keys (routing, presence, visitor streams). Rate-limiter and asynq
// bookkeeping live outside the tenant prefix and are left out.
func tenantState(t testing.TB, c *redis.Client) string {
	t.Helper()
	var keep []string
	for _, line := range strings.Split(redistest.Snapshot(t, c), "\n") {
		if strings.HasPrefix(line, "cg:{t}:") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// sse is a visitor's open event stream.
type sse struct {
	t      testing.TB
	resp   *http.Response
	events chan sseEvent
}

type sseEvent struct {
	id, typ string
	data    widget.Event
}

func (e *env) stream(token, lastID string) *sse {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+"/webchat/v1/events?token="+token, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		e.t.Fatalf("stream: got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{t: e.t, resp: resp, events: make(chan sseEvent, 64)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &cur.data)
			case line == "" && cur.typ != "":
				s.events <- cur
				cur = sseEvent{}
			}
		}
	}()
	e.t.Cleanup(s.close)
	return s
}

func (s *sse) close() { _ = s.resp.Body.Close() }

func (s *sse) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("stream ended")
		}
		return ev
	case <-time.After(waitTimeout):
		s.t.Fatal("timed out waiting for a stream event")
	}
	return sseEvent{}
}

// none checks that no event arrives within a short window (used after the expected ones).
func (s *sse) none(within time.Duration) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			s.t.Fatalf("unexpected event %s %+v", ev.typ, ev.data)
		}
	case <-time.After(within):
	}
}
