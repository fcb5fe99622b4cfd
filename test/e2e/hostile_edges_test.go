package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
)

// TestHostileEdgesAreRefusedAndChangeNothing: multipart file replies without their one file, null
// for a body, a supervisor's made-up agent, requests fasthttp cannot parse, methods fiber does not
// know and two Idempotency-Key headers, each against a running gateway with a conversation the agent
// holds: a JSON error of the catalogue, no quote of the request (its Bearer token) in the answer, and
// Redis as it was.
func TestHostileEdgesAreRefusedAndChangeNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{replicas: 1, agents: 1})
	base := e.replicas[0].url()
	addr := e.replicas[0].addr
	e.mustOnline(base, "whatsapp", agentID(1))
	if r, err := e.postWhatsApp(base, whatsAppMessage(customer(41), "wamid.edges.1", "oi")); err != nil || r.status != 200 {
		t.Fatalf("setup webhook: %d %v", r.status, err)
	}
	a01 := bearer(t, "a01", auth.RoleAgent)
	tok := strings.TrimPrefix(a01["Authorization"], "Bearer ")
	cardID, convID := e.acceptOnlyCard(base, "a01", 5*time.Second)
	reply := "/v1/conversations/" + convID + "/messages"

	type part struct{ header, data string }
	form := func(parts ...part) []byte {
		var b bytes.Buffer
		for _, p := range parts {
			fmt.Fprintf(&b, "--BND\r\n%s\r\n\r\n%s\r\n", p.header, p.data)
		}
		b.WriteString("--BND--\r\n")
		return b.Bytes()
	}
	png := "\x89PNG\r\n\x1a\n" + strings.Repeat("\x07", 64)
	file := func(name string) part {
		return part{`Content-Disposition: form-data; name="` + name + `"; filename="a.png"` + "\r\nContent-Type: image/png", png}
	}
	field := func(name, value string) part {
		return part{`Content-Disposition: form-data; name="` + name + `"`, value}
	}
	multipart := map[string]string{"Authorization": a01["Authorization"], "Content-Type": "multipart/form-data; boundary=BND"}

	// raw is a request as bytes on its own connection, for what net/http will not send.
	raw := func(lines ...string) []byte {
		return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n")
	}
	authLine := "Authorization: Bearer " + tok
	twoKeys := func(body string) []byte {
		return []byte(strings.Join([]string{"POST " + reply + " HTTP/1.1", "Host: x", authLine, "Content-Type: application/json",
			"Idempotency-Key: edges-1", "Idempotency-Key: edges-2", fmt.Sprintf("Content-Length: %d", len(body)), "", body}, "\r\n"))
	}

	cases := []struct {
		name    string
		method  string // with path, body, headers: through the HTTP client
		path    string
		body    []byte
		headers map[string]string
		raw     []byte // else these bytes on a connection of their own
		status  int
		code    string
	}{
		// Multipart file replies: the one file is missing, doubled or joined by a field that is not the form's.
		{name: "file reply with no parts", method: "POST", path: reply, body: form(), headers: multipart, status: 422, code: "validation_failed"},
		{name: "file reply with a caption only", method: "POST", path: reply, body: form(field("caption", "oi")), headers: multipart, status: 422, code: "validation_failed"},
		{name: "file reply with the file under another name", method: "POST", path: reply, body: form(file("upload")), headers: multipart, status: 422, code: "validation_failed"},
		{name: "file reply with two files", method: "POST", path: reply, body: form(file("file"), file("file")), headers: multipart, status: 422, code: "validation_failed"},
		{name: "file reply with a field of no file reply", method: "POST", path: reply, body: form(file("file"), field("to", "+5511999990001")), headers: multipart, status: 422, code: "validation_failed"},
		{name: "file reply with a part without a disposition", method: "POST", path: reply, body: form(part{"Content-Type: image/png", png}), headers: multipart, status: 422, code: "validation_failed"},
		{name: "file reply with a NUL in a part's header", raw: []byte(strings.Join([]string{"POST " + reply + " HTTP/1.1", "Host: x", authLine,
			"Content-Type: multipart/form-data; boundary=BND", "Content-Length: 64", "", "--BND\r\nContent-Disposition: form-data; name=\"a\x00\"\r\n\r\nx\r\n--BND--\r\n" + strings.Repeat(" ", 16)}, "\r\n")),
			status: 400, code: "bad_request"},

		// null is no object: decoded into one it is no fields at all, which a close takes as a close.
		{name: "close with a null body", method: "POST", path: "/v1/cards/" + cardID + "/close", body: []byte(" null "), headers: a01, status: 400, code: "invalid_json"},
		{name: "new conversation with a null body", method: "POST", path: "/v1/conversations", body: []byte("null"), headers: a01, status: 400, code: "invalid_json"},

		// A supervisor naming an agent that is not configured: no such agent, as for its presence.
		{name: "supervisor reads a made-up agent's cards", method: "GET", path: "/v1/agents/nobody/cards", headers: bearer(t, "sue", auth.RoleSupervisor), status: 404, code: "agent_not_found"},
		{name: "supervisor reads cards through a traversal", method: "GET", path: "/v1/agents/..%2Fa01/cards", headers: bearer(t, "sue", auth.RoleSupervisor), status: 404, code: "agent_not_found"},

		// Requests fasthttp refuses while reading them: its error quotes the request, token and all.
		{name: "header line without a colon after the token", raw: raw("GET /v1/agents/me/presence HTTP/1.1", "Host: x", authLine, "X-Broken "+tok), status: 400, code: "bad_request"},
		{name: "control character in a header after the token", raw: raw("GET /v1/agents/me/presence HTTP/1.1", "Host: x", authLine, "X-Broken: a\x01b"), status: 400, code: "bad_request"},
		{name: "NUL in the path", raw: raw("GET /v1/agents/\x00/presence HTTP/1.1", "Host: x", authLine), status: 400, code: "bad_request"},
		{name: "content length not a number", raw: raw("PUT /v1/agents/a01/channels/whatsapp HTTP/1.1", "Host: x", authLine, "Content-Length: 2x"), status: 400, code: "bad_request"},
		{name: "no host", raw: raw("GET /v1/agents/me/presence HTTP/1.1", authLine), status: 400, code: "bad_request"},

		// Methods fiber does not route: the catalogue's 405, not its plain text.
		{name: "PROPFIND on the ops API", raw: raw("PROPFIND /v1/ops/queues HTTP/1.1", "Host: x", authLine), status: 405, code: "method_not_allowed"},
		{name: "lowercase get", raw: raw("get /healthz HTTP/1.1", "Host: x"), status: 405, code: "method_not_allowed"},
		{name: "made-up method on a webhook", raw: raw("BREW /webhooks/whatsapp HTTP/1.1", "Host: x", "Content-Length: 0"), status: 405, code: "method_not_allowed"},

		// Two idempotency keys: which one counts would depend on the proxy.
		{name: "reply with two Idempotency-Key headers", raw: twoKeys(`{"text":"once"}`), status: 400, code: "invalid_idempotency_key"},
	}
	ignored := []string{"asynq:servers", "asynq:workers", "rate:" + prefix + "wcrate:", prefix + "retention", prefix + "board:"} // background: see hostile_test.go
	for _, c := range cases {
		before := snapshot(t, e.client, ignored)
		var r response
		var err error
		if c.raw != nil {
			r, err = rawRequest(addr, c.raw)
		} else {
			r, err = rawDo(e.http, c.method, base+c.path, c.body, c.headers)
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if r.status != c.status || r.code != c.code {
			t.Errorf("%s: got %d %q, want %d %q (%s)", c.name, r.status, r.code, c.status, c.code, truncate(r.body))
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || r.header.Get("X-Request-ID") == "" {
			t.Errorf("%s: answered as %q with request id %q, want JSON with an id", c.name, ct, r.header.Get("X-Request-ID"))
		}
		if bytes.Contains(r.body, []byte(tok[len(tok)-20:])) || quotes(c.raw, r.body) {
			t.Errorf("%s: the answer quotes the request: %s", c.name, truncate(r.body))
		}
		if leaked := leaks(r.body); leaked != "" {
			t.Errorf("%s: the answer echoes a secret (%s)", c.name, leaked)
		}
		if after := snapshot(t, e.client, ignored); after != before {
			t.Errorf("%s: Redis changed:\n%s", c.name, diff(before, after))
		}
	}
	if !e.replicas[0].alive() {
		t.Fatal("the gateway exited during the hostile requests")
	}

	// The same reply with one key is taken: the refusal above was about the second key.
	if r, err := e.do("POST", base+reply, []byte(`{"text":"once"}`), map[string]string{"Authorization": a01["Authorization"], "Idempotency-Key": "edges-1"}); err != nil || r.status != 202 {
		t.Errorf("reply with one Idempotency-Key: %d %s %v, want 202", r.status, truncate(r.body), err)
	}

	// The handshake sends its challenge back as it came, as text no browser may take for a page.
	r, err := e.do("GET", base+"/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token="+verifyToken+"&hub.challenge=%3Cscript%3Ealert(1)%3C/script%3E", nil, nil)
	if err != nil || r.status != 200 || string(r.body) != "<script>alert(1)</script>" {
		t.Fatalf("handshake: %d %q %v", r.status, r.body, err)
	}
	if ct, sniff := r.header.Get("Content-Type"), r.header.Get("X-Content-Type-Options"); !strings.HasPrefix(ct, "text/plain") || sniff != "nosniff" {
		t.Errorf("handshake answered as %q, X-Content-Type-Options %q; want text/plain and nosniff", ct, sniff)
	}
}

// quotes reports an error message holding the start of a line of the request it answers.
func quotes(req, body []byte) bool {
	var er struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &er) != nil {
		return false
	}
	for _, line := range strings.Split(string(req), "\r\n") {
		if len(line) >= 16 && strings.Contains(er.Error.Message, line[:16]) {
			return true
		}
	}
	return false
}

// rawRequest writes req on a connection of its own and reads one answer.
func rawRequest(addr string, req []byte) (response, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return response{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(req); err != nil {
		return response{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return response{}, err
	}
	return readResponse(resp), nil
}
