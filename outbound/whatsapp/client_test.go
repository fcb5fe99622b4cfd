package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testNumberID = "100200300"
	testToken    = "EAAG-secret-token-123"
	testPhone    = "+5511999990001"
)

func newTestClient(t *testing.T, baseURL string, log *slog.Logger) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: baseURL, APIVersion: "v23.0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSendPostsMessage checks the request Send makes and the result it reads
// from Meta's own example response.
func TestSendPostsMessage(t *testing.T) {
	example := sendMessageResponses(t)["Example response"]
	type seen struct {
		method, path, auth, contentType string
		body                            []byte
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(example)
	}))
	defer srv.Close()

	msg := TemplateMessage{To: "+16505551234", Name: "order_update", Language: "pt_BR", BodyParams: []string{"Ana", "#123"}}
	res, err := newTestClient(t, srv.URL, nil).Send(context.Background(), testNumberID, testToken, msg)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	req := <-got
	wantBody, _ := Encode(msg)
	for _, c := range []struct{ name, got, want string }{
		{"method", req.method, "POST"},
		{"path", req.path, "/v23.0/100200300/messages"},
		{"authorization", req.auth, "Bearer " + testToken},
		{"content type", req.contentType, "application/json"},
		{"body", string(req.body), string(wantBody)},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	want := SendResult{
		MessageID:    "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA",
		ContactInput: "+16505551234",
		ContactWaID:  "16505551234",
	}
	if res != want {
		t.Errorf("result: got %+v, want %+v", res, want)
	}
}

// TestSendReadsEveryMetaResponse parses each 200 example of sendMessage.
func TestSendReadsEveryMetaResponse(t *testing.T) {
	for name, ex := range sendMessageResponses(t) {
		m := ex.(map[string]any)
		if _, ok := m["messages"]; !ok {
			continue // the read-receipt answer {"success": true} is not a send
		}
		raw, _ := json.Marshal(ex)
		res, err := parseSendResponse(raw)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		msg := m["messages"].([]any)[0].(map[string]any)
		contact := m["contacts"].([]any)[0].(map[string]any)
		if res.MessageID != msg["id"] || res.ContactInput != contact["input"] ||
			res.ContactWaID != strings.TrimSpace(contact["wa_id"].(string)) {
			t.Errorf("%s: got %+v from %s", name, res, raw)
		}
	}
}

func TestSendResultFields(t *testing.T) {
	tests := []struct {
		name, body string
		want       SendResult
	}{
		{"bsuid recipient and status",
			`{"messaging_product":"whatsapp","contacts":[{"input":"BR.1502576394655843","user_id":"BR.1502576394655843"}],
			  "messages":[{"id":"wamid.X","message_status":"accepted"}]}`,
			SendResult{MessageID: "wamid.X", MessageStatus: "accepted", ContactInput: "BR.1502576394655843", ContactUserID: "BR.1502576394655843"}},
		{"no contacts", `{"messages":[{"id":"wamid.Y"}]}`, SendResult{MessageID: "wamid.Y"}},
		{"Brazilian wa_id differs from input",
			`{"contacts":[{"input":"5511999990001","wa_id":"551199990001"}],"messages":[{"id":"wamid.Z"}]}`,
			SendResult{MessageID: "wamid.Z", ContactInput: "5511999990001", ContactWaID: "551199990001"}},
	}
	for _, tc := range tests {
		got, err := parseSendResponse([]byte(tc.body))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

// TestSendUnreadableSuccess: a 2xx without a message id is permanent, since
// Meta may have accepted it and a retry could deliver it twice.
func TestSendUnreadableSuccess(t *testing.T) {
	for _, body := range []string{``, `not json`, `{"messages":[]}`, `{"messages":[{"id":" "}]}`, `{"success":true}`} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, body)
		}))
		_, err := newTestClient(t, srv.URL, nil).Send(context.Background(), testNumberID, testToken, TextMessage{To: testPhone, Body: "x"})
		srv.Close()
		var e *Error
		if !errors.As(err, &e) || e.Class != Permanent || e.HTTPStatus != 200 {
			t.Errorf("body %q: got %v, want a permanent *Error with status 200", body, err)
		}
	}
}

// TestSendErrorClasses maps error responses (status, headers, Meta error
// JSON) to what a worker must do.
func TestSendErrorClasses(t *testing.T) {
	now := time.Now().UTC()
	metaErr := func(code, subcode int, extra string) string {
		return `{"error":{"message":"(#` + itoa(code) + `) m","type":"OAuthException","code":` + itoa(code) +
			`,"error_subcode":` + itoa(subcode) + `,"error_data":{"messaging_product":"whatsapp","details":"d"},"fbtrace_id":"AbC"` + extra + `}}`
	}
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		class      Class
		code       int
		title      string
		wait       time.Duration
	}{
		{"re-engagement (24h window)", 400, "", metaErr(131047, 0, ""), Permanent, 131047, "Re-engagement message", 0},
		{"template does not exist", 404, "", metaErr(132001, 0, ""), Permanent, 132001, "Template does not exist", 0},
		{"template param count", 400, "", metaErr(132000, 0, ""), Permanent, 132000, "Template param count mismatch", 0},
		{"template param format", 400, "", metaErr(132012, 0, ""), Permanent, 132012, "Template parameter format mismatch", 0},
		{"undeliverable recipient", 400, "", metaErr(131026, 0, ""), Permanent, 131026, "Message undeliverable", 0},
		{"missing parameter", 400, "", metaErr(131008, 0, ""), Permanent, 131008, "Required parameter is missing", 0},
		{"invalid parameter value", 400, "", metaErr(131009, 0, ""), Permanent, 131009, "Parameter value is not valid", 0},
		{"invalid parameter", 400, "", metaErr(100, 0, ""), Permanent, 100, "Invalid parameter", 0},
		{"bsuid not supported", 400, "", metaErr(131062, 0, ""), Permanent, 131062, "Business-scoped user ID recipients are not supported", 0},
		{"throughput 429", 429, "", metaErr(130429, 0, ""), RateLimited, 130429, "Rate limit hit", time.Second},
		{"throughput sent with 400", 400, "", metaErr(130429, 0, ""), RateLimited, 130429, "Rate limit hit", time.Second},
		{"throughput with Retry-After", 429, "7", metaErr(130429, 0, ""), RateLimited, 130429, "Rate limit hit", 7 * time.Second},
		{"Retry-After as a date", 429, now.Add(30 * time.Second).Format(http.TimeFormat), metaErr(130429, 0, ""), RateLimited, 130429, "Rate limit hit", 30 * time.Second},
		{"Retry-After unreadable", 429, "soon", metaErr(130429, 0, ""), RateLimited, 130429, "Rate limit hit", time.Second},
		{"Retry-After negative", 429, "-5", metaErr(130429, 0, ""), RateLimited, 130429, "Rate limit hit", time.Second},
		{"Retry-After capped", 429, "999999999999", metaErr(130429, 0, ""), RateLimited, 130429, "Rate limit hit", 24 * time.Hour},
		{"pair rate", 400, "", metaErr(131056, 0, ""), RateLimited, 131056, "(Business Account, Consumer Account) pair rate limit hit", 6 * time.Second},
		{"spam rate", 400, "", metaErr(131048, 0, ""), RateLimited, 131048, "Spam rate limit hit", 5 * time.Minute},
		{"WABA hourly rate", 400, "", metaErr(80007, 0, ""), RateLimited, 80007, "Rate limit issues", 10 * time.Minute},
		{"app call count (Meta's 429 example)", 429, "", metaErr(4, 2018001, ""), RateLimited, 4, "API Too Many Calls", time.Minute},
		{"graph rate limit", 400, "", metaErr(613, 0, ""), RateLimited, 613, "Calls to this API have exceeded the rate limit", time.Minute},
		{"429 without a body", 429, "", "", RateLimited, 0, "", defaultRateLimitDelay},
		{"expired token (Meta's 401 example)", 401, "", metaErr(190, 460, ""), Auth, 190, "Access token has expired", 0},
		{"auth exception code 0", 400, "", metaErr(0, 0, ""), Auth, 0, "AuthException", 0},
		{"permission denied", 403, "", metaErr(10, 0, ""), Auth, 10, "Permission denied", 0},
		{"api permission range", 400, "", metaErr(200, 0, ""), Auth, 200, "API Permission", 0},
		{"capability issue sent as 500", 500, "", metaErr(3, 0, ""), Auth, 3, "API Method", 0},
		{"403 without a code", 403, "", `{"error":{"message":"forbidden"}}`, Auth, 0, "", 0},
		{"something went wrong", 500, "", metaErr(131000, 0, ""), Transient, 131000, "Something went wrong", 0},
		{"service (Meta's 500 example)", 500, "", metaErr(2, 1675030, ""), Transient, 2, "API Service", 0},
		{"service unavailable with Retry-After", 503, "3", metaErr(131016, 0, ""), Transient, 131016, "Service unavailable", 3 * time.Second},
		{"api unknown sent with 400", 400, "", metaErr(1, 0, ""), Transient, 1, "API Unknown", 0},
		{"proxy HTML page", 502, "", `<html>Bad Gateway</html>`, Transient, 0, "", 0},
		{"request timeout", 408, "", ``, Transient, 0, "", 0},
		{"unknown code, 400", 400, "", metaErr(999999, 0, ""), Permanent, 999999, "", 0},
		{"unknown code, 500", 500, "", metaErr(999999, 0, ""), Transient, 999999, "", 0},
		{"unknown code marked transient", 400, "", metaErr(999999, 0, `,"is_transient":true`), Transient, 999999, "", 0},
		{"known permanent code wins over is_transient", 400, "", metaErr(131047, 0, `,"is_transient":true`), Permanent, 131047, "Re-engagement message", 0},
		{"user title from Meta", 400, "", metaErr(131047, 0, `,"error_user_title":"Janela expirada"`), Permanent, 131047, "Janela expirada", 0},
		{"400 with an error but no code", 400, "", `{"error":{"message":"bad"}}`, Permanent, 0, "", 0},
		{"unexpected redirect status", 304, "", ``, Transient, 0, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.retryAfter != "" {
				h.Set("Retry-After", tc.retryAfter)
			}
			e := responseError(tc.status, h, []byte(tc.body), now)
			if e.Class != tc.class || e.Code != tc.code || e.Title != tc.title || e.HTTPStatus != tc.status {
				t.Errorf("got class %v code %d title %q status %d; want %v %d %q %d",
					e.Class, e.Code, e.Title, e.HTTPStatus, tc.class, tc.code, tc.title, tc.status)
			}
			if got := RetryAfter(e); got < tc.wait-time.Second || got > tc.wait {
				t.Errorf("RetryAfter: got %v, want %v", got, tc.wait)
			}
			wantPermanent := tc.class == Permanent || tc.class == Auth
			if IsPermanent(e) != wantPermanent || IsAuth(e) != (tc.class == Auth) {
				t.Errorf("IsPermanent %v IsAuth %v for class %v", IsPermanent(e), IsAuth(e), tc.class)
			}
			if strings.HasPrefix(tc.body, `{"error":{"message":"(#`) {
				if e.Details != "d" || e.FBTraceID != "AbC" || e.Type != "OAuthException" {
					t.Errorf("fields: details %q fbtrace %q type %q", e.Details, e.FBTraceID, e.Type)
				}
			}
		})
	}
}

// TestSendReturnsErrorResponses runs one error through a server, to check
// that Send hands responseError the status, headers and body, wrapped so
// errors.As and the helpers see it.
func TestSendReturnsErrorResponses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		w.Header().Set("X-FB-Trace-Id", "HdrTrace")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429}}`)
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL, nil).Send(context.Background(), testNumberID, testToken, TextMessage{To: testPhone, Body: "x"})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want *Error", err)
	}
	if e.Class != RateLimited || e.RetryAfter != 2*time.Second || e.FBTraceID != "HdrTrace" || IsPermanent(err) {
		t.Errorf("got %+v", e)
	}
	if want := "whatsapp: HTTP 429 code 130429 (rate_limited) Rate limit hit: (#130429) Rate limit hit fbtrace_id=HdrTrace"; err.Error() != want {
		t.Errorf("Error():\n got %q\nwant %q", err.Error(), want)
	}
}

// slowServer answers no request until the test ends (or the client gives up).
func slowServer(t *testing.T) string {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // before Close (cleanups run last first), which waits for handlers
	return slow.URL
}

func TestSendTransportFailures(t *testing.T) {
	slowURL := slowServer(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()

	tests := []struct {
		name   string
		client *Client
		ctx    context.Context
		is     error
	}{
		{"connection refused", newTestClient(t, closedURL, nil), context.Background(), nil},
		{"context deadline", newTestClient(t, slowURL, nil), short, context.DeadlineExceeded},
		{"context canceled", newTestClient(t, slowURL, nil), canceled, context.Canceled},
		{"client timeout", mustNew(t, Config{BaseURL: slowURL, HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}}), context.Background(), nil},
	}
	for _, tc := range tests {
		_, err := tc.client.Send(tc.ctx, testNumberID, testToken, TextMessage{To: testPhone, Body: "x"})
		var e *Error
		if !errors.As(err, &e) || e.Class != Transient || e.HTTPStatus != 0 || IsPermanent(err) {
			t.Errorf("%s: got %v, want a transient *Error without status", tc.name, err)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v does not wrap %v", tc.name, err, tc.is)
		}
	}
}

// TestSendNeverLeaksSecrets: a server that echoes the Authorization header
// in its error still cannot put the token into the error or the logs, and
// the logs carry the recipient masked.
func TestSendNeverLeaksSecrets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.WriteHeader(401)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
			"message": "bad token " + auth, "type": "OAuthException", "code": 190,
			"error_data": map[string]any{"details": auth}, "fbtrace_id": auth}})
	}))
	defer srv.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newTestClient(t, srv.URL, log)

	_, err := c.Send(context.Background(), testNumberID, testToken, TextMessage{To: testPhone, Body: "x"})
	var e *Error
	if !errors.As(err, &e) || e.Class != Auth {
		t.Fatalf("got %v, want an auth *Error", err)
	}
	all := err.Error() + e.Message + e.Details + e.FBTraceID + logs.String()
	if strings.Contains(all, testToken) {
		t.Errorf("token leaked: %s", all)
	}
	if strings.Contains(logs.String(), "5511999990001") {
		t.Errorf("phone number logged unmasked: %s", logs.String())
	}
	if !strings.Contains(logs.String(), `"component":"whatsapp.client"`) || !strings.Contains(logs.String(), Mask(testPhone)) {
		t.Errorf("log lacks component or masked recipient: %s", logs.String())
	}

	// A transport error with the token in the URL path cannot happen (the
	// path is the number id), and a refused connection names only the URL.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	_, err = newTestClient(t, closed.URL, log).Send(context.Background(), testNumberID, testToken, TextMessage{To: testPhone, Body: "x"})
	if err == nil || strings.Contains(err.Error(), testToken) || strings.Contains(logs.String(), testToken) {
		t.Errorf("transport error leaked the token: %v", err)
	}
}

// TestSendRejectsBadArguments: nothing is sent for a bad number id, token or
// message; the error wraps ErrInvalidMessage.
func TestSendRejectsBadArguments(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil)
	good := TextMessage{To: testPhone, Body: "x"}
	tests := []struct {
		name, id, token string
		msg             Message
	}{
		{"empty number id", "", testToken, good},
		{"number id with a path", "1/../../x", testToken, good},
		{"number id with letters", "12ab", testToken, good},
		{"empty token", testNumberID, "", good},
		{"token with a space", testNumberID, "sec ret", good},
		{"token with a newline", testNumberID, "a\r\nX-Evil: 1", good},
		{"token not ASCII", testNumberID, "tökén", good},
		{"nil message", testNumberID, testToken, nil},
		{"bad message", testNumberID, testToken, TextMessage{To: testPhone}},
	}
	for _, tc := range tests {
		_, err := c.Send(context.Background(), tc.id, tc.token, tc.msg)
		if !errors.Is(err, ErrInvalidMessage) || !IsPermanent(err) {
			t.Errorf("%s: got %v, want ErrInvalidMessage", tc.name, err)
		}
		if tc.token != "" && tc.token != testToken && strings.Contains(err.Error(), tc.token) {
			t.Errorf("%s: error repeats the token", tc.name)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("server got %d calls, want 0", n)
	}
}

func TestNew(t *testing.T) {
	for _, bad := range []Config{
		{BaseURL: "graph.facebook.com"},
		{BaseURL: "ftp://graph.facebook.com"},
		{BaseURL: "https://"},
		{BaseURL: "https://user:pass@graph.facebook.com"},
		{BaseURL: "https://graph.facebook.com?x=1"},
		{BaseURL: "://"},
		{APIVersion: "23.0"},
		{APIVersion: "v23"},
		{APIVersion: "v23.0/../x"},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v): got nil error", bad)
		}
	}
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.base.String() != DefaultBaseURL || c.version != DefaultAPIVersion || c.http.Timeout != DefaultTimeout {
		t.Errorf("defaults: got %s %s %v", c.base, c.version, c.http.Timeout)
	}

	// A base URL with a path prefix keeps it.
	paths := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		io.WriteString(w, `{"messages":[{"id":"wamid.1"}]}`)
	}))
	defer srv.Close()
	c = mustNew(t, Config{BaseURL: srv.URL + "/graph/", APIVersion: "v21.0"})
	if _, err := c.Send(context.Background(), testNumberID, testToken, TextMessage{To: testPhone, Body: "x"}); err != nil {
		t.Fatal(err)
	}
	if got, want := <-paths, "/graph/v21.0/100200300/messages"; got != want {
		t.Errorf("path: got %q, want %q", got, want)
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"+5511999990001":      "+55*********01",
		"5511999990001":       "55*********01",
		"BR.1502576394655843": "BR***************43",
		"1234":                "****",
		"":                    "",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzResponseError: any status, header and body give a classified error
// without panicking.
func FuzzResponseError(f *testing.F) {
	f.Add(400, "", `{"error":{"message":"m","code":131047}}`)
	f.Add(429, "3", `{"error":{"code":130429,"error_subcode":1,"is_transient":true}}`)
	f.Add(503, "Wed, 21 Oct 2015 07:28:00 GMT", `<html>`)
	f.Add(400, "", `{"error":null}`)
	f.Add(400, "", `{"error":{"code":"x"}}`)
	f.Fuzz(func(t *testing.T, status int, retryAfter, body string) {
		h := http.Header{"Retry-After": {retryAfter}}
		e := responseError(status, h, []byte(body), time.Now())
		if e.Class < Transient || e.Class > Auth {
			t.Fatalf("class %v", e.Class)
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("retry after %v", e.RetryAfter)
		}
		_ = e.Error()
	})
}

// FuzzParseSendResponse: any body is a result with an id or an error, and a body encoding/json
// reads gives the same result as encoding/json would.
func FuzzParseSendResponse(f *testing.F) {
	f.Add(`{"messaging_product":"whatsapp","contacts":[{"input":"1","wa_id":"1"}],"messages":[{"id":"wamid.1"}]}`)
	f.Add(`{"messaging_product":"whatsapp","contacts":[{"input":"+55 11","wa_id":" 5511","user_id":"BR.1"}],"messages":[{"id":"wamid.\u00e9","message_status":"accepted"}]}`)
	f.Add(`{"messages":[{"id":"a","id":"b"}],"Messages":[{"ID":"c"}]}`)
	f.Add(`{"messages":[{}]}`)
	f.Add(`{"messages":[{"id":"\ud800"}]}`)
	f.Add("{\"messages\":[{\"id\":\"\xff\"}]}")
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		res, err := parseSendResponse([]byte(body))
		if err == nil && res.MessageID == "" {
			t.Fatal("no error and no message id")
		}
		var r sendResponse
		if json.Unmarshal([]byte(body), &r) != nil || len(r.Messages) == 0 || strings.TrimSpace(r.Messages[0].ID) == "" {
			return
		}
		if err != nil {
			t.Fatalf("encoding/json reads %q, parseSendResponse: %v", body, err)
		}
		want := SendResult{MessageID: strings.TrimSpace(r.Messages[0].ID), MessageStatus: r.Messages[0].MessageStatus}
		if len(r.Contacts) > 0 {
			want.ContactInput = strings.TrimSpace(r.Contacts[0].Input)
			want.ContactWaID = strings.TrimSpace(r.Contacts[0].WaID)
			want.ContactUserID = strings.TrimSpace(r.Contacts[0].UserID)
		}
		if res != want {
			t.Fatalf("%q: %+v, encoding/json %+v", body, res, want)
		}
	})
}

func mustNew(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// A base URL with a path of its own: the send goes where base.JoinPath(version, id, "messages")
// points, with the same headers, however the base path is written.
func TestSendURLUnderABasePath(t *testing.T) {
	type seen struct{ path, auth, contentType, accept string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.URL.EscapedPath(), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), r.Header.Get("Accept")}
		w.Write([]byte(`{"messages":[{"id":"wamid.1"}]}`))
	}))
	defer srv.Close()
	msg := TextMessage{To: "+16505551234", Body: "hi"}
	for _, base := range []string{srv.URL, srv.URL + "/", srv.URL + "/graph", srv.URL + "/graph/", srv.URL + "/a//b/../c/",
		srv.URL + "/sp%20ace"} {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		old, err := url.Parse(u.JoinPath("v21.0", testNumberID, "messages").String()) // what Send built before
		if err != nil {
			t.Fatal(err)
		}
		want := seen{old.EscapedPath(), "Bearer " + testToken, "application/json", "application/json"}
		if _, err := mustNew(t, Config{BaseURL: base, APIVersion: "v21.0"}).Send(context.Background(), testNumberID, testToken, msg); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if g := <-got; g != want {
			t.Errorf("base %s: got %+v, want %+v", base, g, want)
		}
	}
}
