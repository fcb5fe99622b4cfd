package fakeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// admin calls the admin API as a separate process would.
func admin(t *testing.T, method, url, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, url, raw)
		}
	}
	return resp.StatusCode, out
}

// TestAdminAPIDrivesTheFake flips the fake over HTTP and checks a send sees it.
func TestAdminAPIDrivesTheFake(t *testing.T) {
	s, hs, c := newFake(t, Options{})
	base := hs.URL + "/_fake"
	send := func() error {
		_, err := c.Send(context.Background(), numberID, token, whatsapp.TextMessage{To: phone, Body: "x"})
		return err
	}

	status, out := admin(t, "POST", base+"/rules", "", `{"code":130429,"retry_after":"3s","times":1}`)
	if status != 201 || out["id"] == nil {
		t.Fatalf("add rule: %d %v", status, out)
	}
	status, out = admin(t, "GET", base+"/rules", "", "")
	if rules := out["rules"].([]any); status != 200 || len(rules) != 1 {
		t.Fatalf("list rules: %d %v", status, out)
	}
	if err := send(); whatsapp.RetryAfter(err).Seconds() != 3 {
		t.Errorf("throttled send: got %v", err)
	}
	if err := send(); err != nil {
		t.Errorf("after the one-time rule: %v", err)
	}

	_, out = admin(t, "POST", base+"/rules", "", `{"recipient":"+5511999990001","code":131047}`)
	id := int(out["id"].(float64))
	var e *whatsapp.Error
	if err := send(); !errors.As(err, &e) || e.Code != 131047 || !whatsapp.IsPermanent(err) {
		t.Errorf("rejected recipient: got %v", err)
	}
	if status, _ := admin(t, "DELETE", base+"/rules/"+itoa(id), "", ""); status != 204 {
		t.Errorf("delete rule: %d", status)
	}
	if status, _ := admin(t, "DELETE", base+"/rules/"+itoa(id), "", ""); status != 404 {
		t.Errorf("delete it again: %d, want 404", status)
	}
	admin(t, "POST", base+"/rules", "", `{"status":500}`)
	if status, _ := admin(t, "DELETE", base+"/rules", "", ""); status != 204 || len(s.Rules()) != 0 {
		t.Errorf("clear rules: %d, %d left", status, len(s.Rules()))
	}
	if err := send(); err != nil {
		t.Errorf("after clearing: %v", err)
	}

	status, out = admin(t, "GET", base+"/calls?phone_number_id="+numberID, "", "")
	calls := out["calls"].([]any)
	if status != 200 || len(calls) != 2 || out["accepted"].(float64) != 2 || out["by_number"].(map[string]any)[numberID].(float64) != 2 {
		t.Errorf("calls: %d %v", status, out)
	}
	first := calls[0].(map[string]any)
	if first["recipient"] != "5511999990001" || !strings.HasPrefix(first["message_id"].(string), "wamid.") || first["body"] == nil {
		t.Errorf("call as JSON: %v", first)
	}
	if _, out = admin(t, "GET", base+"/calls?phone_number_id="+otherID, "", ""); len(out["calls"].([]any)) != 0 {
		t.Errorf("calls of another number: %v", out["calls"])
	}
	if _, out = admin(t, "GET", base+"/failures", "", ""); len(out["failures"].([]any)) != 2 {
		t.Errorf("failures: %v", out)
	}
	if status, _ := admin(t, "DELETE", base+"/calls", "", ""); status != 204 || s.Accepted() != 0 || len(s.Failures()) != 0 {
		t.Errorf("reset: %d, %d accepted left", status, s.Accepted())
	}
}

// TestAdminAPIRefusesBadInput: bad rules are refused with a JSON error and
// install nothing; unknown paths are 404.
func TestAdminAPIRefusesBadInput(t *testing.T) {
	s, hs, _ := newFake(t, Options{})
	base := hs.URL + "/_fake"
	tests := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/rules", `{`, 400, "bad_request"},
		{"POST", "/rules", `{"statuz":500}`, 400, "bad_request"},
		{"POST", "/rules", `{"delay":"soon"}`, 400, "bad_request"},
		{"POST", "/rules", `{"delay":100}`, 400, "bad_request"},
		{"POST", "/rules", `{}`, 422, "validation"},
		{"POST", "/rules", `{"status":200}`, 422, "validation"},
		{"POST", "/rules", `{"delay":"1h"}`, 422, "validation"},
		{"DELETE", "/rules/abc", ``, 404, "not_found"},
		{"GET", "/nothing", ``, 404, "not_found"},
		{"PUT", "/calls", ``, 404, "not_found"},
	}
	for _, tc := range tests {
		status, out := admin(t, tc.method, base+tc.path, "", tc.body)
		errObj, _ := out["error"].(map[string]any)
		if status != tc.status || errObj == nil || errObj["code"] != tc.code || errObj["message"] == "" {
			t.Errorf("%s %s %s: got %d %v, want %d %s", tc.method, tc.path, tc.body, status, out, tc.status, tc.code)
		}
	}
	if n := len(s.Rules()); n != 0 {
		t.Errorf("rules installed: %d", n)
	}
}

func TestAdminToken(t *testing.T) {
	s, hs, _ := newFake(t, Options{AdminToken: "adm"})
	for _, auth := range []string{"", "wrong", token} {
		if status, _ := admin(t, "POST", hs.URL+"/_fake/rules", auth, `{"status":500}`); status != 401 {
			t.Errorf("token %q: got %d, want 401", auth, status)
		}
	}
	if len(s.Rules()) != 0 {
		t.Error("unauthorised call installed a rule")
	}
	if status, _ := admin(t, "POST", hs.URL+"/_fake/rules", "adm", `{"status":500}`); status != 201 {
		t.Errorf("admin token: got %d, want 201", status)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
