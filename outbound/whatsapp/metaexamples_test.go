package whatsapp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// metaSpec is Meta's OpenAPI description, kept in testdata/meta (MIT, see its LICENSE).
var metaSpec = filepath.Join("..", "..", "testdata", "meta", "business-messaging-api_v23.0.yaml")

// sendMessageExamples returns the request examples of Meta's sendMessage
// operation, each as generic JSON (maps, slices, strings, float64, bool).
func sendMessageExamples(t testing.TB) map[string]any {
	req, _ := sendMessageSpec(t)
	return req
}

// sendMessageResponses returns the examples of its 200 response.
func sendMessageResponses(t testing.TB) map[string]any {
	_, resp := sendMessageSpec(t)
	return resp
}

func sendMessageSpec(t testing.TB) (requests, responses map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(metaSpec)
	if err != nil {
		t.Fatalf("Meta's OpenAPI file is expected in the repository at %s: %v", metaSpec, err)
	}
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var post struct {
		OperationID string `yaml:"operationId"`
		RequestBody struct {
			Content map[string]struct {
				Examples map[string]struct {
					Value any `yaml:"value"`
				} `yaml:"examples"`
			} `yaml:"content"`
		} `yaml:"requestBody"`
		Responses map[string]struct {
			Content map[string]struct {
				Examples map[string]struct {
					Value any `yaml:"value"`
				} `yaml:"examples"`
			} `yaml:"content"`
		} `yaml:"responses"`
	}
	node := doc.Paths["/{Version}/{Phone-Number-ID}/messages"]["post"]
	if err := node.Decode(&post); err != nil {
		t.Fatal(err)
	}
	if post.OperationID != "sendMessage" {
		t.Fatalf("operation %q, want sendMessage", post.OperationID)
	}
	requests, responses = map[string]any{}, map[string]any{}
	for name, ex := range post.RequestBody.Content["application/json"].Examples {
		requests[name] = roundTrip(t, ex.Value)
	}
	for name, ex := range post.Responses["200"].Content["application/json"].Examples {
		responses[name] = roundTrip(t, ex.Value)
	}
	if len(requests) < 40 || len(responses) < 40 {
		t.Fatalf("found %d request and %d response examples, want about fifty each", len(requests), len(responses))
	}
	return requests, responses
}

// roundTrip turns any JSON-able value into generic JSON, so values from YAML
// and from our encoder compare alike.
func roundTrip(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
