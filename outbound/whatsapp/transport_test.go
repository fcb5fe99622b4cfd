package whatsapp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// bothTransports are a client on fasthttp (the default) and one on net/http (HTTPClient set), for
// the same server: a send must read the same through either.
func bothTransports(t *testing.T, url string) map[string]*Client {
	t.Helper()
	fast := mustNew(t, Config{BaseURL: url, APIVersion: "v23.0"})
	if fast.fast == nil {
		t.Fatal("a client without HTTPClient should send through fasthttp")
	}
	std := mustNew(t, Config{BaseURL: url, APIVersion: "v23.0", HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	return map[string]*Client{"fasthttp": fast, "net/http": std}
}

// TestTransportsReadTheSameAnswers: a success, a throttling error with Retry-After and trace id,
// and an answer of more than the body limit come out alike on both transports.
func TestTransportsReadTheSameAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case strings.Contains(string(body), `"body":"ok"`):
			io.WriteString(w, `{"messaging_product":"whatsapp","contacts":[{"input":"+5511999990001","wa_id":"5511999990001"}],"messages":[{"id":"wamid.A"}]}`)
		case strings.Contains(string(body), `"body":"throttled"`):
			w.Header().Set("Retry-After", "7")
			w.Header().Set("X-FB-Trace-Id", "trace-1")
			w.WriteHeader(429)
			io.WriteString(w, `{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"fbtrace_id":"trace-1"}}`)
		default: // accepted, but the answer is larger than any send's
			io.WriteString(w, `{"messages":[{"id":"wamid.B"}],"pad":"`+strings.Repeat("x", maxResponseBody+10)+`"}`)
		}
	}))
	defer srv.Close()
	for name, c := range bothTransports(t, srv.URL) {
		res, err := c.Send(context.Background(), testNumberID, testToken, TextMessage{To: testPhone, Body: "ok"})
		if err != nil || res.MessageID != "wamid.A" || res.ContactWaID != "5511999990001" {
			t.Errorf("%s: success: got %+v, %v", name, res, err)
		}
		_, err = c.Send(context.Background(), testNumberID, testToken, TextMessage{To: testPhone, Body: "throttled"})
		var e *Error
		if !errors.As(err, &e) || e.HTTPStatus != 429 || e.Code != 130429 || e.FBTraceID != "trace-1" || e.RetryAfter != 7*time.Second {
			t.Errorf("%s: throttled: got %+v", name, e)
		}
		// Meta took it: never a transient error, which a worker would retry into a second send.
		_, err = c.Send(context.Background(), testNumberID, testToken, TextMessage{To: testPhone, Body: "huge"})
		if !errors.As(err, &e) || e.Class != Permanent || e.HTTPStatus != 200 {
			t.Errorf("%s: oversized success: got %v, want a permanent *Error with status 200", name, err)
		}
	}
}

// TestFastTransportTimeout: without a context deadline, Config.Timeout bounds a send.
func TestFastTransportTimeout(t *testing.T) {
	c := mustNew(t, Config{BaseURL: slowServer(t), Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := c.Send(context.Background(), testNumberID, testToken, TextMessage{To: testPhone, Body: "x"})
	var e *Error
	if !errors.As(err, &e) || e.Class != Transient || !strings.HasPrefix(e.Message, "timeout") {
		t.Errorf("got %v, want a transient timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the send took %v with a 100ms timeout", d)
	}
}

// TestProxyKeepsNetHTTP: an operator whose egress goes through a proxy (HTTPS_PROXY) keeps
// net/http, which honours it; fasthttp would connect directly.
func TestProxyKeepsNetHTTP(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
	t.Setenv("HTTP_PROXY", "http://proxy.invalid:3128")
	if c := mustNew(t, Config{BaseURL: "https://graph.facebook.com"}); c.fast != nil {
		t.Error("with a proxy in the environment the client should use net/http")
	}
}
