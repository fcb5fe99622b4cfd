package integrations

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
)

// Test secrets: whsec_ + base64 of 32 bytes.
var (
	secretA = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	secretB = "whsec_" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

// verifySignature is an independent implementation of the Standard Webhooks check (not the
// library the gateway signs with): some v1 signature of the header must be base64(HMAC-SHA256(key,
// "id.timestamp.body")) with the key the base64 after whsec_.
func verifySignature(secret string, h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing headers: id %q ts %q sig %q", id, ts, sigs)
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		return fmt.Errorf("timestamp %q: %v", ts, err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no signature matches (%s)", sigs)
}

// received is one request the receiver got.
type received struct {
	id     string
	typ    string
	conv   string
	text   string
	at     time.Time
	status int
	body   []byte
	event  map[string]any
}

// receiver is a real HTTP server standing for a CRM. answer decides each request's status (and may
// sleep); every request is recorded with its answer after its signature is checked.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []received
	answer func(r received, n int) int // n: how many requests came before
	badSig int
}

func newReceiver(t testing.TB, secret string, answer func(r received, n int) int) *receiver {
	rc := &receiver{t: t, secret: secret, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r := received{id: req.Header.Get("webhook-id"), body: body, at: time.Now()}
		if err := verifySignature(rc.secret, req.Header, body); err != nil {
			rc.mu.Lock()
			rc.badSig++
			rc.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.Unmarshal(body, &r.event)
		r.typ, _ = r.event["type"].(string)
		if data, ok := r.event["data"].(map[string]any); ok {
			r.conv, _ = data["conversation_id"].(string)
			if m, ok := data["message"].(map[string]any); ok {
				r.text, _ = m["text"].(string)
			}
		}
		rc.mu.Lock()
		n := len(rc.got)
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.answer != nil {
			status = rc.answer(r, n)
		}
		r.status = status
		rc.mu.Lock()
		rc.got = append(rc.got, r)
		rc.mu.Unlock()
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// acked is the requests answered 2xx, in the order they were answered.
func (rc *receiver) acked() []received {
	var out []received
	for _, r := range rc.all() {
		if r.status >= 200 && r.status < 300 {
			out = append(out, r)
		}
	}
	return out
}

func (rc *receiver) ackedTypes() []string {
	var out []string
	for _, r := range rc.acked() {
		out = append(out, r.typ)
	}
	return out
}

func testConfig(hooks ...configs.Webhook) *configs.Config {
	cfg := &configs.Config{
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}},
		Queues: []configs.Queue{
			{ID: "sales", Channels: []string{"whatsapp", "webchat"}, Strategy: "longest_idle", OfferTimeout: 30 * time.Second},
			{ID: "support", Channels: []string{"webchat"}, Strategy: "longest_idle", OfferTimeout: 30 * time.Second},
			{ID: "vip", Channels: []string{"whatsapp"}, Strategy: "longest_idle", OfferTimeout: 30 * time.Second},
		},
		Agents: []configs.Agent{
			{ID: "ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 5}}},
		},
		WhatsApp:     configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100", Queue: "sales"}}},
		WebChat:      configs.WebChat{Sites: []configs.Site{{ID: "shop", Queue: "support"}}},
		Presence:     configs.Presence{HistoryRetention: 24 * time.Hour},
		Integrations: configs.Integrations{Webhooks: hooks},
	}
	for i := range cfg.Integrations.Webhooks {
		w := &cfg.Integrations.Webhooks[i]
		if w.Timeout == 0 {
			w.Timeout = 2 * time.Second
		}
		if w.MaxAge == 0 {
			w.MaxAge = time.Hour
		}
		if w.Workers == 0 {
			w.Workers = 4
		}
	}
	cfg.Integrations.RetainEvents = 2 * time.Hour
	cfg.Integrations.MediaURLTTL = time.Hour
	cfg.Integrations.TranscriptInline = 50
	return cfg
}

type env struct {
	client   *redis.Client
	ks       keyspace.Space
	cfg      *configs.Config
	router   *routing.Router
	presence *presence.Store
	clock    clock.Clock
	services []*Service
}

func newEnv(t testing.TB, clk clock.Clock, hooks ...configs.Webhook) *env {
	t.Helper()
	return newEnvOn(t, redistest.Client(t), clk, hooks...)
}

func newEnvOn(t testing.TB, client *redis.Client, clk clock.Clock, hooks ...configs.Webhook) *env {
	t.Helper()
	if clk == nil {
		clk = clock.Real{}
	}
	cfg := testConfig(hooks...)
	ks := keyspace.New("t")
	topo := topology.New(cfg)
	ps := presence.NewStore(client, ks, topo, presence.Options{HistoryRetention: time.Hour, Clock: clk})
	r := routing.NewRouter(client, ks, topo, routing.Options{Clock: clk, Pauser: ps})
	ps.AddListener(r)
	t.Cleanup(r.Shutdown)
	if err := r.SyncCapacity(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &env{client: client, ks: ks, cfg: cfg, router: r, presence: ps, clock: clk}
}

// start runs one more integrations service (a gateway process) on the env's Redis.
func (e *env) start(t testing.TB, tweak func(*Options)) *Service {
	t.Helper()
	o := Options{Clock: e.clock, MediaLinks: testMediaLinks, RetryBase: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		Lease: time.Second, SweepEvery: 500 * time.Millisecond, PublicURL: "https://gw.example"}
	if tweak != nil {
		tweak(&o)
	}
	s, err := New(e.client, e.ks, e.router, e.cfg.Integrations, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	e.services = append(e.services, s)
	return s
}

// customer delivers one WhatsApp text (or kind) from the phone.
func (e *env) customer(t testing.TB, phone, kind, text string) routing.DeliverResult {
	t.Helper()
	res, err := e.router.Deliver(context.Background(), []routing.Inbound{{Channel: "whatsapp", EntryPoint: "100",
		Identifiers: []routing.Identifier{{Kind: routing.IdentPhone, Value: phone}, {Kind: routing.IdentUserID, Value: "BR." + phone}},
		ContactName: "Maria " + phone, ProviderMessageID: "wamid." + phone + "." + text, At: e.clock.Now(), Kind: kind, Text: text}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (e *env) held(t testing.TB, conv string) int64 {
	t.Helper()
	n, err := Held(context.Background(), e.client, e.ks, conv)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func hook(id, url string, mod ...func(*configs.Webhook)) configs.Webhook {
	w := configs.Webhook{ID: id, URL: url, Secret: secretA}
	for _, m := range mod {
		m(&w)
	}
	return w
}
