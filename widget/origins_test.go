package widget

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

var example = configs.Site{ID: "shop", AllowedOrigins: []string{"http://localhost:8080", "http://127.0.0.1:8080"}}

func TestListenOrigins(t *testing.T) {
	for _, tc := range []struct {
		env, listen string
		site        configs.Site
		want        []string
	}{
		{"development", "127.0.0.1:9090", example, []string{"http://localhost:9090", "http://127.0.0.1:9090"}},
		{"development", ":9090", example, []string{"http://localhost:9090", "http://127.0.0.1:9090"}},
		{"development", "0.0.0.0:9090", example, []string{"http://localhost:9090", "http://127.0.0.1:9090"}},
		{"development", "[::]:9090", example, []string{"http://localhost:9090", "http://127.0.0.1:9090", "http://[::]:9090"}},
		{"development", "192.0.2.7:9090", example, []string{"http://localhost:9090", "http://127.0.0.1:9090", "http://192.0.2.7:9090"}},
		{"development", "127.0.0.1:8080", example, nil}, // already allowed
		{"development", "127.0.0.1:0", example, nil},
		{"development", "127.0.0.1:9090", configs.Site{AllowedOrigins: []string{"https://shop.example"}}, nil},
		{"development", "127.0.0.1:9090", configs.Site{AllowedOrigins: []string{"https://localhost:8443"}}, nil},
		{"production", "127.0.0.1:9090", example, nil},
		{"", "127.0.0.1:9090", example, nil},
	} {
		if got := listenOrigins(tc.env, tc.listen, tc.site); !slices.Equal(got, tc.want) {
			t.Errorf("%s on %s with %v: got %v, want %v", tc.env, tc.listen, tc.site.AllowedOrigins, got, tc.want)
		}
	}
}

// The example's origins follow the listen port in development only, and a refused origin is a warning
// naming it and the site, paced so that a flood of refusals is a handful of lines.
func TestWidgetOriginsFollowTheListenPortAndRefusalsAreLogged(t *testing.T) {
	client := redistest.Client(t)
	start := func(env string) (func(origin string) int, *testutil.Buffer) {
		logs := &testutil.Buffer{}
		cfg := &configs.Config{Env: env, Listen: "127.0.0.1:9090", Auth: configs.Auth{JWTSecret: "s"},
			WebChat: configs.WebChat{VisitorTokenTTL: time.Hour, IPRate: 0, Sites: []configs.Site{example,
				{ID: "blog", AllowedOrigins: []string{"https://blog.example"}}}}}
		h := NewHandler(client, keyspace.New("t"), cfg, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)),
			Tokens: NewTokens("s", "", time.Hour, nil)})
		app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
		h.Register(app)
		return func(origin string) int {
			req := httptest.NewRequest("POST", "/webchat/v1/sessions", strings.NewReader(`{"site":"shop"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", origin)
			resp, err := app.Test(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}, logs
	}

	session, logs := start("development")
	for origin, want := range map[string]int{"http://localhost:9090": 201, "http://127.0.0.1:9090": 201, "http://localhost:8080": 201,
		"http://localhost:9091": 403, "https://blog.example": 403} {
		if got := session(origin); got != want {
			t.Errorf("development, origin %s: got %d, want %d", origin, got, want)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"origin refused","component":"webchat","origin":"http://localhost:9091","site":""`) ||
		!strings.Contains(logs.String(), `"msg":"origin refused","component":"webchat","origin":"https://blog.example","site":"shop"`) {
		t.Errorf("the refusals are not logged with their origin and site:\n%s", logs)
	}
	before := strings.Count(logs.String(), "origin refused")
	for i := 0; i < 300; i++ {
		session("http://evil.example/" + strings.Repeat("x", i%100))
		session("http://localhost:9091")
	}
	if n := strings.Count(logs.String(), "origin refused") - before; n == 0 || n > 66 {
		t.Errorf("600 refusals wrote %d log lines; want a paced few", n)
	}

	prod, _ := start("production")
	if got := prod("http://localhost:9090"); got != 403 {
		t.Errorf("production, origin of the listen port: got %d, want 403 (production never widens)", got)
	}
	if got := prod("http://localhost:8080"); got != 201 {
		t.Errorf("production, configured origin: got %d, want 201", got)
	}
}
