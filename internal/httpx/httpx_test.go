package httpx

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

type pauseRequest struct {
	State  string `json:"state" validate:"required,oneof=online offline paused"`
	Reason string `json:"reason" validate:"max=8"`
}

// binding is a route that binds the body into a fresh value from zero and answers with it.
func binding[T any](zero func() T) fiber.Handler {
	return func(c *fiber.Ctx) error {
		v := zero()
		if err := BindJSON(c, &v); err != nil {
			return err
		}
		return c.JSON(v)
	}
}

func TestBindJSONAnswersEachBadBody(t *testing.T) {
	app := NewApp(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(), BodyLimit: 1 << 10})
	app.Put("/toggle", binding(func() pauseRequest { return pauseRequest{} }))
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		code, field       string
	}{
		{"valid", "application/json", `{"state":"online"}`, 200, "", ""},
		{"wrong content type", "text/plain", `{"state":"online"}`, 415, "unsupported_media_type", ""},
		{"no content type", "", `{"state":"online"}`, 415, "unsupported_media_type", ""},
		{"form", "application/x-www-form-urlencoded", `{"state":"online"}`, 415, "unsupported_media_type", ""},
		{"json as a prefix only", "application/jsonp", `{"state":"online"}`, 415, "unsupported_media_type", ""},
		{"latin-1 charset", "application/json; charset=iso-8859-1", `{"state":"online"}`, 415, "unsupported_media_type", ""},
		{"json with charset", "Application/JSON; charset=UTF-8", `{"state":"online"}`, 200, "", ""},
		{"structured +json", "application/merge-patch+json", `{"state":"online"}`, 200, "", ""},
		{"duplicate key", "application/json", `{"state":"online","state":"offline"}`, 400, "duplicate_key", ""},
		{"keys differing in case", "application/json", `{"state":"online","State":"offline"}`, 400, "duplicate_key", "State"},
		{"key spelled with an escape", "application/json", `{"state":"online","\u0053tate":"offline"}`, 400, "duplicate_key", ""},
		{"nested too deeply", "application/json", strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat(`}`, 65), 400, "invalid_json", ""},
		{"malformed", "application/json", `{"state":`, 400, "invalid_json", ""},
		{"trailing data", "application/json", `{"state":"online"} {}`, 400, "invalid_json", ""},
		{"wrong type", "application/json", `{"state":5}`, 400, "invalid_json", "state"},
		{"missing field", "application/json", `{}`, 422, "validation_failed", "state"},
		{"bad enum", "application/json", `{"state":"asleep"}`, 422, "validation_failed", "state"},
		{"too long", "application/json", `{"state":"paused","reason":"aaaaaaaaaa"}`, 422, "validation_failed", "reason"},
	} {
		req := httptest.NewRequest("PUT", "/toggle", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ctype)
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Error struct {
				Code   string       `json:"code"`
				Fields []FieldError `json:"fields"`
			} `json:"error"`
		}
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &got)
		if resp.StatusCode != tc.status || got.Error.Code != tc.code {
			t.Errorf("%s: got %d %q, want %d %q (%s)", tc.name, resp.StatusCode, got.Error.Code, tc.status, tc.code, b)
		}
		if tc.field != "" && (len(got.Error.Fields) == 0 || got.Error.Fields[0].Field != tc.field) {
			t.Errorf("%s: fields %+v, want %q first", tc.name, got.Error.Fields, tc.field)
		}
	}
}

// BindJSON leaves the validator out only for bodies without a rule anywhere: a rule below untagged
// levels, or in a value behind an interface, is still checked.
func TestBindJSONChecksRulesAtAnyDepth(t *testing.T) {
	type inner struct {
		Name string `json:"name" validate:"required"`
	}
	type middle struct {
		Inner *inner `json:"inner"`
	}
	type nested struct {
		Middle middle `json:"middle"`
	}
	type plain struct {
		Middle *struct {
			Name string `json:"name"`
		} `json:"middle"`
	}
	type boxed struct {
		Value any `json:"-"`
	}
	app := NewApp(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(), BodyLimit: 1 << 10})
	app.Post("/nested", binding(func() nested { return nested{} }))
	app.Post("/plain", binding(func() plain { return plain{} }))
	app.Post("/boxed", binding(func() boxed { return boxed{Value: &inner{}} }))
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/nested", `{"middle":{"inner":{"name":"x"}}}`, 200},
		{"/nested", `{"middle":{"inner":{}}}`, 422},
		{"/plain", `{"middle":{}}`, 200},
		{"/boxed", `{}`, 422},
		{"/nested", `{"middle":{"inner":{"name":"x"}}}`, 200}, // the type's answer, remembered
		{"/nested", `{"middle":{"inner":{}}}`, 422},
	} {
		req := httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.status {
			b, _ := io.ReadAll(resp.Body)
			t.Errorf("%s %s: got %d, want %d (%s)", tc.path, tc.body, resp.StatusCode, tc.status, b)
		}
	}
}

func TestClientAddressComesFromTheProxyHeaderOnlyForTrustedProxies(t *testing.T) {
	ip := func(trusted []string, header string) string {
		t.Helper()
		app := NewApp(Options{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
			TrustedProxies: trusted, ProxyHeader: "X-Real-IP"})
		app.Get("/ip", func(c *fiber.Ctx) error { return c.SendString(c.IP()) })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go app.Listener(ln)
		defer app.Shutdown()
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/ip", nil)
		req.Header.Set("X-Real-IP", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := ip([]string{"127.0.0.1"}, "203.0.113.7"); got != "203.0.113.7" {
		t.Errorf("from a trusted proxy: got %q, want the header's address", got)
	}
	if got := ip([]string{"10.0.0.0/8"}, "203.0.113.7"); got != "127.0.0.1" {
		t.Errorf("from an untrusted peer: got %q, want the peer's own address", got)
	}
	if got := ip([]string{"127.0.0.0/8"}, "<script>"); got != "127.0.0.1" {
		t.Errorf("a header that is no address: got %q, want the peer's own address", got)
	}
}

// At the default level (info) each request is one log line an operator can follow; probes are not.
func TestEachRequestIsLoggedAtInfo(t *testing.T) {
	var logs strings.Builder
	app := NewApp(Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Registerer: prometheus.NewRegistry(), BodyLimit: 1 << 10})
	app.Get("/v1/things/:id", func(c *fiber.Ctx) error { return c.Status(fiber.StatusAccepted).SendString("ok") })
	resp, err := app.Test(httptest.NewRequest("GET", "/v1/things/42?hub.verify_token=secret", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, path := range []string{"/healthz", "/readyz"} {
		if r, err := app.Test(httptest.NewRequest("GET", path, nil)); err == nil {
			r.Body.Close()
		}
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Fatal("no X-Request-ID on the response")
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want one (probes are debug):\n%s", len(lines), logs.String())
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"level": "INFO", "msg": "request", "method": "GET", "path": "/v1/things/42",
		"route": "/v1/things/:id", "status": float64(202), "request_id": resp.Header.Get("X-Request-ID")}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s: got %v, want %v", k, line[k], v)
		}
	}
	if d, ok := line["duration"].(float64); !ok || d <= 0 {
		t.Errorf("duration: got %v, want a positive number of nanoseconds", line["duration"])
	}
	if strings.Contains(lines[0], "secret") {
		t.Errorf("the query string was logged: %s", lines[0])
	}
}

// A body over the limit is refused with a JSON 413 on a connection that stays usable, so a client
// still writing its body reads the answer instead of a reset (repeated, since the reset was a race).
func TestOversizedBodyIsAJSON413OnALiveConnection(t *testing.T) {
	app := NewApp(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(), BodyLimit: 64 << 10})
	app.Post("/echo", func(c *fiber.Ctx) error { return c.SendString("ok") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	url := "http://" + ln.Addr().String() + "/echo"
	big := strings.Repeat("x", 100<<10)
	for i := 0; i < 50; i++ {
		resp, err := client.Post(url, "application/json", strings.NewReader(big))
		if err != nil {
			t.Fatalf("oversized body %d: %v (want a 413 answer, not a broken connection)", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(body), `"code":"body_too_large"`) {
			t.Fatalf("oversized body %d: %d %s", i, resp.StatusCode, body)
		}
		resp, err = client.Post(url, "application/json", strings.NewReader(`{}`))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("the next request after a 413: %v %v", resp, err)
		}
		resp.Body.Close()
	}
}

// A client's X-Request-ID is kept only when short and safe; otherwise it is replaced, and the
// refused value appears neither in the answer nor in the log.
func TestClientRequestIDIsKeptOnlyWhenShortAndSafe(t *testing.T) {
	var logs strings.Builder
	app := NewApp(Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Registerer: prometheus.NewRegistry()})
	app.Get("/v1/things", func(c *fiber.Ctx) error { return c.SendString("ok") })
	app.Post("/v1/things", func(c *fiber.Ctx) error {
		var v struct{}
		return BindJSON(c, &v)
	})
	for _, tc := range []struct {
		name, method, id string
		keep             bool
	}{
		{"uuid", "GET", "0b4c8a9e-6f39-4a43-9d67-8c1e2b1b7a10", true},
		{"dotted and underscored, 64 long", "GET", "trace_1.span-2." + strings.Repeat("x", 49), true},
		{"65 long", "GET", strings.Repeat("x", 65), false},
		{"a forged log line", "GET", "abc\",\"level\":\"ERROR", false},
		{"spaces", "GET", "abc def", false},
		{"script", "GET", "<script>alert(1)</script>", false},
		{"unicode", "GET", "açaí", false},
		{"refused on an error answer too", "POST", "bad id", false},
	} {
		logs.Reset()
		req := httptest.NewRequest(tc.method, "/v1/things", nil)
		req.Header.Set("X-Request-ID", tc.id)
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := resp.Header.Get("X-Request-ID")
		switch {
		case tc.keep && got != tc.id:
			t.Errorf("%s: answered with id %q, want the client's", tc.name, got)
		case !tc.keep && (got == tc.id || !SafeRequestID(got)):
			t.Errorf("%s: answered with id %q, want a fresh safe one", tc.name, got)
		}
		if !strings.Contains(logs.String(), `"request_id":"`+got+`"`) {
			t.Errorf("%s: the log does not quote the id answered: %s", tc.name, logs.String())
		}
		if !tc.keep && (strings.Contains(logs.String(), tc.id) || strings.Contains(string(b), tc.id)) {
			t.Errorf("%s: the refused id was echoed: %s %s", tc.name, b, logs.String())
		}
		if tc.method == "POST" && !strings.Contains(string(b), `"request_id":"`+got+`"`) {
			t.Errorf("%s: the error body does not quote the id: %s", tc.name, b)
		}
	}
}

// A route with its own limit takes bodies up to it; every other route keeps the small limit, both
// for a body sent whole and for one declared over twice it in the header (refused before it is read).
func TestRouteBodyLimit(t *testing.T) {
	const small, large = 64 << 10, 4 << 20
	app := NewApp(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
		BodyLimit: small, RouteBodyLimits: map[string]int{"/big": large}})
	echo := func(c *fiber.Ctx) error { return c.SendString(strconv.Itoa(len(c.Body()))) }
	app.Post("/big", echo)
	app.Post("/small", echo)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	base := "http://" + ln.Addr().String()
	for _, tc := range []struct {
		path   string
		size   int
		status int
	}{
		{"/big", 3 << 20, 200},
		{"/big", large, 200},
		{"/big?x=1", large, 200},
		{"/big/", large, 200},
		{"/big", large + 1, 413},
		{"/small", small, 200},
		{"/small", small + 1, 413},
		{"/small", 3 << 20, 413},
	} {
		resp, err := http.Post(base+tc.path, "application/json", strings.NewReader(strings.Repeat("x", tc.size)))
		if err != nil && tc.status == 413 && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")) {
			// Refused, the answer lost with the connection the server closed while the client was still
			// writing the body past what it reads: a reset when the client reads, a broken pipe when it
			// is still writing. Only an over-limit body may end so.
			continue
		}
		if err != nil {
			t.Errorf("POST %s with %d bytes: %v", tc.path, tc.size, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.status == 200 && string(body) != strconv.Itoa(tc.size)) ||
			(tc.status == 413 && !strings.Contains(string(body), `"code":"body_too_large"`)) {
			t.Errorf("POST %s with %d bytes: got %d %.100s, want %d", tc.path, tc.size, resp.StatusCode, body, tc.status)
		}
	}
	// Declared over twice the limit, nothing sent: refused from the header, on /small at the small limit.
	for _, tc := range []struct {
		path   string
		length int
	}{{"/small", 2*small + 1}, {"/big", 2*large + 1}} {
		conn, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", tc.path, tc.length)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("%s declared %d bytes: %v (want a 413 from the header alone)", tc.path, tc.length, err)
		} else if resp.StatusCode != 413 {
			t.Errorf("%s declared %d bytes: got %d, want 413", tc.path, tc.length, resp.StatusCode)
		}
		conn.Close()
	}
}

// The method label is one of the standard methods or "other": made-up methods cannot grow the
// metrics, and no label points into fasthttp's reused request buffer.
func TestMethodLabelIsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := NewApp(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg})
	app.Get("/v1/things", func(c *fiber.Ctx) error { return c.SendString("ok") })
	for _, m := range []string{"GET", "TRACE", "CONNECT", "FOO"} {
		resp, err := app.Test(httptest.NewRequest(m, "/v1/things", nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "chatgate_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					got[l.GetValue()] = true
				}
			}
		}
	}
	if len(got) != 2 || !got["GET"] || !got["other"] {
		t.Errorf("method labels: got %v, want GET and other", got)
	}
}
