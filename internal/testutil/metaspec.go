package testutil

import (
	"encoding/json"
	"os"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// metaSpecPath is Meta's OpenAPI description of the WhatsApp Business Platform, kept in the
// repository with its licence (testdata/meta).
var metaSpecPath = []string{"testdata", "meta", "business-messaging-api_v23.0.yaml"}

// MetaOperation is one operation of Meta's OpenAPI description with its JSON examples, each as
// generic JSON (maps, slices, strings, float64, bool) so that it compares alike with what the
// gateway encodes. Every call returns fresh values: a test may change them.
type MetaOperation struct {
	ID        string                    // the operationId
	Requests  map[string]any            // request examples by name
	Responses map[string]map[string]any // response examples by status code, then by name
}

// The description is a megabyte of YAML: it is parsed once per test binary.
var metaSpec struct {
	once  sync.Once
	mu    sync.Mutex // yaml.Node.Decode is not documented as safe for concurrent use
	paths map[string]map[string]yaml.Node
	err   error
}

// MetaSpec returns the operation of Meta's OpenAPI description at path for method ("post"),
// failing the test when the description or the operation is missing.
func MetaSpec(t testing.TB, method, path string) MetaOperation {
	t.Helper()
	file := Path(t, metaSpecPath...)
	metaSpec.once.Do(func() {
		raw, err := os.ReadFile(file)
		if err != nil {
			metaSpec.err = err
			return
		}
		var doc struct {
			Paths map[string]map[string]yaml.Node `yaml:"paths"`
		}
		metaSpec.err = yaml.Unmarshal(raw, &doc)
		metaSpec.paths = doc.Paths
	})
	if metaSpec.err != nil {
		t.Fatalf("Meta's OpenAPI description is expected in the repository at %s: %v", file, metaSpec.err)
	}
	type examples map[string]struct {
		Value any `yaml:"value"`
	}
	type content map[string]struct {
		Examples examples `yaml:"examples"`
	}
	var op struct {
		OperationID string `yaml:"operationId"`
		RequestBody struct {
			Content content `yaml:"content"`
		} `yaml:"requestBody"`
		Responses map[string]struct {
			Content content `yaml:"content"`
		} `yaml:"responses"`
	}
	metaSpec.mu.Lock()
	node, ok := metaSpec.paths[path][method]
	var err error
	if ok {
		err = node.Decode(&op)
	}
	metaSpec.mu.Unlock()
	if !ok {
		t.Fatalf("Meta's OpenAPI description has no %s %s", method, path)
	}
	if err != nil {
		t.Fatalf("%s %s in Meta's OpenAPI description: %v", method, path, err)
	}
	generic := func(name string, v any) any {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("example %s of %s %s: %v", name, method, path, err)
		}
		var out any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := MetaOperation{ID: op.OperationID, Requests: map[string]any{}, Responses: map[string]map[string]any{}}
	for name, ex := range op.RequestBody.Content["application/json"].Examples {
		out.Requests[name] = generic(name, ex.Value)
	}
	for status, resp := range op.Responses {
		for name, ex := range resp.Content["application/json"].Examples {
			if out.Responses[status] == nil {
				out.Responses[status] = map[string]any{}
			}
			out.Responses[status][name] = generic(name, ex.Value)
		}
	}
	return out
}
