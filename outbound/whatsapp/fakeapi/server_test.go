package fakeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound/whatsapp"
)

const (
	numberID = "100200300"
	token    = "tok-100"
	otherID  = "400500600"
	otherTok = "tok-400"
	phone    = "+5511999990001"
)

func newFake(t *testing.T, opts Options) (*Server, *httptest.Server, *whatsapp.Client) {
	t.Helper()
	if opts.Numbers == nil {
		opts.Numbers = map[string]string{numberID: token, otherID: otherTok}
	}
	s := New(opts)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { s.Close(); hs.Close() })
	c, err := whatsapp.New(whatsapp.Config{BaseURL: hs.URL, APIVersion: "v23.0"})
	if err != nil {
		t.Fatal(err)
	}
	return s, hs, c
}

// TestAcceptsClientMessages: every message the client builds passes the
// fake's checks, is answered like Meta and recorded as sent.
func TestAcceptsClientMessages(t *testing.T) {
	s, _, c := newFake(t, Options{})
	tests := []struct {
		msg               whatsapp.Message
		typ, tmpl, to     string
		waID, userID      string
		wantMessageStatus string
	}{
		{whatsapp.TextMessage{To: phone, Body: "Olá", ReplyTo: "wamid.prev"}, "text", "", "5511999990001", "5511999990001", "", ""},
		{whatsapp.TemplateMessage{To: phone, Name: "order_update", Language: "pt_BR", HeaderParams: []string{"Pedido"},
			BodyParams: []string{"Ana", "#123"}, ButtonParams: []whatsapp.ButtonParam{
				{Kind: whatsapp.QuickReplyButton, Index: 0, Value: "STOP"}, {Kind: whatsapp.URLButton, Index: 1, Value: "o/123"}}},
			"template", "order_update", "5511999990001", "5511999990001", "", "accepted"},
		{whatsapp.MediaMessage{To: phone, Kind: whatsapp.MediaImage, Link: "https://example.com/a.jpg", Caption: "c"}, "image", "", "5511999990001", "5511999990001", "", ""},
		{whatsapp.MediaMessage{To: phone, Kind: whatsapp.MediaDocument, ID: "123", Filename: "a.pdf"}, "document", "", "5511999990001", "5511999990001", "", ""},
		{whatsapp.MediaMessage{To: phone, Kind: whatsapp.MediaAudio, ID: "123"}, "audio", "", "5511999990001", "5511999990001", "", ""},
		{whatsapp.MediaMessage{To: phone, Kind: whatsapp.MediaVideo, Link: "http://example.com/v.mp4"}, "video", "", "5511999990001", "5511999990001", "", ""},
		{whatsapp.TextMessage{To: "BR.1502576394655843", Body: "Oi"}, "text", "", "BR.1502576394655843", "", "BR.1502576394655843", ""},
	}
	for i, tc := range tests {
		res, err := c.Send(context.Background(), numberID, token, tc.msg)
		if err != nil {
			t.Errorf("%d (%s): %v", i, tc.typ, err)
			continue
		}
		if !strings.HasPrefix(res.MessageID, "wamid.") || res.ContactWaID != tc.waID || res.ContactUserID != tc.userID ||
			res.MessageStatus != tc.wantMessageStatus {
			t.Errorf("%d (%s): result %+v", i, tc.typ, res)
		}
		calls := s.Calls()
		if len(calls) != i+1 {
			t.Fatalf("%d: %d calls recorded, want %d", i, len(calls), i+1)
		}
		got := calls[i]
		want, _ := whatsapp.Encode(tc.msg)
		if got.PhoneNumberID != numberID || got.Recipient != tc.to || got.Type != tc.typ || got.Template != tc.tmpl ||
			got.MessageID != res.MessageID || got.Status != 200 || !bytes.Equal(got.Body, want) || got.At.IsZero() {
			t.Errorf("%d: recorded %+v (body %s), want number %s to %s type %s body %s", i, got, got.Body, numberID, tc.to, tc.typ, want)
		}
	}
	if got, want := s.CountFor(numberID), len(tests); got != want {
		t.Errorf("CountFor: got %d, want %d", got, want)
	}
	if got := s.CountFor(otherID); got != 0 {
		t.Errorf("CountFor other number: got %d, want 0", got)
	}
	if got, want := s.CountTo(phone), len(tests)-1; got != want {
		t.Errorf("CountTo: got %d, want %d", got, want)
	}
	if n := len(s.Failures()); n != 0 {
		t.Errorf("failures: got %d, want 0", n)
	}
}

// TestAcceptsMetaExamples posts Meta's own sendMessage examples: a fake that
// refused them would be stricter than Meta. Placeholders become real values.
func TestAcceptsMetaExamples(t *testing.T) {
	_, hs, _ := newFake(t, Options{})
	skip := map[string]string{
		"Send typing indicator and read receipt": "marks a message read; not a send",
		"Send Sample Issue Resolution Template":  "its quick-reply parameters carry booleans as text",
	}
	n := 0
	for name, ex := range testutil.MetaSpec(t, "post", "/{Version}/{Phone-Number-ID}/messages").Requests {
		if reason, ok := skip[name]; ok {
			t.Logf("skipped %q: %s", name, reason)
			continue
		}
		body := normaliseExample(ex)
		status, resp := post(t, hs.URL+"/v23.0/"+numberID+"/messages", token, "application/json", body)
		if status != 200 {
			t.Errorf("%s: status %d: %s\nbody: %s", name, status, resp, body)
		}
		n++
	}
	if n < 40 {
		t.Errorf("posted %d examples, want about fifty", n)
	}
}

// TestRejectsWrongRequests: each bad request gets Meta's error shape with the
// status and code below, and nothing is recorded as sent.
func TestRejectsWrongRequests(t *testing.T) {
	s, hs, _ := newFake(t, Options{Version: "v23.0", Templates: []Template{
		{Name: "order_update", Language: "pt_BR", HeaderParams: 1, BodyParams: 2, ButtonParams: 1},
	}})
	const path = "/v23.0/" + numberID + "/messages"
	good := `{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999990001","type":"text","text":{"body":"x"}}`
	tpl := func(components string) string {
		return `{"messaging_product":"whatsapp","to":"5511999990001","type":"template","template":{"name":"order_update","language":{"code":"pt_BR"},"components":` + components + `}}`
	}
	okComponents := `[{"type":"header","parameters":[{"type":"text","text":"P"}]},{"type":"body","parameters":[{"type":"text","text":"A"},{"type":"text","text":"B"}]},{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"x"}]}]`
	tests := []struct {
		name, method, path, auth, ctype, body string
		status, code                          int
		recordedFailure                       bool // past the token check
	}{
		{"GET", "GET", path, token, "application/json", "", 400, 100, false},
		{"wrong path", "POST", "/v23.0/" + numberID + "/message", token, "application/json", good, 400, 100, false},
		{"extra path", "POST", path + "/x", token, "application/json", good, 400, 100, false},
		{"bad version", "POST", "/23.0/" + numberID + "/messages", token, "application/json", good, 400, 100, false},
		{"other version", "POST", "/v21.0/" + numberID + "/messages", token, "application/json", good, 400, 100, false},
		{"no token", "POST", path, "", "application/json", good, 401, 190, false},
		{"wrong token", "POST", path, "nope", "application/json", good, 401, 190, false},
		{"token of another number", "POST", path, otherTok, "application/json", good, 401, 190, false},
		{"unknown number", "POST", "/v23.0/999/messages", token, "application/json", good, 400, 100, false},
		{"form content type", "POST", path, token, "application/x-www-form-urlencoded", good, 400, 100, true},
		{"no content type", "POST", path, token, "", good, 400, 100, true},
		{"not JSON", "POST", path, token, "application/json", `{`, 400, 100, true},
		{"JSON array", "POST", path, token, "application/json", `[]`, 400, 100, true},
		{"null", "POST", path, token, "application/json", `null`, 400, 100, true},
		{"unknown field", "POST", path, token, "application/json", strings.Replace(good, `"type"`, `"typo":1,"type"`, 1), 400, 100, true},
		{"no messaging_product", "POST", path, token, "application/json", `{"to":"5511999990001","type":"text","text":{"body":"x"}}`, 400, 131008, true},
		{"wrong messaging_product", "POST", path, token, "application/json", strings.Replace(good, `"whatsapp"`, `"sms"`, 1), 400, 131009, true},
		{"group recipient type", "POST", path, token, "application/json", strings.Replace(good, `individual`, `group`, 1), 400, 131009, true},
		{"no recipient", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}`, 400, 131008, true},
		{"to not a number", "POST", path, token, "application/json", strings.Replace(good, `5511999990001`, `abc`, 1), 400, 131009, true},
		{"to too short", "POST", path, token, "application/json", strings.Replace(good, `5511999990001`, `123`, 1), 400, 131009, true},
		{"to a number type", "POST", path, token, "application/json", strings.Replace(good, `"5511999990001"`, `5511999990001`, 1), 400, 131009, true},
		{"recipient not a user id", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","recipient":"br.1","type":"text","text":{"body":"x"}}`, 400, 131009, true},
		{"unknown type", "POST", path, token, "application/json", strings.Replace(good, `"type":"text"`, `"type":"fax"`, 1), 400, 131051, true},
		{"type without its object", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"image","text":{"body":"x"}}`, 400, 100, true},
		{"missing object", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"image"}`, 400, 131008, true},
		{"empty text body", "POST", path, token, "application/json", strings.Replace(good, `"body":"x"`, `"body":" "`, 1), 400, 131009, true},
		{"missing text body", "POST", path, token, "application/json", strings.Replace(good, `"body":"x"`, `"preview_url":true`, 1), 400, 131008, true},
		{"text body too long", "POST", path, token, "application/json", strings.Replace(good, `"body":"x"`, `"body":"`+strings.Repeat("a", 4097)+`"`, 1), 400, 131009, true},
		{"preview_url a string", "POST", path, token, "application/json", strings.Replace(good, `"body":"x"`, `"body":"x","preview_url":"yes"`, 1), 400, 131009, true},
		{"text unknown key", "POST", path, token, "application/json", strings.Replace(good, `"body":"x"`, `"body":"x","bold":true`, 1), 400, 100, true},
		{"media without id or link", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"image","image":{"caption":"c"}}`, 400, 131008, true},
		{"media with both", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"image","image":{"id":"1","link":"https://x.test/a"}}`, 400, 100, true},
		{"media link not http", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"image","image":{"link":"file:///etc/passwd"}}`, 400, 131009, true},
		{"audio caption", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"audio","audio":{"id":"1","caption":"c"}}`, 400, 100, true},
		{"image filename", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"image","image":{"id":"1","filename":"a"}}`, 400, 100, true},
		{"context without id", "POST", path, token, "application/json", strings.Replace(good, `"type":"text"`, `"context":{},"type":"text"`, 1), 400, 131008, true},
		{"template without name", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"template","template":{"language":{"code":"pt_BR"}}}`, 400, 131008, true},
		{"template without language", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"template","template":{"name":"order_update"}}`, 400, 131008, true},
		{"template language a string", "POST", path, token, "application/json", `{"messaging_product":"whatsapp","to":"5511999990001","type":"template","template":{"name":"order_update","language":"pt_BR"}}`, 400, 131009, true},
		{"components not an array", "POST", path, token, "application/json", tpl(`{}`), 400, 131009, true},
		{"component of unknown type", "POST", path, token, "application/json", tpl(`[{"type":"footer","parameters":[]}]`), 400, 131009, true},
		{"button without sub_type", "POST", path, token, "application/json", tpl(`[{"type":"button","index":"0","parameters":[{"type":"payload","payload":"p"}]}]`), 400, 131008, true},
		{"button without index", "POST", path, token, "application/json", tpl(`[{"type":"button","sub_type":"quick_reply","parameters":[{"type":"payload","payload":"p"}]}]`), 400, 131008, true},
		{"button index 10", "POST", path, token, "application/json", tpl(`[{"type":"button","sub_type":"quick_reply","index":"10","parameters":[{"type":"payload","payload":"p"}]}]`), 400, 131009, true},
		{"button index not a number", "POST", path, token, "application/json", tpl(`[{"type":"button","sub_type":"quick_reply","index":"a","parameters":[{"type":"payload","payload":"p"}]}]`), 400, 131009, true},
		{"button without parameters", "POST", path, token, "application/json", tpl(`[{"type":"button","sub_type":"quick_reply","index":"0"}]`), 400, 131008, true},
		{"parameter without its value", "POST", path, token, "application/json", tpl(`[{"type":"body","parameters":[{"type":"text"}]}]`), 400, 131008, true},
		{"empty text parameter", "POST", path, token, "application/json", tpl(`[{"type":"body","parameters":[{"type":"text","text":""}]}]`), 400, 131009, true},
		{"sub_type on a body", "POST", path, token, "application/json", tpl(`[{"type":"body","sub_type":"url","parameters":[]}]`), 400, 100, true},
		{"unknown template", "POST", path, token, "application/json", strings.Replace(tpl(okComponents), `order_update`, `promo`, 1), 404, 132001, true},
		{"unknown language", "POST", path, token, "application/json", strings.Replace(tpl(okComponents), `pt_BR`, `en_US`, 1), 404, 132001, true},
		{"body parameter missing", "POST", path, token, "application/json", tpl(`[{"type":"header","parameters":[{"type":"text","text":"P"}]},{"type":"body","parameters":[{"type":"text","text":"A"}]},{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"x"}]}]`), 400, 132000, true},
		{"header parameter missing", "POST", path, token, "application/json", tpl(`[{"type":"body","parameters":[{"type":"text","text":"A"},{"type":"text","text":"B"}]},{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"x"}]}]`), 400, 132000, true},
		{"button parameter missing", "POST", path, token, "application/json", tpl(`[{"type":"header","parameters":[{"type":"text","text":"P"}]},{"type":"body","parameters":[{"type":"text","text":"A"},{"type":"text","text":"B"}]}]`), 400, 132000, true},
		{"body too large", "POST", path, token, "application/json", `{"x":"` + strings.Repeat("a", maxBody) + `"}`, 400, 100, true},
	}
	failures := 0
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.path, strings.NewReader(tc.body))
		if tc.auth != "" {
			req.Header.Set("Authorization", "Bearer "+tc.auth)
		}
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Error struct {
				Message   string `json:"message"`
				Type      string `json:"type"`
				Code      int    `json:"code"`
				ErrorData struct {
					Details string `json:"details"`
				} `json:"error_data"`
				FBTraceID string `json:"fbtrace_id"`
			} `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || got.Error.Code != tc.code {
			t.Errorf("%s: got %d code %d (%s: %s) err %v; want %d code %d",
				tc.name, resp.StatusCode, got.Error.Code, got.Error.Message, got.Error.ErrorData.Details, err, tc.status, tc.code)
			continue
		}
		if got.Error.Message == "" || got.Error.Type != "OAuthException" || got.Error.FBTraceID == "" {
			t.Errorf("%s: not Meta's error shape: %+v", tc.name, got.Error)
		}
		if tc.recordedFailure {
			failures++
		}
	}
	if n := len(s.Calls()); n != 0 {
		t.Errorf("accepted calls: got %d, want 0", n)
	}
	if got := len(s.Failures()); got != failures {
		t.Errorf("recorded failures: got %d, want %d", got, failures)
	}
	for _, f := range s.Failures() {
		if f.Injected || f.MessageID != "" || f.Status < 400 {
			t.Errorf("failure recorded as %+v", f)
		}
	}
	// The same catalogue accepts the right template.
	if status, resp := post(t, hs.URL+path, token, "application/json", tpl(okComponents)); status != 200 {
		t.Errorf("known template: status %d %s", status, resp)
	}
}

func TestOnAcceptAndMaxRecorded(t *testing.T) {
	var mu sync.Mutex
	var seen []Call
	s, _, c := newFake(t, Options{MaxRecorded: 2, OnAccept: func(call Call) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, call)
	}})
	var ids []string
	for range 3 {
		res, err := c.Send(context.Background(), numberID, token, whatsapp.TextMessage{To: phone, Body: "x"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.MessageID)
	}
	if len(s.Calls()) != 2 || s.CountFor(numberID) != 3 || s.Accepted() != 3 {
		t.Errorf("calls %d count %d accepted %d; want 2, 3, 3", len(s.Calls()), s.CountFor(numberID), s.Accepted())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("OnAccept ran %d times, want 3", len(seen))
	}
	for i, call := range seen {
		if call.MessageID != ids[i] || call.Recipient != "5511999990001" || call.PhoneNumberID != numberID {
			t.Errorf("OnAccept %d: %+v", i, call)
		}
	}
	if ids[0] == ids[1] || ids[1] == ids[2] {
		t.Errorf("message ids repeat: %v", ids)
	}
	s.Reset()
	if len(s.Calls()) != 0 || s.CountFor(numberID) != 0 || s.Accepted() != 0 {
		t.Error("Reset left records")
	}
}

func TestStartAndClose(t *testing.T) {
	// Other tests' clients keep their idle-connection cleaners a while; this one's server must not.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := New(Options{Numbers: map[string]string{numberID: token}})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start: got nil error")
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c, err := whatsapp.New(whatsapp.Config{BaseURL: s.URL(), HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(context.Background(), numberID, token, whatsapp.TextMessage{To: phone, Body: "x"}); err != nil {
		t.Fatal(err)
	}

	// A pending delay ends with Close instead of holding the shutdown.
	if _, err := s.AddRule(Slow(time.Minute)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), numberID, token, whatsapp.TextMessage{To: phone, Body: "x"})
		done <- err
	}()
	testutil.Eventually(t, 5*time.Second, "the slow rule applied to the send", func() bool { return s.Rules()[0].Applied == 1 })
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || whatsapp.IsPermanent(err) {
		t.Errorf("send during Close: got %v, want a transient error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("Start after Close: got nil error")
	}
}

func post(t *testing.T, url, tok, ctype string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// normaliseExample replaces Meta's placeholders: the recipient becomes a
// number and placeholder links ("<http(s)://audio-url>") a real URL.
func normaliseExample(ex any) string {
	m := ex.(map[string]any)
	m["to"] = "16505551234"
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && k == "link" && strings.Contains(s, "http(s)") {
					x[k] = "https://example.com/media"
				}
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(m)
	b, _ := json.Marshal(m)
	return string(b)
}
