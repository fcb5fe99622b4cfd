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
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/internal/topology"
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

// testServer is the WhatsApp webhook on a real listener with a real router, its metrics registry and
// the log lines everything wrote.
type testServer struct {
	url    string
	router *routing.Router
	reg    *prometheus.Registry
	logs   *logBuffer
}

// start runs the webhook with the app secret and, when not empty, a previous one (rotation).
func start(t testing.TB, client redis.UniversalClient, previousSecret string) *testServer {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	app := httpx.NewApp(httpx.Options{Logger: logger, Registerer: reg, Unavailable: redisx.IsUnavailable, BodyLimit: 64 << 10,
		RouteBodyLimits: map[string]int{"/webhooks/whatsapp": 4 << 20}}) // as serve.go wires it
	router := routing.NewRouter(client, keyspace.New("t"), topology.New(testConfig()), routing.Options{Clock: clock.Real{}, Logger: logger})
	t.Cleanup(router.Shutdown)
	webhooks.NewHandler("whatsapp", whatsapp.New(appSecret, previousSecret, "verify-token"), router, logger, webhooks.NewMetrics(reg)).Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return &testServer{url: "http://" + ln.Addr().String(), router: router, reg: reg, logs: logs}
}

// server is start without a previous secret.
func server(t testing.TB, client redis.UniversalClient) (string, *routing.Router) {
	t.Helper()
	s := start(t, client, "")
	return s.url, s.router
}

// logBuffer collects JSON log lines from concurrent writers.
type logBuffer struct {
	testutil.Buffer
}

// find returns the log records whose msg contains msg.
func (b *logBuffer) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(b.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if m, _ := rec["msg"].(string); strings.Contains(m, msg) {
			out = append(out, rec)
		}
	}
	return out
}

// metric reads a counter (or a histogram's sample count) with exactly these labels from the registry;
// 0 when the series does not exist.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
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
	big := append([]byte(`{"object":"whatsapp_business_account","x":"`), bytes.Repeat([]byte("a"), 4<<20)...)
	big = append(big, '"', '}')
	// The same notification with its object named twice: which one a decoder takes is its own choice.
	dupKey := append([]byte(`{"Object":"page",`), good[1:]...)
	with := func(h map[string]string, k, v string) map[string]string { h[k] = v; return h }
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
		// The signature is checked first, then that the signed body is JSON and unambiguous.
		{"unsigned and not declared JSON", good, map[string]string{"Content-Type": "text/plain"}, 401, "invalid_signature"},
		{"signed, sent as text/plain", good, with(signed(good), "Content-Type", "text/plain"), 415, "unsupported_media_type"},
		{"signed, no content type", good, with(signed(good), "Content-Type", ""), 415, "unsupported_media_type"},
		{"signed, a key twice in different case", dupKey, signed(dupKey), 400, "duplicate_key"},
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

// TestMetricsCountWhatHappened reads the registry after each kind of request: notifications by
// outcome, messages by kind (recorded ones only), duplicates, signature failures, unrouted messages
// and the intake latency's sample count.
func TestMetricsCountWhatHappened(t *testing.T) {
	srv := start(t, redistest.Client(t), "")
	wa := map[string]string{"provider": "whatsapp"}
	outcome := func(o string) map[string]string { return map[string]string{"provider": "whatsapp", "outcome": o} }
	kind := func(k string) map[string]string { return map[string]string{"provider": "whatsapp", "kind": k} }
	text := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Text: "hi"})
	unrouted := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "555", From: "+5511999990002", Text: "hi"})
	steps := []struct {
		name    string
		body    []byte
		headers map[string]string
		status  int
	}{
		{"a text", text, signed(text), 200},
		{"the text redelivered", text, signed(text), 200},
		{"a wrong signature", text, map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(text, "other")}, 401},
		{"no signature", text, nil, 401},
		{"an unrouted phone_number_id", unrouted, signed(unrouted), 200},
	}
	for _, st := range steps {
		if status, body := post(t, srv.url, st.body, st.headers); status != st.status {
			t.Fatalf("%s: got %d %s, want %d", st.name, status, body, st.status)
		}
	}
	for _, c := range []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"accepted notifications", "chatgate_webhook_notifications_total", outcome("ok"), 3},
		{"refused for their signature", "chatgate_webhook_notifications_total", outcome("bad_signature"), 2},
		{"text messages (the redelivery not counted)", "chatgate_webhook_messages_total", kind("text"), 1},
		{"duplicates", "chatgate_webhook_duplicates_total", wa, 1},
		{"signature failures", "chatgate_webhook_signature_failures_total", wa, 2},
		{"unrouted", "chatgate_webhook_unrouted_total", wa, 1},
		{"intake latency samples (accepted requests)", "chatgate_webhook_intake_seconds", wa, 3},
	} {
		if got := metric(t, srv.reg, c.metric, c.labels); got != c.want {
			t.Errorf("%s: %s%v = %v, want %v", c.name, c.metric, c.labels, got, c.want)
		}
	}
}

// TestKindCountedOnceRecorded: a message answered 503 (Redis down) and recorded on Meta's retry is
// counted once, for the retry.
func TestKindCountedOnceRecorded(t *testing.T) {
	redisSrv := redistest.StartServer(t)
	client := redis.NewClient(&redis.Options{Addr: redisSrv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer client.Close()
	srv := start(t, client, "")
	text := map[string]string{"provider": "whatsapp", "kind": "text"}
	body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Text: "hi"})
	redisSrv.Stop(t)
	if status, resp := post(t, srv.url, body, signed(body)); status != 503 {
		t.Fatalf("with Redis down: got %d %s, want 503", status, resp)
	}
	if got := metric(t, srv.reg, "chatgate_webhook_messages_total", text); got != 0 {
		t.Errorf("text messages after the 503: got %v, want 0 (nothing recorded)", got)
	}
	if got := metric(t, srv.reg, "chatgate_webhook_notifications_total", map[string]string{"provider": "whatsapp", "outcome": "unavailable"}); got != 1 {
		t.Errorf("unavailable notifications: got %v, want 1", got)
	}
	redisSrv.Start(t)
	if status, resp := post(t, srv.url, body, signed(body)); status != 200 || !strings.Contains(resp, `"recorded":1`) {
		t.Fatalf("the retry: got %d %s, want recorded", status, resp)
	}
	if got := metric(t, srv.reg, "chatgate_webhook_messages_total", text); got != 1 {
		t.Errorf("text messages after the retry: got %v, want 1", got)
	}
}

// TestPreviousSecretOverHTTP: during a rotation a body signed with the previous secret is accepted
// and recorded like one signed with the current secret; any other secret is still 401.
func TestPreviousSecretOverHTTP(t *testing.T) {
	client := redistest.Client(t)
	srv := start(t, client, "old-secret")
	ctx := context.Background()
	for i, secret := range []string{"old-secret", appSecret} {
		body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Text: "hi " + secret})
		status, resp := post(t, srv.url, body, map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(body, secret)})
		if status != 200 || !strings.Contains(resp, `"recorded":1`) {
			t.Errorf("signed with %s: got %d %s, want 200 recorded", secret, status, resp)
		}
		if n := len(client.Keys(ctx, "cg:{t}:msg:*").Val()); n != i+1 {
			t.Errorf("signed with %s: %d messages recorded in all, want %d", secret, n, i+1)
		}
	}
	body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Text: "forged"})
	before := redistest.Snapshot(t, client)
	status, resp := post(t, srv.url, body, map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(body, "older-secret")})
	if status != 401 || errCode(resp) != "invalid_signature" {
		t.Errorf("signed with neither secret: got %d %s, want 401 invalid_signature", status, resp)
	}
	if redistest.Snapshot(t, client) != before {
		t.Errorf("the refused request recorded something")
	}
}

// TestFailedStatusOverHTTP: a signed `failed` status with errors[] is stored with its code and title
// and is final (a later `delivered` does not overwrite it), and the agent's event log gets one
// message.status event for it.
func TestFailedStatusOverHTTP(t *testing.T) {
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
	if _, _, err := router.UpdateStatus(ctx, m.ID, routing.StatusUpdate{State: "sent", ProviderMessageID: "wamid.OUT2"}); err != nil {
		t.Fatal(err)
	}
	events := routing.NewStreamLog(client, keyspace.New("t"), 0)
	before, err := events.Since(ctx, "ana", "0", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		status   string
		statuses string // the receipt's count of statuses that changed something
	}{{"failed", `"statuses":1`}, {"delivered", `"statuses":0`}} {
		body := simulate.WhatsAppStatusNotification(simulate.WhatsAppStatus{PhoneNumberID: "100200300", MessageID: "wamid.OUT2",
			Status: st.status, RecipientID: "+5511999990001", ErrorCode: 131026, ErrorTitle: "Message undeliverable"})
		if status, resp := post(t, url, body, signed(body)); status != 200 || !strings.Contains(resp, st.statuses) {
			t.Fatalf("status %s: got %d %s, want 200 with %s", st.status, status, resp, st.statuses)
		}
	}
	h := client.HGetAll(ctx, "cg:{t}:msg:"+m.ID).Val()
	if h["status"] != "failed" || h["error_code"] != "131026" || h["error_title"] != "Message undeliverable" {
		t.Errorf("stored message: status %q error %q %q, want failed 131026 \"Message undeliverable\"", h["status"], h["error_code"], h["error_title"])
	}
	after, err := events.Since(ctx, "ana", "0", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []routing.Message
	for _, ev := range after[len(before):] {
		if ev.Type != routing.EventMessageStatus {
			continue
		}
		raw, _ := json.Marshal(ev.Message)
		var msg routing.Message
		if err := json.Unmarshal(raw, &msg); err != nil {
			t.Fatal(err)
		}
		got = append(got, msg)
	}
	if len(got) != 1 || got[0].ID != m.ID || got[0].Status != "failed" || got[0].Error == nil ||
		got[0].Error.Code != 131026 || got[0].Error.Title != "Message undeliverable" {
		t.Errorf("message.status events in ana's log after the webhooks: got %+v, want one: failed 131026", got)
	}
}

// TestUnreadBodiesAreLogged: invalid JSON, a payload that is not understood and a message of an
// unknown kind are logged with their body, long digit runs (phone numbers) masked.
func TestUnreadBodiesAreLogged(t *testing.T) {
	srv := start(t, redistest.Client(t), "")
	future := testutil.Fixture(t, "webhooks", "whatsapp", "testdata", "future_kind.json")
	notJSON := []byte(`{"object":"whatsapp_business_account","from":"5511999990001",`)
	weird := []byte(`{"object":"whatsapp_business_account","entry":"5511999990001"}`)
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		msg    string // the log line's message
		attr   string // the attribute quoting the body
	}{
		{"invalid JSON", notJSON, 400, "signed request with invalid JSON", "body"},
		{"not understood", weird, 200, "signed payload not understood", "body"},
		{"unknown kind", future, 200, "message of an unknown kind", "raw"},
	} {
		if status, resp := post(t, srv.url, tc.body, signed(tc.body)); status != tc.status {
			t.Fatalf("%s: got %d %s, want %d", tc.name, status, resp, tc.status)
		}
		recs := srv.logs.find(t, tc.msg)
		if len(recs) != 1 {
			t.Fatalf("%s: %d log lines %q, want 1", tc.name, len(recs), tc.msg)
		}
		quoted, _ := recs[0][tc.attr].(string)
		if !strings.Contains(quoted, "******") || strings.Contains(quoted, "5511999990001") || strings.Contains(quoted, "99999") {
			t.Errorf("%s: logged %s=%q, want the phone number masked", tc.name, tc.attr, quoted)
		}
		if tc.name == "unknown kind" && (recs[0]["kind"] != "poll_vote" || !strings.Contains(quoted, `"poll_id"`)) {
			t.Errorf("unknown kind: log line %v, want kind poll_vote and the raw message", recs[0])
		}
	}
}
