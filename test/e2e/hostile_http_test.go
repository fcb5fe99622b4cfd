package e2e

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/widget"
)

// noContentType in a row's headers sends the body with no Content-Type at all.
const noContentType = "\x00none"

// TestHostileHTTPDetailsAreRefusedAndChangeNothing: bodies that do not say they are JSON or name a
// field twice (in any case), unsigned or wrongly signed webhooks for unknown sites, client request
// ids that are not short and safe, and origins no site allows, each against a running gateway, with
// Redis compared before and after. The demo page's policy and the listen-port origins are checked too.
func TestHostileHTTPDetailsAreRefusedAndChangeNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{replicas: 1, agents: 2})
	base := e.replicas[0].url()
	a01 := bearer(t, "a01", auth.RoleAgent)
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	origin := map[string]string{"Origin": "http://127.0.0.1"}
	visitor, _, _ := widget.NewTokens(jwtSecret, "", time.Hour, time.Now).Mint("shop", "w-hostile", "", "")
	visitorHeaders := with(origin, "Authorization", "Bearer "+visitor)
	whatsApp := whatsAppMessage(customer(7), "wamid.hostile.http", "oi")
	signed := func(body []byte, kv ...string) map[string]string {
		return with(map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(body, appSecret)}, kv...)
	}
	twiceObject := append([]byte(`{"Object":"page",`), whatsApp[1:]...)
	wcUnknown := simulate.WebChatBody(simulate.WebChatMessage{Site: "elsewhere", VisitorID: "v-9", ID: "m-9", Text: "x"})
	wcSigned := func(body []byte, secret string) map[string]string {
		ts, sig := simulate.SignWebChat(body, secret, time.Now())
		return map[string]string{"X-Chatgate-Timestamp": ts, "X-Chatgate-Signature": sig}
	}
	deep := []byte(strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat(`}`, 65))
	template := []byte(`{"channel":"whatsapp","to":"+5511999990009","phone_number_id":"` + phoneNumberID + `","template":{"name":"order_update","language":"pt_BR","body_params":["a","b"]}}`)

	cases := []hostile{
		// JSON endpoints: the body must say it is JSON.
		{name: "toggle without a content type", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"online"}`), headers: with(a01, "Content-Type", noContentType), status: 415, code: "unsupported_media_type"},
		{name: "toggle as a form", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"online"}`), headers: with(a01, "Content-Type", "application/x-www-form-urlencoded"), status: 415, code: "unsupported_media_type"},
		{name: "toggle as application/jsonp", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"online"}`), headers: with(a01, "Content-Type", "application/jsonp"), status: 415, code: "unsupported_media_type"},
		{name: "toggle in latin-1", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"online"}`), headers: with(a01, "Content-Type", "application/json; charset=iso-8859-1"), status: 415, code: "unsupported_media_type"},
		{name: "widget session as text/plain", method: "POST", path: "/webchat/v1/sessions", body: []byte(`{"site":"shop"}`), headers: with(origin, "Content-Type", "text/plain"), status: 415, code: "unsupported_media_type"},
		{name: "widget message without a content type", method: "POST", path: "/webchat/v1/messages", body: []byte(`{"text":"hi"}`), headers: with(visitorHeaders, "Content-Type", noContentType), status: 415, code: "unsupported_media_type"},
		{name: "dev sign-in as a form", method: "POST", path: "/console/dev-token", body: []byte(`agent=a01`), headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, status: 415, code: "unsupported_media_type"},
		{name: "signed whatsapp webhook as text/plain", method: "POST", path: "/webhooks/whatsapp", body: whatsApp, headers: signed(whatsApp, "Content-Type", "text/plain"), status: 415, code: "unsupported_media_type"},
		{name: "signed whatsapp webhook without a content type", method: "POST", path: "/webhooks/whatsapp", body: whatsApp, headers: signed(whatsApp, "Content-Type", noContentType), status: 415, code: "unsupported_media_type"},
		{name: "unsigned whatsapp webhook as text/plain: the signature first", method: "POST", path: "/webhooks/whatsapp", body: whatsApp, headers: map[string]string{"Content-Type": "text/plain"}, status: 401, code: "invalid_signature"},

		// JSON endpoints: no field named twice, whatever its case.
		{name: "toggle naming the state twice", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"online","state":"offline"}`), headers: a01, status: 400, code: "duplicate_key"},
		{name: "toggle naming the state in two cases", method: "PUT", path: "/v1/agents/a01/channels/whatsapp", body: []byte(`{"state":"online","State":"offline"}`), headers: a01, status: 400, code: "duplicate_key"},
		{name: "dev sign-in naming the role twice", method: "POST", path: "/console/dev-token", body: []byte(`{"agent":"a01","role":"agent","ROLE":"admin"}`), status: 400, code: "duplicate_key"},
		{name: "widget session naming two sites", method: "POST", path: "/webchat/v1/sessions", body: []byte(`{"site":"shop","Site":"blog"}`), headers: origin, status: 400, code: "duplicate_key"},
		{name: "widget message with an attachment URL twice", method: "POST", path: "/webchat/v1/messages", body: []byte(`{"text":"hi","attachments":[{"url":"https://a.example/x.png","URL":"https://b.example/y.png"}]}`), headers: visitorHeaders, status: 400, code: "duplicate_key"},
		{name: "new conversation with the template named twice", method: "POST", path: "/v1/conversations", body: bytes.Replace(template, []byte(`"template":{"name":"order_update"`), []byte(`"template":{"name":"order_update","Name":"other"`), 1), headers: a01, status: 400, code: "duplicate_key"},
		{name: "new conversation nested 65 deep", method: "POST", path: "/v1/conversations", body: deep, headers: a01, status: 400, code: "invalid_json"},
		{name: "signed whatsapp webhook naming its object twice", method: "POST", path: "/webhooks/whatsapp", body: twiceObject, headers: signed(twiceObject), status: 400, code: "duplicate_key"},

		// WebChat webhook: an unknown site answers as a known one does.
		{name: "webchat webhook unsigned, unknown site", method: "POST", path: "/webhooks/webchat", body: wcUnknown, status: 401, code: "invalid_signature"},
		{name: "webchat webhook unknown site with a made-up secret", method: "POST", path: "/webhooks/webchat", body: wcUnknown, headers: wcSigned(wcUnknown, "guess"), status: 401, code: "invalid_signature"},
		{name: "webchat webhook unknown site, signature but no timestamp", method: "POST", path: "/webhooks/webchat", body: wcUnknown, headers: map[string]string{"X-Chatgate-Signature": "sha256=" + strings.Repeat("0", 64)}, status: 401, code: "invalid_signature"},

		// Origins: refused (and logged, below) for every site.
		{name: "widget session from a look-alike origin", method: "POST", path: "/webchat/v1/sessions", body: []byte(`{"site":"shop"}`), headers: map[string]string{"Origin": "http://127.0.0.1.evil.example"}, status: 403, code: "origin_not_allowed"},
	}
	ignored := []string{"asynq:servers", "asynq:workers", "rate:" + prefix + "wcrate:", prefix + "retention", prefix + "board:"} // background: see hostile_test.go
	for _, c := range cases {
		before := snapshot(t, e.client, ignored)
		r, err := rawDo(e.http, c.method, base+c.path, c.body, c.headers)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if r.status != c.status || r.code != c.code {
			t.Errorf("%s: got %d %q, want %d %q (%s)", c.name, r.status, r.code, c.status, c.code, truncate(r.body))
		}
		if after := snapshot(t, e.client, ignored); after != before {
			t.Errorf("%s: Redis changed:\n%s", c.name, diff(before, after))
		}
	}

	// The same refusal for an unknown site as for a known one, unsigned or wrongly signed.
	wcKnown := simulate.WebChatBody(simulate.WebChatMessage{Site: "shop", VisitorID: "v-9", ID: "m-9", Text: "x"})
	for _, h := range []map[string]string{nil, wcSigned(wcKnown, "guess")} {
		known, _ := rawDo(e.http, "POST", base+"/webhooks/webchat", wcKnown, h)
		unknown, _ := rawDo(e.http, "POST", base+"/webhooks/webchat", wcUnknown, h)
		if known.status != unknown.status || !bytes.Equal(errorMessage(known.body), errorMessage(unknown.body)) {
			t.Errorf("a known site answers %d %s, an unknown one %d %s", known.status, known.body, unknown.status, unknown.body)
		}
	}

	// Request ids: kept when short and safe, otherwise replaced and never echoed.
	safe := regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	for _, id := range []string{"ok-id_1.2", strings.Repeat("a", 65), "x\" injected=\"1", "<script>", "a b", "ça"} {
		r, err := rawDo(e.http, "GET", base+"/v1/agents/a01/presence", nil, map[string]string{"X-Request-ID": id})
		if err != nil {
			t.Fatal(err)
		}
		got := r.header.Get("X-Request-ID")
		keep := safe.MatchString(id)
		switch {
		case keep && got != id:
			t.Errorf("request id %q: answered %q, want it kept", id, got)
		case !keep && (got == id || !safe.MatchString(got) || bytes.Contains(r.body, []byte(id))):
			t.Errorf("request id %q: answered %q (%s), want a fresh safe id", id, got, r.body)
		}
	}

	// The demo page runs under a policy with no inline scripts or styles.
	demo, err := rawDo(e.http, "GET", base+"/webchat/demo", nil, nil)
	if err != nil || demo.status != 200 {
		t.Fatalf("demo page: %d %v", demo.status, err)
	}
	if csp := demo.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "style-src 'self'") ||
		strings.Contains(csp, "unsafe-inline") {
		t.Errorf("demo page policy %q", csp)
	}

	// In development the widget works from the port the gateway listens on, whatever it is: the
	// configuration allows http://127.0.0.1 only.
	_, port, _ := net.SplitHostPort(e.replicas[0].addr)
	for _, o := range []string{"http://localhost:" + port, "http://127.0.0.1:" + port} {
		if r, _ := rawDo(e.http, "POST", base+"/webchat/v1/sessions", []byte(`{"site":"shop"}`), map[string]string{"Origin": o}); r.status != 201 {
			t.Errorf("widget session from the listen port's origin %s: got %d %s", o, r.status, r.body)
		}
	}

	// Refused origins are logged with the origin, paced.
	for i := 0; i < 200; i++ {
		_, _ = rawDo(e.http, "POST", base+"/webchat/v1/sessions", []byte(`{"site":"shop"}`), map[string]string{"Origin": "http://127.0.0.1.evil.example"})
	}
	// A request logged after them is a barrier: once its line is in, every earlier line is too.
	_, _ = rawDo(e.http, "GET", base+"/after-the-refusals", nil, nil)
	if !testutil.Within(10*time.Second, func() bool {
		return strings.Contains(e.replicas[0].logs.String(), `"path":"/after-the-refusals"`)
	}) {
		t.Fatalf("the barrier request was not logged:\n%s", e.replicas[0].logs.String())
	}
	logs := e.replicas[0].logs.String()
	if n := strings.Count(logs, `"msg":"origin refused"`); n != 1 || !strings.Contains(logs, `"origin":"http://127.0.0.1.evil.example"`) {
		t.Errorf("201 refusals of one origin logged %d times (want once, naming it):\n%s", n, logs)
	}
	if strings.Contains(logs, `injected=`) || strings.Contains(logs, "<script>") {
		t.Errorf("a refused request id reached the log")
	}
}

// rawDo is e.do with control of the content type: noContentType sends none.
func rawDo(client *http.Client, method, url string, body []byte, headers map[string]string) (response, error) {
	if headers["Content-Type"] != noContentType {
		return doWith(client, method, url, body, headers)
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	for k, v := range headers {
		if k != "Content-Type" {
			req.Header.Set(k, v)
		}
	}
	return send(client, req)
}

func doWith(client *http.Client, method, url string, body []byte, headers map[string]string) (response, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return send(client, req)
}

func send(client *http.Client, req *http.Request) (response, error) {
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r := response{status: resp.StatusCode, body: b, header: resp.Header}
	if m := regexp.MustCompile(`"code":"([^"]*)"`).FindSubmatch(b); m != nil {
		r.code = string(m[1])
	}
	return r, nil
}

// errorMessage is an error answer without its request id, which differs on every answer.
func errorMessage(body []byte) []byte {
	return regexp.MustCompile(`"request_id":"[^"]*"`).ReplaceAll(body, nil)
}
