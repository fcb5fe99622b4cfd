package openapitest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chatgate/chatgate/internal/openapitest"
)

type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestTransportReportsWhatTheDocumentDoesNotSay serves answers that break the document in each way
// it can be broken and checks the transport reports exactly those, passing the bodies on intact.
func TestTransportReportsWhatTheDocumentDoesNotSay(t *testing.T) {
	v, err := openapitest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]struct {
		status      int
		contentType string
		body        string
	}{
		"/healthz":                {200, "application/json", `{"status":"ok"}`},
		"/readyz":                 {200, "application/json", `{"status":"not-quite"}`},                             // const ready
		"/v1/agents/ana/presence": {401, "application/json", `{"error":{"message":"no code"}}`},                    // code required
		"/v1/pause-reasons":       {418, "application/json", `{"error":{"code":"teapot","message":"undeclared"}}`}, // status not documented
		"/v1/templates":           {200, "text/plain", `templates`},                                                // content type not documented
		"/v1/queues":              {200, "application/json", `{"queues":[{"id":"q","strategy":"fastest","channels":[]}]}`},
		"/nowhere":                {404, "application/json", `{"error":{"code":"route_not_found","message":"x"}}`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.URL.Path]
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	tr := &openapitest.Transport{Validator: v}
	client := &http.Client{Transport: tr}
	rec := &recorder{}
	u, _ := url.Parse(srv.URL)
	watch := tr.Watch(u.Host, rec)
	for path, a := range answers {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != a.body {
			t.Errorf("%s: the caller got %q, want %q", path, body, a.body)
		}
	}
	if got := watch.Checked(); got != len(answers)-1 {
		t.Errorf("checked %d responses, want %d (all but the undocumented path)", got, len(answers)-1)
	}
	watch.Stop()
	want := []string{"/readyz", "/v1/agents/ana/presence", "/v1/pause-reasons", "/v1/templates", "/v1/queues"}
	if len(rec.errs) != len(want) {
		t.Fatalf("%d mismatches reported, want %d: %s", len(rec.errs), len(want), strings.Join(rec.errs, "\n"))
	}
	for _, path := range want {
		found := false
		for _, e := range rec.errs {
			found = found || strings.Contains(e, "GET "+path+" ")
		}
		if !found {
			t.Errorf("no mismatch reported for %s: %s", path, strings.Join(rec.errs, "\n"))
		}
	}

	// After Stop nothing is watched any more.
	resp, err := client.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if watch.Checked() != len(answers)-1 {
		t.Error("a stopped watch still validates")
	}
}

// TestTransportChecksEveryEventOfAStream reads an agent's stream through the transport: a valid
// event and a keep-alive pass; an event without its time, one whose name is not its type, and a
// conversation.closed without the whole conversation do not.
func TestTransportChecksEveryEventOfAStream(t *testing.T) {
	v, err := openapitest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	const stream = ": keep-alive\n\n" +
		"id: 1-0\nevent: card.revoked\ndata: {\"type\":\"card.revoked\",\"at\":\"2026-01-02T03:04:05Z\",\"card\":{\"id\":\"c1\",\"conversation_id\":\"v1\",\"queue\":\"sales\",\"channel\":\"whatsapp\",\"state\":\"waiting\",\"created_at\":\"2026-01-02T03:04:05Z\"}}\n\n" +
		"id: 2-0\nevent: card.offered\ndata: {\"type\":\"card.offered\"}\n\n" +
		"id: 3-0\nevent: card.offered\ndata: {\"type\":\"message.status\",\"at\":\"2026-01-02T03:04:05Z\"}\n\n" +
		"id: 4-0\nevent: conversation.closed\ndata: {\"type\":\"conversation.closed\",\"at\":\"2026-01-02T03:04:05Z\",\"conversation\":{\"id\":\"v1\"}}\n\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, stream)
	}))
	defer srv.Close()
	tr := &openapitest.Transport{Validator: v}
	rec := &recorder{}
	u, _ := url.Parse(srv.URL)
	watch := tr.Watch(u.Host, rec)
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/v1/agents/me/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != stream {
		t.Errorf("the reader got %q", body)
	}
	if got := watch.Checked(); got != 5 { // the response, then four events
		t.Errorf("checked %d, want 5", got)
	}
	watch.Stop()
	if len(rec.errs) != 3 || !strings.Contains(rec.errs[0], `"card.offered"`) || !strings.Contains(rec.errs[1], `type "message.status"`) ||
		!strings.Contains(rec.errs[2], `"conversation.closed"`) {
		t.Fatalf("reported:\n%s", strings.Join(rec.errs, "\n"))
	}
}
