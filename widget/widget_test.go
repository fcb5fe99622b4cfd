package widget_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound/webchat"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
	webchathook "github.com/chatgate/chatgate/webhooks/webchat"
	"github.com/chatgate/chatgate/widget"
)

func TestWebhookMessageWaitsThenBecomesACard(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Nobody online on WebChat: the card waits in the site's queue.
	if r := e.webhook(simulate.WebChatMessage{Site: "shop", VisitorID: "v-1", VisitorName: "Maria", ID: "m-1", Text: "Oi", PageURL: "https://shop.example/cart"}, shopSecret, time.Now()); r.status != 200 {
		t.Fatalf("webhook: got %d %v", r.status, r.body)
	}
	if got := e.waiting("support"); got != 1 {
		t.Fatalf("waiting with nobody online: got %d, want 1", got)
	}
	// Paused is not eligible either.
	e.set("cat", presence.Online, "")
	card := e.offered("cat")
	if card.Channel != "webchat" || card.Contact == nil || card.Contact.ID != "v-1" || card.Contact.Name != "Maria" {
		t.Fatalf("card: got %+v", card)
	}
	e.set("cat", presence.Paused, "lunch")
	if r := e.webhook(simulate.WebChatMessage{Site: "shop", VisitorID: "v-2", ID: "m-2", Text: "Hello"}, shopSecret, time.Now()); r.status != 200 {
		t.Fatalf("webhook: got %d %v", r.status, r.body)
	}
	if got := e.waiting("support"); got != 1 {
		t.Fatalf("waiting while the only agent is paused: got %d, want 1", got)
	}
	// The redelivered webhook is recognised; the visitor id is the contact and the page URL is kept.
	r := e.webhook(simulate.WebChatMessage{Site: "shop", VisitorID: "v-2", ID: "m-2", Text: "Hello"}, shopSecret, time.Now())
	if r.status != 200 || r.body["duplicates"] != float64(1) {
		t.Fatalf("redelivery: got %d %v", r.status, r.body)
	}
	e.set("cat", presence.Online, "")
	testutil.Eventually(t, waitTimeout, "the second card offered", func() bool { return e.waiting("support") == 0 })
	msgs, err := e.router.Messages(context.Background(), card.ConversationID, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "Oi" || !strings.Contains(string(msgs[0].Payload), `"page_url":"https://shop.example/cart"`) {
		t.Fatalf("stored message: got %+v %v", msgs, err)
	}
}

func TestSharedQueuePauseHoldsWebChat(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	// ana serves sales on WhatsApp and WebChat: pausing WhatsApp pauses WebChat too.
	e.set("ana", presence.Online, "")
	if _, err := e.presence.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	if _, err := e.presence.Set(ctx, "ana", "whatsapp", presence.Paused, "lunch", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	tok, _ := e.session("blog", blogOrigin)
	if r := e.send(tok, blogOrigin, `{"text":"anyone?"}`); r.status != http.StatusAccepted {
		t.Fatalf("send: got %d %v", r.status, r.body)
	}
	if got := e.waiting("sales"); got != 1 {
		t.Fatalf("waiting while WhatsApp is paused in the shared queue: got %d, want 1", got)
	}
	if _, err := e.presence.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	if c := e.offered("ana"); c.Channel != "webchat" {
		t.Fatalf("card after resuming: got %+v", c)
	}
}

func TestWidgetConversationEndToEnd(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.set("cat", presence.Online, "")
	tok, visitor := e.session("shop", shopOrigin)
	s := e.stream(tok, "")

	r := e.send(tok, shopOrigin, `{"id":"c-1","text":"<script>alert(1)</script>","page_url":"https://shop.example/p/1"}`)
	if r.status != http.StatusAccepted || r.body["status"] != "recorded" {
		t.Fatalf("send: got %d %v", r.status, r.body)
	}
	echo := s.next()
	if echo.typ != "message" || echo.data.Message.From != "visitor" || echo.data.Message.Text != "<script>alert(1)</script>" {
		t.Fatalf("echo: got %+v", echo)
	}
	// A retried send with the same id records nothing new.
	if r := e.send(tok, shopOrigin, `{"id":"c-1","text":"<script>alert(1)</script>"}`); r.status != http.StatusOK || r.body["status"] != "duplicate" {
		t.Fatalf("retry: got %d %v", r.status, r.body)
	}
	card := e.offered("cat")
	if card.Contact == nil || card.Contact.ID != visitor || card.Contact.Name != "Maria" {
		t.Fatalf("card contact: got %+v", card.Contact)
	}
	agent := map[string]string{"Authorization": "Bearer " + agentToken(t, "cat")}
	if r := e.do(http.MethodPost, "/v1/cards/"+card.ID+"/accept", nil, agent); r.status != 200 {
		t.Fatalf("accept: got %d %v", r.status, r.body)
	}
	// The agent is writing: the visitor sees a passing notice, with no id to resume from.
	if r := e.do(http.MethodPost, "/v1/conversations/"+card.ConversationID+"/typing", nil, agent); r.status != http.StatusNoContent {
		t.Fatalf("typing: got %d %v", r.status, r.body)
	}
	if ev := s.next(); ev.typ != "typing" || ev.id != "" || ev.data.Conversation == nil || ev.data.Conversation.ID != card.ConversationID {
		t.Fatalf("typing notice: got %+v", ev)
	}
	other := map[string]string{"Authorization": "Bearer " + agentToken(t, "ana")}
	if r := e.do(http.MethodPost, "/v1/conversations/"+card.ConversationID+"/typing", nil, other); r.status != http.StatusForbidden || r.code() != "not_your_conversation" {
		t.Fatalf("typing by another agent: got %d %v", r.status, r.body)
	}
	r = e.do(http.MethodPost, "/v1/conversations/"+card.ConversationID+"/messages", []byte(`{"text":"Olá! <b>Como</b> posso ajudar?"}`), agent)
	if r.status != http.StatusAccepted {
		t.Fatalf("reply: got %d %v", r.status, r.body)
	}
	replyID := r.body["message_id"].(string)
	reply := s.next()
	if reply.typ != "message" || reply.data.Message.From != "agent" || reply.data.Message.ID != replyID || reply.data.Message.Text != "Olá! <b>Como</b> posso ajudar?" {
		t.Fatalf("reply on the stream: got %+v", reply)
	}
	// Written to the open widget stream: delivered.
	testutil.Eventually(t, waitTimeout, "the reply delivered", func() bool {
		m, err := e.router.Message(context.Background(), replyID)
		return err == nil && m.Status == "delivered"
	})
	// A second connection resuming after the echo gets the reply and nothing before it.
	s2 := e.stream(tok, echo.id)
	if got := s2.next(); got.id != reply.id {
		t.Fatalf("resumed stream: got %s %+v, want the reply %s", got.id, got.data, reply.id)
	}
	// The agent closes: the visitor is told, on both streams.
	if r := e.do(http.MethodPost, "/v1/cards/"+card.ID+"/close", nil, agent); r.status != 200 {
		t.Fatalf("close: got %d %v", r.status, r.body)
	}
	for _, st := range []*sse{s, s2} {
		if ev := st.next(); ev.typ != "conversation.closed" || ev.data.Conversation == nil || ev.data.Conversation.ID != card.ConversationID {
			t.Fatalf("closed notice: got %+v", ev)
		}
	}
	if r := e.do(http.MethodPost, "/v1/conversations/"+card.ConversationID+"/typing", nil, agent); r.status != http.StatusConflict || r.code() != "conversation_closed" {
		t.Fatalf("typing after close: got %d %v", r.status, r.body)
	}
	s.none(200 * time.Millisecond)
}

// callbackSite records the signed callbacks a site receives and answers with status.
type callbackSite struct {
	mu     sync.Mutex
	bodies [][]byte
	status int
	bad    int // callbacks whose signature did not verify
}

func (c *callbackSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get(webchathook.HeaderTimestamp)
	c.mu.Lock()
	defer c.mu.Unlock()
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)) > time.Minute || !hmac.Equal([]byte(r.Header.Get(webchathook.HeaderSignature)), []byte(webchathook.Sign([]byte(hookSecret), ts, body))) {
		c.bad++
	}
	c.bodies = append(c.bodies, body)
	w.WriteHeader(c.status)
}

func (c *callbackSite) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bodies)
}

func TestReplyToWebhookSiteGoesToCallback(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		wantStatus string
		wantCalls  int
	}{
		{"2xx delivers", http.StatusNoContent, "delivered", 1},
		{"permanent 4xx fails at once", http.StatusGone, "failed", 1},
		{"5xx is retried, then fails", http.StatusBadGateway, "failed", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site := &callbackSite{status: tc.status}
			srv := httptest.NewServer(site)
			defer srv.Close()
			e := newEnv(t, envOptions{callbackURL: srv.URL, workers: true})
			e.set("cat", presence.Online, "")
			if r := e.webhook(simulate.WebChatMessage{Site: "hooked", VisitorID: "v-9", ID: "m-1", Text: "Oi"}, hookSecret, time.Now()); r.status != 200 {
				t.Fatalf("webhook: got %d %v", r.status, r.body)
			}
			card := e.offered("cat")
			agent := map[string]string{"Authorization": "Bearer " + agentToken(t, "cat")}
			e.do(http.MethodPost, "/v1/cards/"+card.ID+"/accept", nil, agent)
			r := e.do(http.MethodPost, "/v1/conversations/"+card.ConversationID+"/messages", []byte(`{"text":"Tudo bem?"}`), agent)
			if r.status != http.StatusAccepted {
				t.Fatalf("reply: got %d %v", r.status, r.body)
			}
			id := r.body["message_id"].(string)
			var msg routing.Message
			testutil.Eventually(t, waitTimeout, "the reply's final status", func() bool {
				m, err := e.router.Message(context.Background(), id)
				msg = m
				return err == nil && (m.Status == "delivered" || m.Status == "failed")
			})
			if msg.Status != tc.wantStatus {
				t.Fatalf("status: got %s, want %s (%+v)", msg.Status, tc.wantStatus, msg.Error)
			}
			if tc.wantStatus == "failed" && (msg.Error == nil || msg.Error.Code != tc.status) {
				t.Fatalf("failure reason: got %+v, want code %d", msg.Error, tc.status)
			}
			if got := site.count(); got != tc.wantCalls {
				t.Fatalf("callbacks: got %d, want %d", got, tc.wantCalls)
			}
			site.mu.Lock()
			defer site.mu.Unlock()
			if site.bad != 0 {
				t.Fatalf("%d callbacks were not signed with the site's secret", site.bad)
			}
			body := string(site.bodies[0])
			for _, want := range []string{`"site":"hooked"`, `"id":"v-9"`, `"text":"Tudo bem?"`, `"id":"` + id + `"`, `"conversation_id":"` + card.ConversationID + `"`} {
				if !strings.Contains(body, want) {
					t.Fatalf("callback body %s lacks %s", body, want)
				}
			}
		})
	}
}

func TestBadInputRecordsNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.set("cat", presence.Online, "")
	ctx := context.Background()
	tok, _ := e.session("shop", shopOrigin)
	blogTok, _ := e.session("blog", blogOrigin)
	expired, _, err := widget.NewTokens(jwtSecret, "", time.Minute, func() time.Time { return time.Now().Add(-time.Hour) }).Mint("shop", "v-old", "", "")
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, _ := widget.NewTokens("another-gateway-secret", "", time.Hour, nil).Mint("shop", "v-x", "", "")
	msg := simulate.WebChatMessage{Site: "shop", VisitorID: "v-1", ID: "m-1", Text: "Oi"}
	signed := func(m simulate.WebChatMessage, secret string, at time.Time) func() response {
		return func() response { return e.webhook(m, secret, at) }
	}
	raw := func(method, path, body string, h map[string]string) func() response {
		return func() response {
			var b []byte
			if body != "" {
				b = []byte(body)
			}
			return e.do(method, path, b, h)
		}
	}
	bearer := func(tok, origin string) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + tok}
		if origin != "" {
			h["Origin"] = origin
		}
		return h
	}
	body := string(simulate.WebChatBody(msg))
	long := simulate.WebChatMessage{Site: "shop", VisitorID: "v-1", ID: "m-2", Text: strings.Repeat("a", 51)}
	cases := []struct {
		name   string
		do     func() response
		status int
		code   string
	}{
		{"webhook unsigned", raw(http.MethodPost, "/webhooks/webchat", body, nil), 401, "invalid_signature"},
		{"webhook wrong secret", signed(msg, "not-the-secret", time.Now()), 401, "invalid_signature"},
		{"webhook replay outside the window", signed(msg, shopSecret, time.Now().Add(-10*time.Minute)), 401, "invalid_signature"},
		{"webhook unknown site", signed(simulate.WebChatMessage{Site: "nowhere", VisitorID: "v", ID: "m", Text: "t"}, shopSecret, time.Now()), 401, "invalid_signature"},
		{"webhook oversized text", signed(long, shopSecret, time.Now()), 413, "message_too_long"},
		{"webhook without visitor", signed(simulate.WebChatMessage{Site: "shop", ID: "m-3", Text: "t"}, shopSecret, time.Now()), 422, "validation_failed"},
		{"session unknown site", raw(http.MethodPost, "/webchat/v1/sessions", `{"site":"nowhere"}`, map[string]string{"Origin": shopOrigin}), 404, "unknown_site"},
		{"session from an origin no site allows", raw(http.MethodPost, "/webchat/v1/sessions", `{"site":"shop"}`, map[string]string{"Origin": "https://evil.example"}), 403, "origin_not_allowed"},
		{"session from another site's origin", raw(http.MethodPost, "/webchat/v1/sessions", `{"site":"shop"}`, map[string]string{"Origin": blogOrigin}), 403, "origin_not_allowed"},
		{"message with another site's origin", raw(http.MethodPost, "/webchat/v1/messages", `{"text":"hi"}`, bearer(tok, blogOrigin)), 403, "origin_not_allowed"},
		{"message from a foreign origin", raw(http.MethodPost, "/webchat/v1/messages", `{"text":"hi"}`, bearer(blogTok, "https://evil.example")), 403, "origin_not_allowed"},
		{"message without token", raw(http.MethodPost, "/webchat/v1/messages", `{"text":"hi"}`, map[string]string{"Origin": shopOrigin}), 401, "invalid_visitor_token"},
		{"message with an expired token", raw(http.MethodPost, "/webchat/v1/messages", `{"text":"hi"}`, bearer(expired, shopOrigin)), 401, "invalid_visitor_token"},
		{"message with a foreign token", raw(http.MethodPost, "/webchat/v1/messages", `{"text":"hi"}`, bearer(foreign, shopOrigin)), 401, "invalid_visitor_token"},
		{"message with an agent token", raw(http.MethodPost, "/webchat/v1/messages", `{"text":"hi"}`, bearer(agentToken(t, "cat"), shopOrigin)), 401, "invalid_visitor_token"},
		{"message too long", raw(http.MethodPost, "/webchat/v1/messages", `{"text":"`+strings.Repeat("a", 51)+`"}`, bearer(tok, shopOrigin)), 413, "message_too_long"},
		{"too many attachments", raw(http.MethodPost, "/webchat/v1/messages",
			`{"attachments":[{"url":"https://a.example/1"},{"url":"https://a.example/2"},{"url":"https://a.example/3"}]}`, bearer(tok, shopOrigin)), 413, "too_many_attachments"},
		{"attachment that is not a web URL", raw(http.MethodPost, "/webchat/v1/messages", `{"attachments":[{"url":"javascript:alert(1)"}]}`, bearer(tok, shopOrigin)), 422, "validation_failed"},
		{"empty message", raw(http.MethodPost, "/webchat/v1/messages", `{"text":"   "}`, bearer(tok, shopOrigin)), 422, "validation_failed"},
		{"malformed JSON", raw(http.MethodPost, "/webchat/v1/messages", `{"text":`, bearer(tok, shopOrigin)), 400, "invalid_json"},
		{"events with an expired token", raw(http.MethodGet, "/webchat/v1/events?token="+expired, "", nil), 401, "invalid_visitor_token"},
		{"events with a bad Last-Event-ID", raw(http.MethodGet, "/webchat/v1/events?token="+tok, "", map[string]string{"Last-Event-ID": "yesterday"}), 400, "invalid_event_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := tenantState(t, e.client)
			r := c.do()
			if r.status != c.status || r.code() != c.code {
				t.Fatalf("got %d %q %v, want %d %q", r.status, r.code(), r.body, c.status, c.code)
			}
			if c.code == "origin_not_allowed" && r.header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("a refused request carries Access-Control-Allow-Origin %q", r.header.Get("Access-Control-Allow-Origin"))
			}
			if after := tenantState(t, e.client); after != before {
				t.Fatalf("the refused request changed Redis:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if cards, _ := e.router.Cards(ctx, "cat"); len(cards) != 0 {
		t.Fatalf("cards after bad input only: got %d, want 0", len(cards))
	}
}

func TestRateLimitsAnswer429WithRetryAfter(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok, _ := e.session("shop", shopOrigin)
	for i := 0; i < e.cfg.WebChat.VisitorRate; i++ {
		if r := e.send(tok, shopOrigin, `{"text":"msg `+strconv.Itoa(i)+`"}`); r.status != http.StatusAccepted {
			t.Fatalf("message %d within the limit: got %d %v", i, r.status, r.body)
		}
	}
	before := tenantState(t, e.client)
	r := e.send(tok, shopOrigin, `{"text":"one too many"}`)
	if r.status != http.StatusTooManyRequests || r.code() != "rate_limited" {
		t.Fatalf("over the visitor limit: got %d %v", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After: got %q", r.header.Get("Retry-After"))
	}
	if after := tenantState(t, e.client); after != before {
		t.Fatal("the limited message changed Redis")
	}
	// Another visitor is not limited by the first one's budget.
	tok2, _ := e.session("shop", shopOrigin)
	if r := e.send(tok2, shopOrigin, `{"text":"hi"}`); r.status != http.StatusAccepted {
		t.Fatalf("another visitor: got %d %v", r.status, r.body)
	}
}

func TestRateLimitPerIP(t *testing.T) {
	e := newEnv(t, envOptions{ipRate: 3})
	for i := 0; i < 3; i++ {
		e.session("shop", shopOrigin)
	}
	r := e.do(http.MethodPost, "/webchat/v1/sessions", []byte(`{"site":"shop"}`), map[string]string{"Origin": shopOrigin})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the IP limit: got %d %v %v", r.status, r.body, r.header)
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, envOptions{})
	pre := func(origin string) response {
		return e.do(http.MethodOptions, "/webchat/v1/messages", nil, map[string]string{"Origin": origin,
			"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
	}
	if r := pre(shopOrigin); r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != shopOrigin {
		t.Fatalf("preflight from an allowed origin: got %d %v", r.status, r.header)
	}
	if r := pre("https://evil.example"); r.status != http.StatusForbidden || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: got %d %v", r.status, r.header)
	}
	r := e.do(http.MethodPost, "/webchat/v1/sessions", []byte(`{"site":"shop"}`), map[string]string{"Origin": shopOrigin})
	if r.status != http.StatusCreated || r.header.Get("Access-Control-Allow-Origin") != shopOrigin {
		t.Fatalf("session from the site's origin: got %d %v", r.status, r.header)
	}
}

func TestWidgetAssets(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, err := http.Get(e.url + "/webchat/widget.js")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(string(js), "/webchat/v1/events") {
		t.Fatalf("widget.js: got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Visitor and agent strings are set with textContent; no HTML sink appears in the script.
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(js), sink) {
			t.Fatalf("widget.js uses %s", sink)
		}
	}
	// Neither the widget nor the demo page needs an inline style or script: the demo runs under a
	// policy that forbids them, and a site's own policy need not allow them for the widget.
	if strings.Contains(string(js), `"style"`) || strings.Contains(string(js), "cssText") {
		t.Fatal("widget.js builds inline styles")
	}
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, css := get("/webchat/widget.css"); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") ||
		!strings.Contains(css, ".cgw-toggle") {
		t.Fatalf("widget.css: got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, page := get("/webchat/demo")
	if resp.StatusCode != 200 {
		t.Fatalf("demo in development: got %d", resp.StatusCode)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, directive := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, directive) {
			t.Errorf("demo's Content-Security-Policy %q lacks %q", csp, directive)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(page, "<style") ||
		strings.Contains(page, " style=") {
		t.Errorf("the demo page relies on inline styles: %q", csp)
	}
	prod := newEnv(t, envOptions{env: "production"})
	if r := prod.do(http.MethodGet, "/webchat/demo", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("demo in production: got %d, want 404", r.status)
	}
}

func TestSessionResumeKeepsTheVisitor(t *testing.T) {
	e := newEnv(t, envOptions{})
	past := func(d time.Duration) string {
		tok, _, err := widget.NewTokens(jwtSecret, "", time.Hour, func() time.Time { return time.Now().Add(-d) }).Mint("shop", "w-returning", "Maria", "")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	resume := func(site, token string) response {
		return e.do(http.MethodPost, "/webchat/v1/sessions", []byte(`{"site":"`+site+`","resume":"`+token+`"}`), map[string]string{"Origin": map[string]string{"shop": shopOrigin, "blog": blogOrigin}[site]})
	}
	// Expired yesterday: renewed for the same visitor, name kept.
	r := resume("shop", past(25*time.Hour))
	if r.status != http.StatusCreated || r.body["visitor_id"] != "w-returning" {
		t.Fatalf("resume: got %d %v", r.status, r.body)
	}
	if r := e.send(r.body["token"].(string), shopOrigin, `{"text":"back again"}`); r.status != http.StatusAccepted {
		t.Fatalf("send with the renewed token: got %d %v", r.status, r.body)
	}
	foreign, _, _ := widget.NewTokens("another-gateway-secret", "", time.Hour, nil).Mint("shop", "w-x", "", "")
	for name, c := range map[string]struct{ site, token string }{
		"expired beyond the window": {"shop", past(widget.ResumeWindow + 2*time.Hour)},
		"signed by another gateway": {"shop", foreign},
		"another site's visitor":    {"blog", past(time.Hour)},
		"an agent token":            {"shop", agentToken(t, "cat")},
	} {
		before := tenantState(t, e.client)
		if r := resume(c.site, c.token); r.status != http.StatusUnauthorized || r.code() != "invalid_visitor_token" {
			t.Fatalf("%s: got %d %v", name, r.status, r.body)
		}
		if tenantState(t, e.client) != before {
			t.Fatalf("%s changed Redis", name)
		}
	}
}

func TestOpenStreamsPerVisitorAreBounded(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok, _ := e.session("shop", shopOrigin)
	var streams []*sse
	for i := 0; i < 8; i++ {
		streams = append(streams, e.stream(tok, ""))
	}
	r := e.do(http.MethodGet, "/webchat/v1/events?token="+tok, nil, nil)
	if r.status != http.StatusTooManyRequests || r.code() != "too_many_streams" || r.header.Get("Retry-After") == "" {
		t.Fatalf("ninth stream: got %d %v", r.status, r.body)
	}
	// Another visitor is not affected, and a closed stream frees its place.
	tok2, _ := e.session("shop", shopOrigin)
	e.stream(tok2, "")
	streams[0].close()
	testutil.Eventually(t, waitTimeout, "a freed stream place", func() bool {
		req, _ := http.NewRequest(http.MethodGet, e.url+"/webchat/v1/events?token="+tok, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func TestCloseIsToldToACallbackSiteOnce(t *testing.T) {
	site := &callbackSite{status: http.StatusNoContent}
	srv := httptest.NewServer(site)
	defer srv.Close()
	e := newEnv(t, envOptions{callbackURL: srv.URL, workers: true})
	e.set("cat", presence.Online, "")
	if r := e.webhook(simulate.WebChatMessage{Site: "hooked", VisitorID: "v-7", ID: "m-1", Text: "Oi"}, hookSecret, time.Now()); r.status != 200 {
		t.Fatalf("webhook: got %d %v", r.status, r.body)
	}
	card := e.offered("cat")
	agent := map[string]string{"Authorization": "Bearer " + agentToken(t, "cat")}
	e.do(http.MethodPost, "/v1/cards/"+card.ID+"/accept", nil, agent)
	if r := e.do(http.MethodPost, "/v1/cards/"+card.ID+"/close", nil, agent); r.status != http.StatusOK {
		t.Fatalf("close: got %d %v", r.status, r.body)
	}
	// A second close is refused and must not tell the site twice.
	if r := e.do(http.MethodPost, "/v1/cards/"+card.ID+"/close", nil, agent); r.status == http.StatusOK {
		t.Fatalf("second close: got %d %v", r.status, r.body)
	}
	testutil.Eventually(t, waitTimeout, "the close callback", func() bool { return site.count() == 1 })
	time.Sleep(300 * time.Millisecond) // room for a wrongly duplicated callback to arrive
	site.mu.Lock()
	defer site.mu.Unlock()
	if len(site.bodies) != 1 || site.bad != 0 {
		t.Fatalf("callbacks: %d (unsigned %d), want exactly one signed", len(site.bodies), site.bad)
	}
	var got webchat.CallbackBody
	if err := json.Unmarshal(site.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != webchat.CallbackClosedType || got.Site != "hooked" || got.Visitor.ID != "v-7" ||
		got.ConversationID != card.ConversationID || got.ClosedAt == nil || got.Message != nil {
		t.Fatalf("close callback body: %s", site.bodies[0])
	}
}

// A widget message sent while every agent of the site's queue is offline waits in the queue and
// becomes a card when one logs in.
func TestWidgetMessageWaitsForALogin(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok, visitor := e.session("shop", shopOrigin)
	if r := e.send(tok, shopOrigin, `{"text":"tem alguém aí?"}`); r.status != http.StatusAccepted {
		t.Fatalf("send: got %d %v", r.status, r.body)
	}
	if got := e.waiting("support"); got != 1 {
		t.Fatalf("waiting with every agent offline: got %d, want 1", got)
	}
	if cards, err := e.router.Cards(context.Background(), "cat"); err != nil || len(cards) != 0 {
		t.Fatalf("cards of an offline agent: %+v %v", cards, err)
	}
	e.set("cat", presence.Online, "")
	card := e.offered("cat")
	if card.Channel != "webchat" || card.Contact == nil || card.Contact.ID != visitor {
		t.Fatalf("card: got %+v", card)
	}
	if got := e.waiting("support"); got != 0 {
		t.Fatalf("still waiting after the login: %d", got)
	}
	msgs, err := e.router.Messages(context.Background(), card.ConversationID, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "tem alguém aí?" {
		t.Fatalf("conversation: %+v %v", msgs, err)
	}
}
