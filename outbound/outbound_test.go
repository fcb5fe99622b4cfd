package outbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/outbound"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/widget"
)

const (
	secret = "test-secret-of-enough-length"
	number = "100200300"
	token  = "EAAtest-token"
)

// recorder keeps what each agent was told on its stream.
type recorder struct {
	mu     sync.Mutex
	events map[string][]routing.Event
}

func (r *recorder) Publish(_ context.Context, agent string, ev routing.Event) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = map[string][]routing.Event{}
	}
	r.events[agent] = append(r.events[agent], ev)
	return fmt.Sprint(len(r.events[agent])), nil
}

func (r *recorder) statuses(agent, messageID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events[agent] {
		if m, ok := e.Message.(routing.Message); ok && e.Type == routing.EventMessageStatus && m.ID == messageID {
			out = append(out, m.Status)
		}
	}
	return out
}

func testConfig() *configs.Config {
	return &configs.Config{
		Tenant:       "t",
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}},
		Queues:       []configs.Queue{{ID: "sales", Channels: []string{"whatsapp", "webchat"}, OfferTimeout: 30 * time.Second}},
		Agents: []configs.Agent{
			{ID: "ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 2}, "webchat": {Capacity: 2}}},
			{ID: "bob", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 2}}},
		},
		WhatsApp: configs.WhatsApp{
			Numbers: []configs.Number{{PhoneNumberID: number, Queue: "sales", AccessToken: token, RatePerSecond: 80}},
			Templates: []configs.Template{
				{Name: "order_update", Language: "pt_BR", BodyParams: 2, Text: "Olá {{1}}, seu pedido {{2}} foi atualizado."},
				{Name: "appointment", Language: "en_US", HeaderParams: 1, BodyParams: 2, ButtonParams: 1, Text: "{{1}}, on {{2}}."},
			},
		},
		WebChat:  configs.WebChat{Sites: []configs.Site{{ID: "shop", Queue: "sales"}}},
		Presence: configs.Presence{HistoryRetention: time.Hour},
		Events:   configs.Events{MaxLen: 100},
		Outbound: configs.Outbound{MaxRetry: 3, SendTimeout: 5 * time.Second},
	}
}

type env struct {
	t        *testing.T
	cfg      *configs.Config
	client   *redis.Client
	router   *routing.Router
	presence *presence.Store
	pub      *recorder
	clock    *clock.Fake
	fake     *fakeapi.Server
	app      *fiber.App
	svc      *outbound.Service
	queue    *asynq.Inspector
}

type envOptions struct {
	recipientInterval time.Duration
	rate              int
	noWorker          bool
	configure         func(*configs.Config)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	cfg := testConfig()
	if o.rate > 0 {
		cfg.WhatsApp.Numbers[0].RatePerSecond = o.rate
	}
	if o.configure != nil {
		o.configure(cfg)
	}
	client := redistest.Client(t)
	ks := keyspace.New("t")
	clk := clock.NewFake(time.Now())
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clk})
	pub := &recorder{}
	router := routing.NewRouter(client, ks, topology.New(cfg), routing.Options{Clock: clk, Publisher: pub, Pauser: ps})
	ps.AddListener(router)
	t.Cleanup(router.Shutdown)
	if err := router.SyncCapacity(context.Background()); err != nil {
		t.Fatal(err)
	}

	fake := fakeapi.New(fakeapi.Options{Numbers: map[string]string{number: token}, Templates: []fakeapi.Template{
		{Name: "order_update", Language: "pt_BR", BodyParams: 2},
		{Name: "appointment", Language: "en_US", HeaderParams: 1, BodyParams: 2, ButtonParams: 1},
	}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })

	e := &env{t: t, cfg: cfg, client: client, router: router, presence: ps, pub: pub, clock: clk, fake: fake,
		queue: asynq.NewInspectorFromRedisClient(client)}
	if !o.noWorker {
		e.startWorker(client, o.recipientInterval)
	}

	api, err := whatsapp.New(whatsapp.Config{BaseURL: fake.URL(), APIVersion: "v21.0"})
	if err != nil {
		t.Fatal(err)
	}
	opts := serviceOptions(cfg)
	opts.Uploader, opts.Tokens = api, map[string]string{number: token}
	e.svc = outbound.NewService(router, outbound.NewSequencer(client, ks, asynq.NewClientFromRedisClient(client), router, nil),
		topology.New(cfg), opts, slog.New(slog.DiscardHandler))
	verifier := auth.NewVerifier(secret, "", "")
	e.app = httpx.NewApp(httpx.Options{Logger: slog.New(slog.DiscardHandler),
		BodyLimitFor: func(path, contentType string) int { return 110 << 20 }})
	v1 := e.app.Group("/v1", verifier.Middleware())
	h := outbound.NewHandler(e.svc, client, ks)
	receipts := outbound.NewReceipts(router, client, ks, api, map[string]string{number: token}, nil)
	h.SetReceipts(receipts)
	h.Register(v1)
	typing := widget.NewTypingHandler(router, nil)
	typing.SetWhatsApp(receipts.Typing)
	typing.Register(v1)
	routing.NewHandler(router).Register(v1) // cards and conversations, to read them as agents do
	return e
}

// startWorker runs one asynq worker process's worth of outbound workers on its own connection.
func (e *env) startWorker(shared *redis.Client, recipientInterval time.Duration) {
	e.t.Helper()
	client := redis.NewClient(shared.Options())
	e.t.Cleanup(func() { client.Close() })
	api, err := whatsapp.New(whatsapp.Config{BaseURL: e.fake.URL(), APIVersion: "v21.0"})
	if err != nil {
		e.t.Fatal(err)
	}
	rates := map[string]int{number: e.cfg.WhatsApp.Numbers[0].RatePerSecond}
	limits := outbound.NewLimits(client, keyspace.New("t"), rates, recipientInterval)
	srv := tasks.NewServer(client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: 8, ShutdownTimeout: time.Second,
		RetryDelay: func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond }})
	seq := outbound.NewSequencer(client, keyspace.New("t"), asynq.NewClientFromRedisClient(client), e.router, slog.New(slog.DiscardHandler))
	outbound.NewWorker(e.router, api, limits, outbound.WorkerOptions{Tokens: map[string]string{number: token}, Sequencer: seq}).Register(srv)
	if err := srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(srv.Shutdown)
}

func (e *env) login(agent, ch string) {
	e.t.Helper()
	if _, err := e.presence.Set(context.Background(), agent, ch, presence.Online, "", agent, presence.CauseToggle); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) do(agent, method, path, body string, header ...string) (int, map[string]any) {
	e.t.Helper()
	tok, err := auth.Mint(secret, "", agent, auth.RoleAgent, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.app.Test(req, 10_000)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		e.t.Fatalf("%s %s: not JSON: %s", method, path, raw)
	}
	return resp.StatusCode, out
}

func (e *env) message(id string) routing.Message {
	e.t.Helper()
	m, err := e.router.Message(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) waitStatus(id, status string) routing.Message {
	e.t.Helper()
	var m routing.Message
	testutil.Eventually(e.t, 15*time.Second, "message "+id+" to be "+status, func() bool {
		m = e.message(id)
		return m.Status == status
	})
	return m
}

func (e *env) tasksIn(queue string) int {
	e.t.Helper()
	info, err := e.queue.GetQueueInfo(queue)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return 0
		}
		e.t.Fatal(err)
	}
	return info.Size
}

// customerWrites delivers a customer's WhatsApp message and has ana accept its card.
func (e *env) customerWrites(contact string) routing.Card {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.router.Deliver(ctx, []routing.Inbound{{Channel: "whatsapp", EntryPoint: number, ContactID: contact,
		ContactPhone: contact, ProviderMessageID: "wamid.in-" + contact, At: e.clock.Now(), Kind: "text", Text: "oi"}}); err != nil {
		e.t.Fatal(err)
	}
	cards, err := e.router.Cards(ctx, "ana")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range cards {
		if c.Contact != nil && c.Contact.ID == contact {
			if c.State == routing.CardOffered {
				if c, err = e.router.Accept(ctx, c.ID, "ana"); err != nil {
					e.t.Fatal(err)
				}
			}
			return c
		}
	}
	e.t.Fatalf("no card for %s: %+v", contact, cards)
	return routing.Card{}
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body is not JSON: %s", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("provider got\n%s\nwant\n%s", gb, wb)
	}
}

const newConversation = `{"channel":"whatsapp","to":"+5511999990001","phone_number_id":"100200300",
  "template":{"name":"order_update","language":"pt_BR","body_params":["Ana","#123"]}}`

func TestNewConversationSendsTheTemplateMetaExpects(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login("ana", "whatsapp")
	status, body := e.do("ana", "POST", "/v1/conversations", newConversation)
	if status != http.StatusAccepted || body["status"] != "queued" || body["conversation_id"] == "" || body["message_id"] == "" {
		t.Fatalf("start: %d %v", status, body)
	}
	msgID, convID := body["message_id"].(string), body["conversation_id"].(string)
	m := e.waitStatus(msgID, "sent")
	calls := e.fake.Calls()
	if len(calls) != 1 {
		t.Fatalf("provider calls: %d", len(calls))
	}
	jsonEqual(t, calls[0].Body, `{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999990001",
	  "type":"template","template":{"name":"order_update","language":{"code":"pt_BR"},
	  "components":[{"type":"body","parameters":[{"type":"text","text":"Ana"},{"type":"text","text":"#123"}]}]}}`)
	if m.ProviderMessageID != calls[0].MessageID || m.Text != "Olá Ana, seu pedido #123 foi atualizado." || m.Kind != "template" {
		t.Fatalf("stored message: %+v", m)
	}
	testutil.Eventually(e.t, 5*time.Second, "ana to be told the message was sent", func() bool {
		got := e.pub.statuses("ana", msgID)
		return len(got) == 1 && got[0] == "sent"
	})

	// The conversation is ana's, its card accepted, and it counts against her capacity.
	conv, err := e.router.Conversation(context.Background(), convID)
	if err != nil || conv.Agent != "ana" || conv.State != "open" || conv.WindowExpiresAt != nil {
		t.Fatalf("conversation: %+v %v", conv, err)
	}
	card, err := e.router.Card(context.Background(), conv.CardID)
	if err != nil || card.State != routing.CardAccepted || card.Agent != "ana" {
		t.Fatalf("card: %+v %v", card, err)
	}

	// Later statuses come from the provider's webhooks, matched by its message id.
	if _, changed, err := e.router.ApplyProviderStatus(context.Background(), "whatsapp", m.ProviderMessageID,
		routing.StatusUpdate{State: "delivered"}); err != nil || changed != routing.StatusApplied {
		t.Fatalf("delivered: %v %v", changed, err)
	}
	if got := e.pub.statuses("ana", msgID); len(got) != 2 || got[1] != "delivered" {
		t.Fatalf("ana was told %v", got)
	}

	// A second template to the same customer joins the open conversation.
	status, body = e.do("ana", "POST", "/v1/conversations", newConversation)
	if status != http.StatusAccepted || body["conversation_id"] != convID {
		t.Fatalf("second start: %d %v", status, body)
	}
	// Bob may not start one with ana's customer on this number.
	e.login("bob", "whatsapp")
	if status, body = e.do("bob", "POST", "/v1/conversations", newConversation); status != http.StatusConflict || code(body) != "conversation_taken" {
		t.Fatalf("bob: %d %v", status, body)
	}
}

func TestTemplateWithHeaderAndButton(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login("ana", "whatsapp")
	status, body := e.do("ana", "POST", "/v1/conversations", `{"channel":"whatsapp","to":"+5511999990002",
	  "template":{"name":"appointment","language":"en_US","header_params":["Dr. Lima"],"body_params":["Ana","Monday"],"button_params":["abc123"]}}`)
	if status != http.StatusAccepted {
		t.Fatalf("start: %d %v", status, body)
	}
	e.waitStatus(body["message_id"].(string), "sent")
	jsonEqual(t, e.fake.Calls()[0].Body, `{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999990002",
	  "type":"template","template":{"name":"appointment","language":{"code":"en_US"},"components":[
	  {"type":"header","parameters":[{"type":"text","text":"Dr. Lima"}]},
	  {"type":"body","parameters":[{"type":"text","text":"Ana"},{"type":"text","text":"Monday"}]},
	  {"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"abc123"}]}]}}`)
}

// attempts counts every send to a recipient the fake answered, accepted or failed.
func (e *env) attempts(recipient string) int {
	n := 0
	for _, c := range append(e.fake.Failures(), e.fake.Calls()...) {
		if c.Recipient == recipient {
			n++
		}
	}
	return n
}

// capacity raises an agent's WhatsApp capacity where the routing scripts read it.
func (e *env) capacity(agent string, n int) {
	e.t.Helper()
	if err := e.client.HSet(context.Background(), "cg:{t}:cap:"+agent, "whatsapp", n).Err(); err != nil {
		e.t.Fatal(err)
	}
}

func code(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func fields(body map[string]any) []string {
	e, _ := body["error"].(map[string]any)
	fs, _ := e["fields"].([]any)
	var out []string
	for _, f := range fs {
		m, _ := f.(map[string]any)
		out = append(out, m["field"].(string))
	}
	return out
}

func TestNewConversationBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	tpl := func(s string) string {
		return `{"channel":"whatsapp","to":"+5511999990001","template":` + s + `}`
	}
	cases := []struct {
		name, agent, body, contentType string
		status                         int
		code                           string
		fields                         []string
	}{
		{"not logged in on WhatsApp", "bob", newConversation, "", 409, "whatsapp_not_logged_in", nil},
		{"unknown template", "ana", tpl(`{"name":"nope","language":"pt_BR","body_params":["a","b"]}`), "", 422, "validation_failed", []string{"template.name"}},
		{"language not approved", "ana", tpl(`{"name":"order_update","language":"en_US","body_params":["a","b"]}`), "", 422, "validation_failed", []string{"template.language"}},
		{"too few body params", "ana", tpl(`{"name":"order_update","language":"pt_BR","body_params":["a"]}`), "", 422, "validation_failed", []string{"template.body_params"}},
		{"too many body params", "ana", tpl(`{"name":"order_update","language":"pt_BR","body_params":["a","b","c"]}`), "", 422, "validation_failed", []string{"template.body_params"}},
		{"header param not taken", "ana", tpl(`{"name":"order_update","language":"pt_BR","body_params":["a","b"],"header_params":["x"]}`), "", 422, "validation_failed", []string{"template.header_params"}},
		{"missing button param", "ana", tpl(`{"name":"appointment","language":"en_US","header_params":["x"],"body_params":["a","b"]}`), "", 422, "validation_failed", []string{"template.button_params"}},
		{"empty param", "ana", tpl(`{"name":"order_update","language":"pt_BR","body_params":["a"," "]}`), "", 422, "validation_failed", []string{"template.body_params[1]"}},
		{"param with five spaces", "ana", tpl(`{"name":"order_update","language":"pt_BR","body_params":["a","b     c"]}`), "", 422, "validation_failed", []string{"template.body_params[1]"}},
		{"param with a new line", "ana", tpl(`{"name":"order_update","language":"pt_BR","body_params":["a","b\nc"]}`), "", 422, "validation_failed", []string{"template.body_params[1]"}},
		{"no template", "ana", `{"channel":"whatsapp","to":"+5511999990001"}`, "", 422, "validation_failed", []string{"template"}},
		{"number without plus", "ana", strings.Replace(newConversation, "+5511999990001", "5511999990001", 1), "", 422, "validation_failed", []string{"to"}},
		{"number with letters", "ana", strings.Replace(newConversation, "+5511999990001", "+55119999abc", 1), "", 422, "validation_failed", []string{"to"}},
		{"number too short", "ana", strings.Replace(newConversation, "+5511999990001", "+5511", 1), "", 422, "validation_failed", []string{"to"}},
		{"number of 7 digits", "ana", strings.Replace(newConversation, "+5511999990001", "+5511999", 1), "", 422, "validation_failed", []string{"to"}},
		{"number of 16 digits", "ana", strings.Replace(newConversation, "+5511999990001", "+5511999990001234", 1), "", 422, "validation_failed", []string{"to"}},
		{"country code 0", "ana", strings.Replace(newConversation, "+5511999990001", "+0511999990001", 1), "", 422, "validation_failed", []string{"to"}},
		{"number with a space", "ana", strings.Replace(newConversation, "+5511999990001", "+55119999 0001", 1), "", 422, "validation_failed", []string{"to"}},
		{"number with a new line", "ana", strings.Replace(newConversation, "+5511999990001", `+5511999990001\n`, 1), "", 422, "validation_failed", []string{"to"}},
		{"number with two plus", "ana", strings.Replace(newConversation, "+5511999990001", "++5511999990001", 1), "", 422, "validation_failed", []string{"to"}},
		{"unknown sending number", "ana", strings.Replace(newConversation, "100200300", "999", 1), "", 422, "validation_failed", []string{"phone_number_id"}},
		{"webchat channel", "ana", strings.Replace(newConversation, `"whatsapp"`, `"webchat"`, 1), "", 422, "validation_failed", []string{"channel"}},
		{"several faults at once", "ana", `{"channel":"sms","to":"x","template":{"name":"nope","language":"xx"}}`, "", 422, "validation_failed", []string{"channel", "to", "template.name"}},
		{"malformed JSON", "ana", `{"channel":`, "", 400, "invalid_json", nil},
		{"wrong type", "ana", `{"channel":"whatsapp","to":5511}`, "", 400, "invalid_json", nil},
		{"form body", "ana", "channel=whatsapp", "application/x-www-form-urlencoded", 415, "unsupported_media_type", nil},
	}
	before := redistest.Snapshot(t, e.client)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var header []string
			if c.contentType != "" {
				header = []string{"Content-Type", c.contentType}
			}
			status, body := e.do(c.agent, "POST", "/v1/conversations", c.body, header...)
			if status != c.status || code(body) != c.code {
				t.Fatalf("got %d %v, want %d %s", status, body, c.status, c.code)
			}
			if c.fields != nil && strings.Join(fields(body), ",") != strings.Join(c.fields, ",") {
				t.Fatalf("fields %v, want %v", fields(body), c.fields)
			}
		})
	}
	if after := redistest.Snapshot(t, e.client); after != before {
		t.Fatalf("bad requests changed Redis: %v", changedKeys(before, after))
	}
	if n := e.tasksIn(tasks.QueueTemplates); n != 0 {
		t.Fatalf("%d tasks enqueued", n)
	}
}

// The shortest and the longest E.164 numbers are taken (a plus, a country digit and 7 to 14 more).
func TestNewConversationTakesE164Bounds(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp") // capacity 2
	for _, to := range []string{"+12345678", "+123456789012345"} {
		if status, body := e.do("ana", "POST", "/v1/conversations", strings.Replace(newConversation, "+5511999990001", to, 1)); status != 202 {
			t.Fatalf("%s: %d %v", to, status, body)
		}
	}
}

func TestNewConversationCountsAgainstCapacity(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp") // capacity 2
	for i, to := range []string{"+5511999990001", "+5511999990002"} {
		if status, body := e.do("ana", "POST", "/v1/conversations", strings.Replace(newConversation, "+5511999990001", to, 1)); status != 202 {
			t.Fatalf("start %d: %d %v", i, status, body)
		}
	}
	status, body := e.do("ana", "POST", "/v1/conversations", strings.Replace(newConversation, "+5511999990001", "+5511999990003", 1))
	if status != http.StatusConflict || code(body) != "agent_at_capacity" {
		t.Fatalf("third: %d %v", status, body)
	}
	// A customer who writes now waits: ana is full.
	if _, err := e.router.Deliver(context.Background(), []routing.Inbound{{Channel: "whatsapp", EntryPoint: number,
		ContactID: "5511777770000", ProviderMessageID: "wamid.cap", Kind: "text", Text: "hi"}}); err != nil {
		t.Fatal(err)
	}
	cards, _ := e.router.Cards(context.Background(), "ana")
	if len(cards) != 2 {
		t.Fatalf("ana holds %d cards, capacity 2", len(cards))
	}
	if n := e.tasksIn(tasks.QueueTemplates); n != 2 {
		t.Fatalf("%d tasks enqueued, want 2", n)
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	s1, b1 := e.do("ana", "POST", "/v1/conversations", newConversation, "Idempotency-Key", "order-123")
	s2, b2 := e.do("ana", "POST", "/v1/conversations", newConversation, "Idempotency-Key", "order-123")
	if s1 != 202 || s2 != 202 || b1["message_id"] != b2["message_id"] || b1["conversation_id"] != b2["conversation_id"] {
		t.Fatalf("replay differs: %d %v / %d %v", s1, b1, s2, b2)
	}
	if n := e.tasksIn(tasks.QueueTemplates); n != 1 {
		t.Fatalf("%d tasks for one idempotent request", n)
	}
	msgs, _ := e.router.Messages(context.Background(), b1["conversation_id"].(string), 10)
	if len(msgs) != 1 {
		t.Fatalf("%d messages recorded", len(msgs))
	}
	// The same key with another request is refused; another agent's key space is its own.
	other := strings.Replace(newConversation, "#123", "#124", 1)
	if s, b := e.do("ana", "POST", "/v1/conversations", other, "Idempotency-Key", "order-123"); s != 422 || code(b) != "idempotency_key_reused" {
		t.Fatalf("reused key: %d %v", s, b)
	}
	if s, b := e.do("ana", "POST", "/v1/conversations", newConversation, "Idempotency-Key", strings.Repeat("k", 256)); s != 400 || code(b) != "invalid_idempotency_key" {
		t.Fatalf("long key: %d %v", s, b)
	}
	// A failed request leaves no record: corrected, it goes through with the same key.
	bad := strings.Replace(newConversation, `["Ana","#123"]`, `["Ana"]`, 1)
	if s, _ := e.do("ana", "POST", "/v1/conversations", bad, "Idempotency-Key", "k2"); s != 422 {
		t.Fatalf("bad request: %d", s)
	}
	fixed := strings.Replace(newConversation, "+5511999990001", "+5511999990009", 1)
	if s, b := e.do("ana", "POST", "/v1/conversations", fixed, "Idempotency-Key", "k2"); s != 202 {
		t.Fatalf("corrected request: %d %v", s, b)
	}
	if n := e.tasksIn(tasks.QueueTemplates); n != 2 {
		t.Fatalf("%d tasks, want 2", n)
	}
}

func TestReplyInsideTheWindow(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511988887777")
	status, body := e.do("ana", "POST", "/v1/conversations/"+card.ConversationID+"/messages", `{"text":"Olá! Como posso ajudar?"}`)
	if status != 202 || body["status"] != "queued" {
		t.Fatalf("reply: %d %v", status, body)
	}
	e.waitStatus(body["message_id"].(string), "sent")
	jsonEqual(t, e.fake.Calls()[0].Body, `{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511988887777",
	  "type":"text","text":{"body":"Olá! Como posso ajudar?","preview_url":false}}`)

	status, body = e.do("ana", "POST", "/v1/conversations/"+card.ConversationID+"/messages",
		`{"media":{"kind":"document","url":"https://example.com/invoice.pdf","caption":"Invoice","filename":"invoice.pdf"}}`)
	if status != 202 {
		t.Fatalf("media: %d %v", status, body)
	}
	e.waitStatus(body["message_id"].(string), "sent")
	jsonEqual(t, e.fake.Calls()[1].Body, `{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511988887777",
	  "type":"document","document":{"link":"https://example.com/invoice.pdf","caption":"Invoice","filename":"invoice.pdf"}}`)
}

func TestReplyBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	open := e.customerWrites("5511900000001")
	closed := e.customerWrites("5511900000003")
	if _, err := e.router.Close(context.Background(), closed.ID, "ana", false); err != nil {
		t.Fatal(err)
	}
	// A card offered but not accepted yet.
	e.login("bob", "whatsapp")
	if _, err := e.router.Deliver(context.Background(), []routing.Inbound{{Channel: "whatsapp", EntryPoint: number,
		ContactID: "5511900000002", ProviderMessageID: "wamid.offered", At: e.clock.Now(), Kind: "text", Text: "hi"}}); err != nil {
		t.Fatal(err)
	}
	var offered routing.Card
	for _, agent := range []string{"ana", "bob"} {
		cs, _ := e.router.Cards(context.Background(), agent)
		for _, c := range cs {
			if c.State == routing.CardOffered {
				offered = c
			}
		}
	}
	if offered.ID == "" {
		t.Fatal("no offered card")
	}
	path := func(conv string) string { return "/v1/conversations/" + conv + "/messages" }
	cases := []struct {
		name, agent, path, body string
		status                  int
		code                    string
	}{
		{"another agent's conversation", "bob", path(open.ConversationID), `{"text":"hi"}`, 403, "not_your_conversation"},
		{"closed conversation", "ana", path(closed.ConversationID), `{"text":"hi"}`, 409, "conversation_closed"},
		{"card not accepted yet", offered.Agent, path(offered.ConversationID), `{"text":"hi"}`, 409, "card_not_accepted"},
		{"unknown conversation", "ana", path("01ARZ3NDEKTSV4RRFFQ69G5FAV"), `{"text":"hi"}`, 404, "conversation_not_found"},
		{"id with a path in it", "ana", "/v1/conversations/..%2F..%2Fetc/messages", `{"text":"hi"}`, 400, "invalid_id"},
		{"empty text", "ana", path(open.ConversationID), `{"text":"  "}`, 422, "validation_failed"},
		{"oversized text", "ana", path(open.ConversationID), `{"text":"` + strings.Repeat("a", 4097) + `"}`, 422, "validation_failed"},
		{"text and media", "ana", path(open.ConversationID), `{"text":"a","media":{"kind":"image","url":"https://x/y.png"}}`, 422, "validation_failed"},
		{"media kind", "ana", path(open.ConversationID), `{"media":{"kind":"hologram","url":"https://x/y"}}`, 422, "validation_failed"},
		{"media with url and id", "ana", path(open.ConversationID), `{"media":{"kind":"image","url":"https://x/y","id":"123"}}`, 422, "validation_failed"},
		{"media url scheme", "ana", path(open.ConversationID), `{"media":{"kind":"image","url":"file:///etc/passwd"}}`, 422, "validation_failed"},
		{"malformed JSON", "ana", path(open.ConversationID), `{"text":`, 400, "invalid_json"},
	}
	before := redistest.Snapshot(t, e.client)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := e.do(c.agent, "POST", c.path, c.body)
			if status != c.status || code(body) != c.code {
				t.Fatalf("got %d %v, want %d %s", status, body, c.status, c.code)
			}
		})
	}
	if after := redistest.Snapshot(t, e.client); after != before {
		t.Fatalf("bad requests changed Redis: %v", changedKeys(before, after))
	}
	if n := e.tasksIn(tasks.QueueReplies); n != 0 {
		t.Fatalf("%d tasks enqueued", n)
	}

	// 24 hours after the customer's last message the window is closed: a template is the way.
	e.clock.Advance(24*time.Hour + time.Second)
	before = redistest.Snapshot(t, e.client)
	status, body := e.do("ana", "POST", path(open.ConversationID), `{"text":"still there?"}`)
	if status != 422 || code(body) != "window_closed" || !strings.Contains(body["error"].(map[string]any)["message"].(string), "template") {
		t.Fatalf("after the window: %d %v", status, body)
	}
	if after := redistest.Snapshot(t, e.client); after != before {
		t.Fatalf("a refused reply changed Redis: %v", changedKeys(before, after))
	}
}

// startTo opens a conversation as ana with the template newConversation sends, to the number to,
// and returns the template's message id.
func (e *env) startTo(to string) string {
	e.t.Helper()
	status, body := e.do("ana", "POST", "/v1/conversations", strings.Replace(newConversation, "+5511999990001", to, 1))
	if status != 202 {
		e.t.Fatalf("start: %d %v", status, body)
	}
	return body["message_id"].(string)
}

func TestFailureClasses(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login("ana", "whatsapp")
	e.capacity("ana", 100)
	start := e.startTo

	t.Run("permanent: archived at once, failed with the reason", func(t *testing.T) {
		e.fake.AddRule(fakeapi.RejectRecipient("+5511999990011", 131026))
		id := start("+5511999990011")
		m := e.waitStatus(id, "failed")
		if m.Error == nil || m.Error.Code != 131026 || m.Error.Title == "" {
			t.Fatalf("failure: %+v", m.Error)
		}
		if got := e.attempts("5511999990011"); got != 1 {
			t.Fatalf("permanent failure tried %d times", got)
		}
		testutil.Eventually(e.t, 10*time.Second, "the task to be archived", func() bool {
			info, err := e.queue.GetTaskInfo(tasks.QueueTemplates, outbound.TaskID(id))
			return err == nil && info.State == asynq.TaskStateArchived
		})
		if got := e.pub.statuses("ana", id); len(got) != 1 || got[0] != "failed" {
			t.Fatalf("ana was told %v", got)
		}
	})

	t.Run("Meta's words reach the agent, nothing internal", func(t *testing.T) {
		details := "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
		e.fake.AddRule(fakeapi.Rule{Recipient: "+5511999990016", Code: 131047, Message: "Re-engagement message", Details: details})
		id := start("+5511999990016")
		m := e.waitStatus(id, "failed")
		want := routing.MessageError{Code: 131047, Title: "Re-engagement message", Message: "(#131047) Re-engagement message",
			Details: details, Summary: "131047 Re-engagement message: " + details}
		if m.Error == nil || *m.Error != want {
			t.Fatalf("stored failure %+v, want %+v", m.Error, want)
		}
		// The message.status event carries the same words.
		e.pub.mu.Lock()
		var told *routing.MessageError
		for _, ev := range e.pub.events["ana"] {
			if em, ok := ev.Message.(routing.Message); ok && ev.Type == routing.EventMessageStatus && em.ID == id {
				told = em.Error
			}
		}
		e.pub.mu.Unlock()
		if told == nil || *told != want {
			t.Fatalf("ana was told %+v", told)
		}
	})

	t.Run("permanent, then Retry now by an operator: sent once", func(t *testing.T) {
		rule, _ := e.fake.AddRule(fakeapi.RejectRecipient("+5511999990015", 131026))
		id := start("+5511999990015")
		e.waitStatus(id, "failed")
		testutil.Eventually(e.t, 10*time.Second, "the task to be archived", func() bool {
			info, err := e.queue.GetTaskInfo(tasks.QueueTemplates, outbound.TaskID(id))
			return err == nil && info.State == asynq.TaskStateArchived
		})
		// The operator fixed the cause (here: the provider accepts the number now) and runs it again.
		e.fake.RemoveRule(rule)
		if err := e.queue.RunTask(tasks.QueueTemplates, outbound.TaskID(id)); err != nil {
			t.Fatal(err)
		}
		m := e.waitStatus(id, "sent")
		if m.Error != nil || m.ProviderMessageID == "" {
			t.Fatalf("after the retry: %+v", m)
		}
		if got := e.attempts("5511999990015"); got != 2 {
			t.Fatalf("tried %d times, want the rejected send and the retried one", got)
		}
		// the stored status comes first, the agent's event just after it
		if !testutil.Within(5*time.Second, func() bool { return strings.Join(e.pub.statuses("ana", id), ",") == "failed,queued,sent" }) {
			t.Fatalf("ana was told %v, want failed, queued again, sent", e.pub.statuses("ana", id))
		}
		// Running it again once sent sends nothing more.
		info, err := e.queue.GetTaskInfo(tasks.QueueTemplates, outbound.TaskID(id))
		if err == nil && info.State == asynq.TaskStateArchived {
			t.Fatalf("the sent task is still archived: %+v", info)
		}
	})

	t.Run("transient: retried until sent", func(t *testing.T) {
		e.fake.AddRule(fakeapi.Rule{Recipient: "+5511999990012", Status: 503, Times: 2})
		id := start("+5511999990012")
		e.waitStatus(id, "sent")
		if got := e.attempts("5511999990012"); got != 3 {
			t.Fatalf("tried %d times, want 2 failures and 1 success", got)
		}
		e.waitTaskGone(tasks.QueueTemplates, id)
	})

	t.Run("rate limited: retried after the delay asked", func(t *testing.T) {
		e.fake.AddRule(fakeapi.Rule{Recipient: "+5511999990013", Code: 130429, RetryAfter: fakeapi.Duration(time.Second), Times: 1})
		id := start("+5511999990013")
		e.waitStatus(id, "sent")
		calls := append(e.fake.Failures(), e.fake.Calls()...)
		var first, last time.Time
		for _, c := range calls {
			if c.Recipient == "5511999990013" {
				if first.IsZero() || c.At.Before(first) {
					first = c.At
				}
				if c.At.After(last) {
					last = c.At
				}
			}
		}
		if gap := last.Sub(first); gap < 900*time.Millisecond {
			t.Fatalf("retried %v after a 1 s Retry-After", gap)
		}
	})

	t.Run("retries exhausted: failed and archived", func(t *testing.T) {
		e.fake.AddRule(fakeapi.Rule{Recipient: "+5511999990014", Status: 500})
		id := start("+5511999990014")
		m := e.waitStatus(id, "failed")
		// Meta's words and a plain sentence; nothing internal (HTTP status, trace id, Go error).
		if m.Error.Code != 131000 || m.Error.Title != "Something went wrong" || m.Error.Details != "injected by the fake" ||
			!strings.Contains(m.Error.Summary, "erro temporário em 4 tentativas") ||
			!strings.Contains(m.Error.Summary, "temporary error through 4 attempts. Send it again later. (131000 Something went wrong: injected by the fake)") {
			t.Fatalf("failure: %+v", m.Error)
		}
		for _, internal := range []string{"HTTP", "fbtrace", "whatsapp:", "gave up", "transient"} {
			if strings.Contains(m.Error.Summary+m.Error.Title+m.Error.Message, internal) {
				t.Fatalf("the agent would read %q: %+v", internal, m.Error)
			}
		}
		if got := e.attempts("5511999990014"); got != 4 {
			t.Fatalf("tried %d times with max_retry 3", got)
		}
		testutil.Eventually(e.t, 10*time.Second, "the task to be archived", func() bool {
			info, err := e.queue.GetTaskInfo(tasks.QueueTemplates, outbound.TaskID(id))
			return err == nil && info.State == asynq.TaskStateArchived
		})
	})
}

// TestRateLimitHoldsAcrossWorkers runs two worker processes' worth of workers on separate
// connections and checks that no one-second window of sends from the number exceeds its rate by
// more than 5%.
func TestRateLimitHoldsAcrossWorkers(t *testing.T) {
	const rate, sends = 20, 100
	e := newEnv(t, envOptions{rate: rate})
	e.startWorker(e.client, 0)
	e.login("ana", "whatsapp")
	e.capacity("ana", 1000)
	for i := 0; i < sends; i++ {
		to := fmt.Sprintf("+55119%08d", i)
		if status, body := e.do("ana", "POST", "/v1/conversations", strings.Replace(newConversation, "+5511999990001", to, 1)); status != 202 {
			t.Fatalf("start %d: %d %v", i, status, body)
		}
	}
	testutil.Eventually(e.t, 30*time.Second, "every send", func() bool { return e.fake.Accepted() == sends })
	var at []time.Time
	for _, c := range e.fake.Calls() {
		at = append(at, c.At)
	}
	limit := int(float64(rate) * 1.05)
	for i := range at {
		n := 0
		for j := range at {
			if !at[j].Before(at[i]) && at[j].Sub(at[i]) < time.Second {
				n++
			}
		}
		if n > limit {
			t.Fatalf("%d sends in the second from %v; the limit is %d/s", n, at[i], rate)
		}
	}
}

func TestRecipientPace(t *testing.T) {
	e := newEnv(t, envOptions{recipientInterval: 500 * time.Millisecond})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511966665555")
	var ids []string
	for i := 0; i < 3; i++ {
		status, body := e.do("ana", "POST", "/v1/conversations/"+card.ConversationID+"/messages", fmt.Sprintf(`{"text":"part %d"}`, i))
		if status != 202 {
			t.Fatalf("reply %d: %d %v", i, status, body)
		}
		ids = append(ids, body["message_id"].(string))
	}
	for _, id := range ids {
		e.waitStatus(id, "sent")
	}
	calls := e.fake.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d sends", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].At.Sub(calls[i-1].At); gap < 450*time.Millisecond {
			t.Fatalf("two messages to one customer %v apart; the pace is 500ms", gap)
		}
	}
}

// changedKeys names the keys whose presence or value differs between two snapshots.
func changedKeys(before, after string) []string {
	seen := map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		seen[l] = true
	}
	var out []string
	for _, l := range strings.Split(after, "\n") {
		if !seen[l] {
			k, _, _ := strings.Cut(l, "=")
			out = append(out, k)
		}
	}
	return out
}

func TestAutomaticMessagesGoThroughTheWorkers(t *testing.T) {
	e := newEnv(t, envOptions{})
	q := "We are closed now; we will answer from 8am."
	e.cfg.Queues[0].NoAgentsMessage = q
	// The router reads its queues at construction; a fresh one sees the message.
	router := routing.NewRouter(e.client, keyspace.New("t"), topology.New(e.cfg), routing.Options{Clock: e.clock, Publisher: e.pub, Pauser: e.presence})
	t.Cleanup(router.Shutdown)
	svc := outbound.NewService(router, outbound.NewSequencer(e.client, keyspace.New("t"), asynq.NewClientFromRedisClient(e.client), router, nil),
		topology.New(e.cfg), serviceOptions(e.cfg), slog.New(slog.DiscardHandler))
	router.SetAutoReplier(svc)
	if _, err := router.Deliver(context.Background(), []routing.Inbound{{Channel: "whatsapp", EntryPoint: number,
		ContactID: "5511955554444", ContactPhone: "5511955554444", ProviderMessageID: "wamid.night", At: e.clock.Now(), Kind: "text", Text: "oi"}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(e.t, 15*time.Second, "the automatic message", func() bool { return e.fake.Accepted() == 1 })
	jsonEqual(t, e.fake.Calls()[0].Body, `{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511955554444",
	  "type":"text","text":{"body":"`+q+`","preview_url":false}}`)
}

// serviceOptions are what the composition root passes the service from cfg.
func serviceOptions(cfg *configs.Config) outbound.ServiceOptions {
	return outbound.ServiceOptions{Templates: cfg.WhatsApp.Templates,
		Tasks: outbound.TaskOptions{MaxRetry: cfg.Outbound.MaxRetry, Timeout: cfg.Outbound.SendTimeout}}
}

// The boundaries the written-out checks keep: 8 and 15 digits after the plus, four spaces in a row.
func TestNewConversationAcceptsTheBoundaries(t *testing.T) {
	for _, body := range []string{
		strings.Replace(newConversation, "+5511999990001", "+12345678", 1),
		strings.Replace(newConversation, "+5511999990001", "+551199999000123", 1),
		strings.Replace(newConversation, `"#123"`, `"a    b"`, 1),
	} {
		e := newEnv(t, envOptions{noWorker: true}) // each its own agent's capacity
		e.login("ana", "whatsapp")
		if status, answer := e.do("ana", "POST", "/v1/conversations", body); status != http.StatusAccepted {
			t.Errorf("%s: %d %v", body, status, answer)
		}
	}
}

// A task's payload is read by another JSON decoder than the one that wrote it: text that JSON
// escapes (quotes, backslash, HTML, U+2028, non-ASCII) reaches the provider as the agent wrote it.
func TestTemplateParamsReachTheProviderIntact(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login("ana", "whatsapp")
	params := []string{`Ana "<&>" \ ção`, "🎉 x\u2028y \u00a0é"}
	quoted, _ := json.Marshal(params)
	body := strings.Replace(newConversation, `["Ana","#123"]`, string(quoted), 1)
	status, answer := e.do("ana", "POST", "/v1/conversations", body)
	if status != http.StatusAccepted {
		t.Fatalf("start: %d %v", status, answer)
	}
	e.waitStatus(answer["message_id"].(string), "sent")
	var sent struct {
		Template struct {
			Components []struct {
				Parameters []struct{ Text string } `json:"parameters"`
			} `json:"components"`
		} `json:"template"`
	}
	if err := json.Unmarshal(e.fake.Calls()[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range sent.Template.Components[0].Parameters {
		got = append(got, p.Text)
	}
	if strings.Join(got, "|") != strings.Join(params, "|") {
		t.Errorf("provider got %q, want %q", got, params)
	}
}
