package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/widget"
)

// hostile is one bad request: what is sent and the answer it must get.
type hostile struct {
	name    string
	method  string
	path    string
	body    []byte
	headers map[string]string
	status  int
	code    string // the JSON error code; "" for a 200
	// resetOK: the server answers and closes while the client is still writing, so the client may
	// see a reset or a broken pipe instead of the answer (fasthttp stops reading at its header buffer).
	resetOK bool
}

// TestHostileInputIsRefusedAndChangesNothing sends more than forty bad requests across every public
// endpoint of a running gateway (two replicas, a worker, the fake provider) and checks each answer
// and that Redis holds nothing new afterwards.
func TestHostileInputIsRefusedAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{worker: true, agents: 3, fake: true, offerTimeout: 10 * time.Minute})
	r1, r2 := e.replicas[0].url(), e.replicas[1].url()
	e.mustOnline(r1, "whatsapp", agentID(1))

	// A card offered to a01, a WebChat message already accepted (replayed below), a conversation.
	if r, err := e.postWhatsApp(r1, whatsAppMessage(customer(1), "wamid.hostile.first", "hello")); err != nil || r.status != 200 {
		t.Fatalf("setup webhook: %d %v", r.status, err)
	}
	cardID, convID := e.onlyCard(r1, "a01", 5*time.Second)
	wcBody := simulate.WebChatBody(simulate.WebChatMessage{Site: "shop", VisitorID: "v-1", VisitorName: "Maria", ID: "m-replayed", Text: "Oi"})
	wcTS, wcSig := simulate.SignWebChat(wcBody, siteSecret, time.Now())
	if r, err := e.do("POST", r1+"/webhooks/webchat", wcBody, map[string]string{"X-Chatgate-Timestamp": wcTS, "X-Chatgate-Signature": wcSig}); err != nil || r.status != 200 {
		t.Fatalf("setup webchat webhook: %d %s %v", r.status, r.body, err)
	}

	valid := whatsAppMessage(customer(2), "wamid.hostile.valid", "valid but refused")
	signed := func(body []byte) map[string]string {
		return map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(body, appSecret)}
	}
	deep := []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000))
	huge := []byte(`{"object":"whatsapp_business_account","entry":[` + strings.Repeat(`{"id":"1","changes":[]},`, 2600) + `{"id":"1","changes":[]}]}`)
	unknownNumber := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "999999999", From: customer(3), ID: "wamid.hostile.unknown", Text: "to nobody"})
	webchatSigned := func(body []byte, secret string, at time.Time) map[string]string {
		ts, sig := simulate.SignWebChat(body, secret, at)
		return map[string]string{"X-Chatgate-Timestamp": ts, "X-Chatgate-Signature": sig}
	}
	wcNew := simulate.WebChatBody(simulate.WebChatMessage{Site: "shop", VisitorID: "v-2", ID: "m-new", Text: "new"})
	wcLong := simulate.WebChatBody(simulate.WebChatMessage{Site: "shop", VisitorID: "v-3", ID: "m-long", Text: strings.Repeat("a", 5000)})
	wcOtherSite := simulate.WebChatBody(simulate.WebChatMessage{Site: "elsewhere", VisitorID: "v-4", ID: "m-x", Text: "x"})
	foreignVisitor, _, _ := widget.NewTokens("another-gateways-secret", "", time.Hour, time.Now).Mint("shop", "w-1", "", "")
	expiredVisitor, _, _ := widget.NewTokens(jwtSecret, "", time.Minute, func() time.Time { return time.Now().Add(-time.Hour) }).Mint("shop", "w-1", "", "")
	expired, _ := auth.Mint(jwtSecret, "chatgate", "a01", auth.RoleAgent, time.Minute, time.Now().Add(-time.Hour))
	foreign, _ := auth.Mint("another-gateways-secret", "chatgate", "a01", auth.RoleAgent, time.Hour, time.Now())
	supervisorForged, _ := auth.Mint("another-gateways-secret", "chatgate", "boss", auth.RoleAdmin, time.Hour, time.Now())
	none := unsignedJWT(`{"alg":"none","typ":"JWT"}`, fmt.Sprintf(`{"sub":"a01","role":"admin","iss":"chatgate","exp":%d}`, time.Now().Add(time.Hour).Unix()))
	a01, a02 := bearer(t, "a01", auth.RoleAgent), bearer(t, "a02", auth.RoleAgent)
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for kk, vv := range h {
			out[kk] = vv
		}
		return out
	}
	template := func(to, name string, params string) []byte {
		return []byte(fmt.Sprintf(`{"channel":"whatsapp","to":%q,"phone_number_id":%q,"template":{"name":%q,"language":"pt_BR","body_params":%s}}`,
			to, phoneNumberID, name, params))
	}

	cases := []hostile{
		// WhatsApp webhook: signatures, sizes, shapes.
		{name: "whatsapp unsigned", method: "POST", path: "/webhooks/whatsapp", body: valid, status: 401, code: "invalid_signature"},
		{name: "whatsapp zero signature", method: "POST", path: "/webhooks/whatsapp", body: valid, headers: map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)}, status: 401, code: "invalid_signature"},
		{name: "whatsapp signed with another secret", method: "POST", path: "/webhooks/whatsapp", body: valid, headers: map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(valid, "not-the-app-secret")}, status: 401, code: "invalid_signature"},
		{name: "whatsapp sha1 signature scheme", method: "POST", path: "/webhooks/whatsapp", body: valid, headers: map[string]string{"X-Hub-Signature-256": "sha1=" + strings.Repeat("a", 40)}, status: 401, code: "invalid_signature"},
		{name: "whatsapp body changed after signing", method: "POST", path: "/webhooks/whatsapp", body: append([]byte(nil), valid[:len(valid)-1]...), headers: signed(valid), status: 401, code: "invalid_signature"},
		{name: "whatsapp signature not hex", method: "POST", path: "/webhooks/whatsapp", body: valid, headers: map[string]string{"X-Hub-Signature-256": "sha256=zz" + strings.Repeat("0", 62)}, status: 401, code: "invalid_signature"},
		{name: "whatsapp body over its limit", method: "POST", path: "/webhooks/whatsapp", body: oversized(4<<20 + 1), headers: signed(oversized(4<<20 + 1)), status: 413, code: "body_too_large"},
		{name: "webchat webhook keeps the small limit", method: "POST", path: "/webhooks/webchat", body: oversized(70 << 10), headers: signed(oversized(70 << 10)), status: 413, code: "body_too_large"},
		{name: "whatsapp 2 MB notification, over other routes' limit", method: "POST", path: "/webhooks/whatsapp", body: oversized(2 << 20), headers: signed(oversized(2 << 20)), status: 200},
		{name: "whatsapp deeply nested JSON", method: "POST", path: "/webhooks/whatsapp", body: deep, headers: signed(deep), status: 400, code: "invalid_json"},
		{name: "whatsapp huge entry list, nothing in it", method: "POST", path: "/webhooks/whatsapp", body: huge, headers: signed(huge), status: 200},
		{name: "whatsapp not JSON", method: "POST", path: "/webhooks/whatsapp", body: []byte("<xml/>"), headers: signed([]byte("<xml/>")), status: 400, code: "invalid_json"},
		{name: "whatsapp unknown phone number id", method: "POST", path: "/webhooks/whatsapp", body: unknownNumber, headers: signed(unknownNumber), status: 200},
		{name: "whatsapp handshake wrong token", method: "GET", path: "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=123", status: 403, code: "verification_failed"},
		{name: "whatsapp handshake wrong mode", method: "GET", path: "/webhooks/whatsapp?hub.mode=unsubscribe&hub.verify_token=" + verifyToken + "&hub.challenge=123", status: 403, code: "verification_failed"},
		{name: "whatsapp path traversal", method: "POST", path: "/webhooks/../webhooks/whatsapp/..%2f..%2fetc%2fpasswd", body: valid, headers: signed(valid), status: 404, code: "route_not_found"},

		// WebChat webhook: signatures and replays.
		{name: "webchat unsigned", method: "POST", path: "/webhooks/webchat", body: wcNew, status: 401, code: "invalid_signature"},
		{name: "webchat signed with another secret", method: "POST", path: "/webhooks/webchat", body: wcNew, headers: webchatSigned(wcNew, "not-the-site-secret", time.Now()), status: 401, code: "invalid_signature"},
		{name: "webchat replay, ten minutes old", method: "POST", path: "/webhooks/webchat", body: wcNew, headers: webchatSigned(wcNew, siteSecret, time.Now().Add(-10*time.Minute)), status: 401, code: "invalid_signature"},
		{name: "webchat from the future", method: "POST", path: "/webhooks/webchat", body: wcNew, headers: webchatSigned(wcNew, siteSecret, time.Now().Add(10*time.Minute)), status: 401, code: "invalid_signature"},
		{name: "webchat exact replay inside the window", method: "POST", path: "/webhooks/webchat", body: wcBody, headers: map[string]string{"X-Chatgate-Timestamp": wcTS, "X-Chatgate-Signature": wcSig}, status: 200},
		{name: "webchat unknown site", method: "POST", path: "/webhooks/webchat", body: wcOtherSite, headers: webchatSigned(wcOtherSite, siteSecret, time.Now()), status: 401, code: "invalid_signature"},
		{name: "webchat text over the limit", method: "POST", path: "/webhooks/webchat", body: wcLong, headers: webchatSigned(wcLong, siteSecret, time.Now()), status: 413, code: "message_too_long"},

		// The widget's visitor endpoints.
		{name: "widget session from a foreign origin", method: "POST", path: "/webchat/v1/sessions", body: []byte(`{"site":"shop"}`), headers: map[string]string{"Origin": "http://evil.example"}, status: 403, code: "origin_not_allowed"},
		{name: "widget session for an unknown site", method: "POST", path: "/webchat/v1/sessions", body: []byte(`{"site":"../shop"}`), headers: map[string]string{"Origin": "http://127.0.0.1"}, status: 404, code: "unknown_site"},
		{name: "widget message without a token", method: "POST", path: "/webchat/v1/messages", body: []byte(`{"text":"hi"}`), headers: map[string]string{"Origin": "http://127.0.0.1"}, status: 401, code: "invalid_visitor_token"},
		{name: "widget message with a foreign token", method: "POST", path: "/webchat/v1/messages", body: []byte(`{"text":"hi"}`), headers: map[string]string{"Origin": "http://127.0.0.1", "Authorization": "Bearer " + foreignVisitor}, status: 401, code: "invalid_visitor_token"},
		{name: "widget message with an expired token", method: "POST", path: "/webchat/v1/messages", body: []byte(`{"text":"hi"}`), headers: map[string]string{"Origin": "http://127.0.0.1", "Authorization": "Bearer " + expiredVisitor}, status: 401, code: "invalid_visitor_token"},
		{name: "widget events with an agent's token", method: "GET", path: "/webchat/v1/events", headers: map[string]string{"Origin": "http://127.0.0.1", "Authorization": a01["Authorization"]}, status: 401, code: "invalid_visitor_token"},

		// Agents' API: tokens.
		{name: "presence without a token", method: "GET", path: "/v1/agents/a01/presence", status: 401, code: "invalid_token"},
		{name: "presence with an expired token", method: "GET", path: "/v1/agents/a01/presence", headers: map[string]string{"Authorization": "Bearer " + expired}, status: 401, code: "invalid_token"},
		{name: "presence with a foreign token", method: "GET", path: "/v1/agents/a01/presence", headers: map[string]string{"Authorization": "Bearer " + foreign}, status: 401, code: "invalid_token"},
		{name: "alg none token claiming admin", method: "GET", path: "/v1/agents", headers: map[string]string{"Authorization": "Bearer " + none}, status: 401, code: "invalid_token"},
		{name: "forged admin token", method: "GET", path: "/v1/ops/queues", headers: map[string]string{"Authorization": "Bearer " + supervisorForged}, status: 401, code: "invalid_token"},
		{name: "garbage bearer", method: "GET", path: "/v1/agents/me/presence", headers: map[string]string{"Authorization": "Bearer ' OR 1=1 --"}, status: 401, code: "invalid_token"},

		// Agents' API: another agent's ids, roles.
		{name: "log out another agent", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"offline"}`), headers: a02, status: 403, code: "forbidden"},
		{name: "read another agent's events", method: "GET", path: "/v1/agents/a01/events", headers: a02, status: 403, code: "forbidden"},
		{name: "accept another agent's card", method: "POST", path: "/v1/cards/" + cardID + "/accept", headers: a02, status: 403, code: "not_your_card"},
		{name: "read another agent's conversation", method: "GET", path: "/v1/conversations/" + convID + "/messages", headers: a02, status: 403, code: "not_your_conversation"},
		{name: "reply in another agent's conversation", method: "POST", path: "/v1/conversations/" + convID + "/messages", body: []byte(`{"text":"hi"}`), headers: a02, status: 403, code: "not_your_conversation"},
		{name: "supervisor list as an agent", method: "GET", path: "/v1/agents", headers: a01, status: 403, code: "role_required"},
		{name: "ops as an agent", method: "GET", path: "/v1/ops/queues", headers: a01, status: 403, code: "role_required"},
		{name: "metrics without a token", method: "GET", path: "/metrics", status: 401, code: "invalid_token"},

		// Agents' API: bodies and ids.
		{name: "pause without a reason", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"paused"}`), headers: a01, status: 422, code: "invalid_reason"},
		{name: "pause with an unknown reason", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"paused","reason":"<script>"}`), headers: a01, status: 422, code: "invalid_reason"},
		{name: "unknown state", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"dancing"}`), headers: a01, status: 400, code: "invalid_state"},
		{name: "toggle with broken JSON", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":`), headers: a01, status: 400, code: "invalid_json"},
		{name: "toggle as text/plain", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"offline"}`), headers: with(a01, "Content-Type", "text/plain"), status: 415, code: "unsupported_media_type"},
		{name: "toggle deeply nested JSON", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: deep, headers: a01, status: 400, code: "invalid_json"},
		{name: "toggle a channel not enabled", method: "PUT", path: "/v1/agents/a01/channels/sms", body: []byte(`{"state":"online"}`), headers: a01, status: 403, code: "channel_not_enabled"},
		{name: "path traversal in an agent id", method: "GET", path: "/v1/agents/..%2F..%2Fetc%2Fpasswd/presence", headers: a01, status: 403, code: "forbidden"},
		{name: "path traversal in a card id", method: "POST", path: "/v1/cards/..%2F" + cardID + "/accept", headers: a01, status: 400, code: "invalid_id"},
		{name: "unknown card", method: "POST", path: "/v1/cards/c0ffee/accept", headers: a01, status: 404, code: "card_not_found"},
		{name: "SQL in a conversation id", method: "GET", path: "/v1/conversations/1%27%20OR%20%271%27=%271/messages", headers: a01, status: 400, code: "invalid_id"},
		{name: "stream from a made-up event id", method: "GET", path: "/v1/agents/a01/events", headers: with(a01, "Last-Event-ID", "../../x"), status: 400, code: "invalid_last_event_id"},
		{name: "new conversation while not on WhatsApp", method: "POST", path: "/v1/conversations", body: template("+5511999990009", "order_update", `["a","b"]`), headers: a02, status: 409, code: "whatsapp_not_logged_in"},
		{name: "new conversation to a bad number", method: "POST", path: "/v1/conversations", body: template("5511-not-a-number", "order_update", `["a","b"]`), headers: a01, status: 422, code: "validation_failed"},
		{name: "new conversation, unknown template", method: "POST", path: "/v1/conversations", body: template("+5511999990009", "'; DROP TABLE templates; --", `["a","b"]`), headers: a01, status: 422, code: "validation_failed"},
		{name: "new conversation, missing parameter", method: "POST", path: "/v1/conversations", body: template("+5511999990009", "order_update", `["a"]`), headers: a01, status: 422, code: "validation_failed"},
		{name: "new conversation, bad idempotency key", method: "POST", path: "/v1/conversations", body: template("+5511999990009", "order_update", `["a","b"]`), headers: with(a01, "Idempotency-Key", strings.Repeat("k", 300)), status: 400, code: "invalid_idempotency_key"},
		{name: "dev token for a made-up agent", method: "POST", path: "/console/dev-token", body: []byte(`{"agent":"../../root"}`), status: 422, code: "validation_failed"},

		// HTTP itself.
		{name: "path traversal under /v1 without a token", method: "GET", path: "/v1/../../etc/passwd", status: 401, code: "invalid_token"},
		{name: "path traversal to an unknown path", method: "GET", path: "/static/../../etc/passwd", status: 404, code: "route_not_found"},
		{name: "headers over the limit", method: "GET", path: "/healthz", headers: map[string]string{"Cookie": strings.Repeat("c", 20<<10)}, status: 431, code: "headers_too_large", resetOK: true},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d hostile requests; the table promises at least 40", len(cases))
	}
	// asynq's process heartbeats change on their own; the per-IP limiter counts refused requests too;
	// the retention sweep reschedules its next look at conversations and the wallboard refreshes its
	// rows' digests in the background, whatever the requests.
	ignored := []string{"asynq:servers", "asynq:workers", "rate:" + prefix + "wcrate:", prefix + "retention", prefix + "board:"}
	for i, c := range cases {
		base := []string{r1, r2}[i%2]
		before := snapshot(t, e.client, ignored)
		r, err := e.do(c.method, base+c.path, c.body, c.headers)
		switch {
		case err != nil && c.resetOK && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")):
			// Refused, the answer lost with the connection the server closed while the client was still
			// writing: a reset when the client reads, a broken pipe when it is still writing.
			r = response{status: c.status, code: c.code}
		case err != nil:
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
	for _, p := range e.replicas {
		if !p.alive() {
			t.Fatalf("%s exited during the hostile requests", p.name)
		}
	}
	t.Logf("%d hostile requests, each refused as expected and none changed Redis", len(cases))

	// Script and SQL text from a customer is accepted as text and handed back exactly, as JSON.
	payload := `<script>alert(document.cookie)</script> '; DROP TABLE messages; -- {{7*7}} ${jndi:ldap://x}`
	if r, err := e.postWhatsApp(r2, whatsAppMessage(customer(1), "wamid.hostile.script", payload)); err != nil || r.status != 200 {
		t.Fatalf("script text: %d %v", r.status, err)
	}
	if r, err := e.do("POST", r1+"/v1/cards/"+cardID+"/accept", nil, a01); err != nil || r.status != 200 {
		t.Fatalf("accept: %d %s %v", r.status, r.body, err)
	}
	r, err := e.do("GET", r1+"/v1/conversations/"+convID+"/messages", nil, a01)
	if err != nil || r.status != 200 {
		t.Fatalf("messages: %d %v", r.status, err)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("messages served as %q, want application/json", ct)
	}
	var got struct {
		Messages []struct {
			Text string `json:"text"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range got.Messages {
		found = found || m.Text == payload
	}
	if !found {
		t.Errorf("the script/SQL text did not come back verbatim: %s", truncate(r.body))
	}
}

// TestSlowClientsCannotExhaustTheServer opens many connections that dribble their headers a byte a
// second (slowloris): the server keeps answering others and cuts the slow ones at its read timeout.
func TestSlowClientsCannotExhaustTheServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{replicas: 1, agents: 1})
	addr := e.replicas[0].addr
	const slow = 300
	conns := make([]net.Conn, 0, slow)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < slow; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if _, err := c.Write([]byte("POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a byte a second on every connection, for at most 12 s
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; i < 12; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, c := range conns {
					_, _ = c.Write([]byte("a"))
				}
			}
		}
	}()
	// Meanwhile everybody else is served promptly.
	var worst time.Duration
	for i := 0; i < 20; i++ {
		start := time.Now()
		r, err := e.do("GET", e.replicas[0].url()+"/healthz", nil, nil)
		if err != nil || r.status != 200 {
			t.Fatalf("healthz %d while %d slow clients hang on: %d %v", i, slow, r.status, err)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(200 * time.Millisecond) // the probes are paced over the slow clients' hold
	}
	if worst > 2*time.Second {
		t.Errorf("slowest healthz answer %v with %d slow clients, want under 2 s", worst, slow)
	}
	// The read timeout (5 s in the test configuration) ends every slow connection.
	closed := 0
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range conns {
		_ = c.SetReadDeadline(deadline)
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					closed++
				}
				break
			}
		}
	}
	close(stop)
	wg.Wait()
	if closed != slow {
		t.Errorf("%d of %d slow connections were cut by the server within its read timeout", closed, slow)
	}
	t.Logf("%d slow clients: healthz worst %v; %d cut by the read timeout", slow, worst.Round(time.Millisecond), closed)
}

// ---- helpers ------------------------------------------------------------------------------------

func bearer(t testing.TB, agent string, role auth.Role) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token(t, agent, role, time.Hour)}
}

func unsignedJWT(header, claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims)) + "."
}

func oversized(n int) []byte {
	return []byte(`{"object":"whatsapp_business_account","pad":"` + strings.Repeat("x", n) + `"}`)
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// leaks reports a configured secret found in an answer.
func leaks(body []byte) string {
	for _, s := range []string{jwtSecret, appSecret, siteSecret, accessToken, verifyToken} {
		if strings.Contains(string(body), s) {
			return s
		}
	}
	return ""
}

// snapshot renders every key (but those under the ignored prefixes) with its content, read by type
// and sorted, so that a rewrite of the same value (a hash's fields in another order) is no change.
func snapshot(t testing.TB, c redis.UniversalClient, ignored []string) string {
	t.Helper()
	ctx := context.Background()
	keys := scanAll(t, c, "*")
	sort.Strings(keys)
	var b strings.Builder
next:
	for _, k := range keys {
		for _, p := range ignored {
			if strings.HasPrefix(k, p) {
				continue next
			}
		}
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("snapshot %s: %v", k, err)
		}
		var v any
		switch typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "hash":
			v, err = c.HGetAll(ctx, k).Result() // printed with sorted keys
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "set":
			var m []string
			m, err = c.SMembers(ctx, k).Result()
			sort.Strings(m)
			v = m
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = c.XRange(ctx, k, "-", "+").Result()
		case "none":
			continue // expired between SCAN and TYPE
		default:
			v = typ
		}
		if err != nil && err != redis.Nil {
			t.Fatalf("snapshot %s: %v", k, err)
		}
		fmt.Fprintf(&b, "%s=%v\n", k, v)
	}
	return b.String()
}

func diff(before, after string) string {
	was := map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		was[l] = true
	}
	var out []string
	for _, l := range strings.Split(after, "\n") {
		if !was[l] {
			k, _, _ := strings.Cut(l, "=")
			out = append(out, "  new or changed: "+k)
		}
	}
	return strings.Join(out, "\n")
}
