package whatsapp

import (
	"encoding/json"
	"testing"

	"github.com/chatgate/chatgate/internal/testutil"
)

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
	op := testutil.MetaSpec(t, "post", "/{Version}/{Phone-Number-ID}/messages")
	if op.ID != "sendMessage" {
		t.Fatalf("operation %q, want sendMessage", op.ID)
	}
	requests, responses = op.Requests, op.Responses["200"]
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
