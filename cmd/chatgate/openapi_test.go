package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chatgate/chatgate/internal/openapi"
	"github.com/chatgate/chatgate/internal/openapitest"
	"github.com/chatgate/chatgate/internal/redistest"
)

// apiCheck validates, against the OpenAPI document, the answers of every test gateway (each test
// watches its own address) to requests made with http.DefaultClient.
var apiCheck = func() *openapitest.Transport {
	v, err := openapitest.Shared()
	if err != nil {
		panic(err)
	}
	tr := &openapitest.Transport{Base: http.DefaultTransport, Validator: v}
	http.DefaultClient.Transport = tr
	return tr
}()

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestEveryRouteIsDocumented compares the routes a fully wired gateway registers (development
// mode, so the development-only ones too) with the operations of the OpenAPI document, both ways.
func TestEveryRouteIsDocumented(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	if cfg.Env != "development" {
		t.Fatalf("the example's env is %q; this test needs the development routes", cfg.Env)
	}
	tg := startTestGateway(t, cfg, nil)

	registered := map[string]bool{}
	gets := map[string]bool{}
	var heads []string
	for _, r := range tg.g.app.GetRoutes(true) { // true: without app.Use mounts (static pages, middleware)
		path := fiberParam.ReplaceAllString(r.Path, "{$1}")
		switch r.Method {
		case http.MethodHead:
			heads = append(heads, path)
		default:
			registered[r.Method+" "+path] = true
			if r.Method == http.MethodGet {
				gets[path] = true
			}
		}
	}
	// fiber adds HEAD to every GET; the document describes the GET.
	for _, p := range heads {
		if !gets[p] {
			t.Errorf("HEAD %s is registered without a GET", p)
		}
	}

	raw, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			if slices.Contains([]string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}, method) {
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	for route := range registered {
		if !documented[route] {
			t.Errorf("%s is served but not in the OpenAPI document", route)
		}
	}
	for op := range documented {
		if !registered[op] {
			t.Errorf("%s is in the OpenAPI document but not served", op)
		}
	}
	if len(registered) < 40 {
		t.Fatalf("only %d routes registered: the gateway was not fully wired", len(registered))
	}

	// Served open and valid: this request goes through apiCheck too.
	code, body := do(t, "GET", tg.base+openapi.Path, "", nil)
	if code != 200 || !json.Valid(body) || !strings.Contains(string(body), `"openapi"`) {
		t.Fatalf("GET %s: %d %.200s", openapi.Path, code, body)
	}
}
