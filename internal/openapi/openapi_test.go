package openapi_test

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/internal/openapi"
	"github.com/chatgate/chatgate/internal/openapitest"
)

func document(t *testing.T) map[string]any {
	t.Helper()
	raw, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestDocumentIsValidOpenAPI31 has the validator library check the document against the OpenAPI
// 3.1 schema, as client generators would.
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	if doc := document(t); doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi = %v, want 3.1.0", doc["openapi"])
	}
	if _, err := openapitest.New(openapi.YAML()); err != nil {
		t.Fatal(err)
	}
}

var methods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// TestDocumentIsLintClean checks what generators trip on and the 3.1 schema does not: every
// operation has a unique operationId and declares its path's parameters, every $ref resolves and
// every component is used.
func TestDocumentIsLintClean(t *testing.T) {
	doc := document(t)
	paths := doc["paths"].(map[string]any)
	ids := map[string]string{}
	templateParam := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range paths {
		item := item.(map[string]any)
		for _, m := range methods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			where := strings.ToUpper(m) + " " + path
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, dup := ids[id]; dup {
				t.Errorf("operationId %q is used by %s and %s", id, other, where)
			}
			ids[id] = where
			if _, ok := op["responses"].(map[string]any); !ok {
				t.Errorf("%s has no responses", where)
			}
			declared := map[string]bool{}
			for _, list := range [][]any{asList(item["parameters"]), asList(op["parameters"])} {
				for _, p := range list {
					p := resolve(t, doc, p.(map[string]any))
					if p["in"] == "path" {
						declared[p["name"].(string)] = true
					}
				}
			}
			for _, m := range templateParam.FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s does not declare its path parameter %q", where, m[1])
				}
				delete(declared, m[1])
			}
			for name := range declared {
				t.Errorf("%s declares path parameter %q that its path does not have", where, name)
			}
		}
	}

	refs := map[string]bool{}
	collectRefs(doc, refs)
	for ref := range refs {
		if !strings.HasPrefix(ref, "#/components/") {
			t.Errorf("$ref %q points outside the document's components", ref)
			continue
		}
		resolve(t, doc, map[string]any{"$ref": ref})
	}
	used := map[string]bool{}
	for ref := range refs {
		used[ref] = true
	}
	// Security schemes are named by requirements, not by $ref.
	for _, req := range asList(doc["security"]) {
		for name := range req.(map[string]any) {
			used["#/components/securitySchemes/"+name] = true
		}
	}
	for _, item := range paths {
		for _, m := range methods {
			if op, ok := item.(map[string]any)[m].(map[string]any); ok {
				for _, req := range asList(op["security"]) {
					for name := range req.(map[string]any) {
						used["#/components/securitySchemes/"+name] = true
					}
				}
			}
		}
	}
	var unused []string
	for kind, group := range doc["components"].(map[string]any) {
		for name := range group.(map[string]any) {
			if ref := "#/components/" + kind + "/" + name; !used[ref] {
				unused = append(unused, ref)
			}
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("components nothing refers to: %v", unused)
	}
	if len(ids) < 40 {
		t.Errorf("only %d operations: the document lost some", len(ids))
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func collectRefs(v any, into map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				into[s] = true
			}
			collectRefs(x, into)
		}
	case []any:
		for _, x := range v {
			collectRefs(x, into)
		}
	}
}

// resolve follows a local $ref (the only kind the document uses).
func resolve(t *testing.T, doc, node map[string]any) map[string]any {
	t.Helper()
	ref, ok := node["$ref"].(string)
	if !ok {
		return node
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok || m[part] == nil {
			t.Errorf("$ref %q does not resolve", ref)
			return map[string]any{}
		}
		cur = m[part]
	}
	return cur.(map[string]any)
}

// TestServedAsCacheableJSON: GET /openapi.json is the document, with an ETag that answers 304.
func TestServedAsCacheableJSON(t *testing.T) {
	app := fiber.New()
	if err := openapi.Register(app); err != nil {
		t.Fatal(err)
	}
	resp, err := app.Test(httptest.NewRequest("GET", openapi.Path, nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	want, _ := openapi.JSON()
	if resp.StatusCode != 200 || !slices.Equal(body, want) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s, %d bytes", openapi.Path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("not cacheable: ETag %q, Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	req := httptest.NewRequest("GET", openapi.Path, nil)
	req.Header.Set("If-None-Match", etag)
	if resp, _ := app.Test(req); resp.StatusCode != 304 {
		t.Fatalf("If-None-Match with the ETag: %d, want 304", resp.StatusCode)
	}
}
