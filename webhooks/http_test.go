package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/redisx"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/webhooks"
	"github.com/chatgate/chatgate/webhooks/whatsapp"
)

const appSecret = "app-secret-for-tests"

func testConfig() *configs.Config {
	return &configs.Config{
		Queues:   []configs.Queue{{ID: "sales", Channels: []string{"whatsapp"}, Strategy: "longest_idle", OfferTimeout: time.Minute}},
		Agents:   []configs.Agent{{ID: "ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 2}}}},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100200300", Queue: "sales"}}},
	}
}

// server runs the WhatsApp webhook on a real listener with a real router on client.
func server(t testing.TB, client redis.UniversalClient) (string, *routing.Router) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	app := httpx.NewApp(httpx.Options{Logger: logger, Registerer: reg, Unavailable: redisx.IsUnavailable, BodyLimit: 64 << 10})
	router := routing.NewRouter(client, keyspace.New("t"), testConfig(), routing.Options{Clock: clock.Real{}, Logger: logger})
	t.Cleanup(router.Shutdown)
	webhooks.NewHandler("whatsapp", whatsapp.New(appSecret, "", "verify-token"), router, logger, webhooks.NewMetrics(reg)).Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return "http://" + ln.Addr().String(), router
}

func post(t *testing.T, url string, body []byte, headers map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func errCode(body string) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

func signed(body []byte) map[string]string {
	return map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(body, appSecret)}
}

func TestHandshake(t *testing.T) {
	url, _ := server(t, redistest.Client(t))
	for _, tc := range []struct {
		query  string
		status int
		body   string
	}{
		{"hub.mode=subscribe&hub.verify_token=verify-token&hub.challenge=1158201444", 200, "1158201444"},
		{"hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", 403, ""},
		{"hub.mode=other&hub.verify_token=verify-token&hub.challenge=1", 403, ""},
		{"", 403, ""},
	} {
		resp, err := http.Get(url + "/webhooks/whatsapp?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.body != "" && string(b) != tc.body) {
			t.Errorf("GET ?%s: got %d %s, want %d %s", tc.query, resp.StatusCode, b, tc.status, tc.body)
		}
		if tc.status == 200 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("challenge content type %q, want text/plain", resp.Header.Get("Content-Type"))
		}
	}
}

// TestBadInputRecordsNothing: each bad request gets its answer and Redis holds nothing new.
func TestBadInputRecordsNothing(t *testing.T) {
	client := redistest.Client(t)
	url, _ := server(t, client)
	good := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Text: "hi"})
	tampered := bytes.Replace(good, []byte(`"hi"`), []byte(`"HI"`), 1)
	unknownNumber := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "555", From: "+5511999990001", Text: "hi"})
	page := []byte(`{"object":"page","entry":[]}`)
	notJSON := []byte(`{"object":"whatsapp_business_account",`)
	weird := []byte(`{"object":"whatsapp_business_account","entry":"nope"}`)
	big := append([]byte(`{"object":"whatsapp_business_account","x":"`), bytes.Repeat([]byte("a"), 70<<10)...)
	big = append(big, '"', '}')
	for _, tc := range []struct {
		name    string
		body    []byte
		headers map[string]string
		status  int
		code    string
	}{
		{"no signature", good, nil, 401, "invalid_signature"},
		{"malformed header", good, map[string]string{"X-Hub-Signature-256": "sha1=abc"}, 401, "invalid_signature"},
		{"wrong signature", good, map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(good, "other")}, 401, "invalid_signature"},
		{"body changed after signing", tampered, signed(good), 401, "invalid_signature"},
		{"previous secret when none is configured", good, map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(good, "old-secret")}, 401, "invalid_signature"},
		{"body over the limit", big, signed(big), 413, "body_too_large"},
		{"invalid JSON, validly signed", notJSON, signed(notJSON), 400, "invalid_json"},
		{"another object", page, signed(page), 200, ""},
		{"signed but not understood", weird, signed(weird), 200, ""},
		{"unknown phone number id", unknownNumber, signed(unknownNumber), 200, ""},
	} {
		before := redistest.Snapshot(t, client)
		status, body := post(t, url, tc.body, tc.headers)
		if status != tc.status || errCode(body) != tc.code {
			t.Errorf("%s: got %d %s, want %d %q", tc.name, status, body, tc.status, tc.code)
		}
		if after := redistest.Snapshot(t, client); after != before {
			t.Errorf("%s recorded something:\n%s", tc.name, after)
		}
	}
}

// TestConcurrentRedeliveryRecordsOnce posts the same signed notification three times at once.
func TestConcurrentRedeliveryRecordsOnce(t *testing.T) {
	client := redistest.Client(t)
	url, router := server(t, client)
	body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi"})
	var wg sync.WaitGroup
	statuses := make([]int, 3)
	for i := range statuses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i], _ = post(t, url, body, signed(body))
		}(i)
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Errorf("delivery %d: got %d, want 200", i, s)
		}
	}
	msgs := client.Keys(context.Background(), "cg:{t}:msg:*").Val()
	cards := client.Keys(context.Background(), "cg:{t}:card:*").Val()
	if len(msgs) != 1 || len(cards) != 1 {
		t.Fatalf("got %d messages and %d cards, want one of each", len(msgs), len(cards))
	}
	qs, _ := router.QueuesStatus(context.Background())
	if qs[0].Channels[0].Waiting != 1 {
		t.Errorf("queue: %+v, want one waiting card", qs[0])
	}
}

func TestStatusWebhookUpdatesTheMessage(t *testing.T) {
	client := redistest.Client(t)
	url, router := server(t, client)
	ctx := context.Background()
	in := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Text: "hi"})
	post(t, url, in, signed(in))
	convID := client.Get(ctx, client.Keys(ctx, "cg:{t}:convopen:*").Val()[0]).Val()
	m, err := router.RecordOutbound(ctx, convID, "ana", "text", "hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	router.UpdateStatus(ctx, m.ID, routing.StatusUpdate{State: "sent", ProviderMessageID: "wamid.OUT1"})
	for _, st := range []string{"read", "delivered"} {
		body := simulate.WhatsAppStatusNotification(simulate.WhatsAppStatus{PhoneNumberID: "100200300", MessageID: "wamid.OUT1", Status: st, RecipientID: "+5511999990001"})
		if status, resp := post(t, url, body, signed(body)); status != 200 {
			t.Fatalf("status %s: %d %s", st, status, resp)
		}
	}
	if got := client.HGet(ctx, "cg:{t}:msg:"+m.ID, "status").Val(); got != "read" {
		t.Errorf("message status: got %q, want read (a late delivered does not overwrite it)", got)
	}
}

func TestRedisDownAnswers503(t *testing.T) {
	srv := redistest.StartServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer client.Close()
	url, _ := server(t, client)
	body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Text: "hi"})
	srv.Stop(t)
	status, resp := post(t, url, body, signed(body))
	if status != 503 || errCode(resp) != "unavailable" {
		t.Fatalf("with Redis down: got %d %s, want 503 unavailable", status, resp)
	}
	srv.Start(t)
	if status, resp = post(t, url, body, signed(body)); status != 200 || !strings.Contains(resp, `"recorded":1`) {
		t.Fatalf("after Redis returned: got %d %s, want the retried message recorded", status, resp)
	}
}
