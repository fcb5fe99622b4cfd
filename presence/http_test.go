package presence

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/redisx"
	"github.com/chatgate/chatgate/internal/topology"
)

const testSecret = "presence-test-secret"

func newTestAPI(t testing.TB, s *Store) *fiber.App {
	t.Helper()
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
		Unavailable: redisx.IsUnavailable, BodyLimit: 1 << 16})
	v1 := app.Group("/v1", auth.NewVerifier(testSecret, "", "chatgate").Middleware())
	NewHandler(s, topology.New(testConfig())).Register(v1)
	return app
}

func token(t testing.TB, agent string, role auth.Role, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, "chatgate", agent, role, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func call(t testing.TB, app *fiber.App, method, path, tok, ctype, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func code(body map[string]any) string {
	if e, ok := body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func TestToggleOverHTTP(t *testing.T) {
	s := newTestStore(t, redistest.Client(t), clock.Real{})
	app := newTestAPI(t, s)
	ana := token(t, "ana", auth.RoleAgent, time.Hour)
	status, body := call(t, app, "PUT", "/v1/agents/me/channels/whatsapp", ana, "application/json", `{"state":"online"}`)
	if status != 200 {
		t.Fatalf("login: got %d %v", status, body)
	}
	p := body["presence"].(map[string]any)
	if p["status"] != "online" || p["logged"] != 1.0 || p["enabled"] != 2.0 || p["can_start_conversation"] != true {
		t.Errorf("presence after login: %v", p)
	}
	status, body = call(t, app, "PUT", "/v1/agents/ana/channels/whatsapp", ana, "application/json", `{"state":"online"}`)
	if status != 200 || len(body["changes"].([]any)) != 0 {
		t.Errorf("repeated login: got %d with changes %v, want 200 and none", status, body["changes"])
	}
	call(t, app, "PUT", "/v1/agents/me/channels/webchat", ana, "application/json", `{"state":"online"}`)
	status, body = call(t, app, "PUT", "/v1/agents/me/channels/webchat", ana, "application/json", `{"state":"paused","reason":"lunch"}`)
	if status != 200 || len(body["changes"].([]any)) != 2 {
		t.Errorf("pause webchat in a shared queue: got %d %v, want both channels paused", status, body["changes"])
	}
	status, body = call(t, app, "GET", "/v1/agents/me/presence", ana, "", "")
	if status != 200 || body["status"] != "paused" {
		t.Errorf("GET presence: got %d %v", status, body)
	}
	status, body = call(t, app, "GET", "/v1/pause-reasons", ana, "", "")
	if status != 200 || len(body["pause_reasons"].([]any)) != 3 {
		t.Errorf("pause reasons: got %d %v", status, body)
	} else if first := body["pause_reasons"].([]any)[0].(map[string]any); first["id"] == nil || first["label"] == nil {
		t.Errorf("pause reasons are not {id, label}: %v", first)
	}
	sup := token(t, "sue", auth.RoleSupervisor, time.Hour)
	if status, body = call(t, app, "GET", "/v1/agents", sup, "", ""); status != 200 || len(body["agents"].([]any)) != 3 {
		t.Errorf("supervisor list: got %d %v", status, body)
	}
	if status, body = call(t, app, "PUT", "/v1/agents/ana/channels/whatsapp", sup, "application/json", `{"state":"online"}`); status != 200 {
		t.Errorf("supervisor resume: got %d %v", status, body)
	}
	if status, body = call(t, app, "GET", "/v1/agents/ana/presence/history", sup, "", ""); status != 200 || len(body["changes"].([]any)) != 6 {
		t.Errorf("history: got %d %v, want 6 changes", status, body)
	}
	if status, _ = call(t, app, "POST", "/v1/agents/me/heartbeat", ana, "", ""); status != 204 {
		t.Errorf("heartbeat: got %d, want 204", status)
	}
}

// TestBadInputChangesNothing: every bad request gets its status and code, and the stored presence
// is exactly what it was before.
func TestBadInputChangesNothing(t *testing.T) {
	client := redistest.Client(t)
	s := newTestStore(t, client, clock.Real{})
	app := newTestAPI(t, s)
	ana := token(t, "ana", auth.RoleAgent, time.Hour)
	call(t, app, "PUT", "/v1/agents/me/channels/whatsapp", ana, "application/json", `{"state":"online"}`)
	sam := token(t, "sam", auth.RoleAgent, time.Hour)
	sup := token(t, "sue", auth.RoleSupervisor, time.Hour)
	expired := token(t, "ana", auth.RoleAgent, -time.Minute)
	forged, _ := auth.Mint("another-secret", "chatgate", "ana", auth.RoleAgent, time.Hour, time.Now())
	json := "application/json"
	for _, tc := range []struct {
		name, method, path, tok, ctype, body string
		status                               int
		code                                 string
	}{
		{"unknown agent", "PUT", "/v1/agents/zed/channels/whatsapp", sup, json, `{"state":"offline"}`, 404, "agent_not_found"},
		{"channel not enabled", "PUT", "/v1/agents/me/channels/sms", ana, json, `{"state":"online"}`, 403, "channel_not_enabled"},
		{"pause without reason", "PUT", "/v1/agents/me/channels/whatsapp", ana, json, `{"state":"paused"}`, 422, "invalid_reason"},
		{"pause with unknown reason", "PUT", "/v1/agents/me/channels/whatsapp", ana, json, `{"state":"paused","reason":"nap"}`, 422, "invalid_reason"},
		{"pause an offline channel", "PUT", "/v1/agents/me/channels/webchat", ana, json, `{"state":"paused","reason":"lunch"}`, 409, "channel_offline"},
		{"malformed JSON", "PUT", "/v1/agents/me/channels/whatsapp", ana, json, `{"state":`, 400, "invalid_json"},
		{"unknown state", "PUT", "/v1/agents/me/channels/whatsapp", ana, json, `{"state":"asleep"}`, 400, "invalid_state"},
		{"wrong content type", "PUT", "/v1/agents/me/channels/whatsapp", ana, "text/plain", `{"state":"offline"}`, 415, "unsupported_media_type"},
		{"no token", "PUT", "/v1/agents/me/channels/whatsapp", "", json, `{"state":"offline"}`, 401, "invalid_token"},
		{"expired token", "PUT", "/v1/agents/me/channels/whatsapp", expired, json, `{"state":"offline"}`, 401, "invalid_token"},
		{"token signed elsewhere", "PUT", "/v1/agents/me/channels/whatsapp", forged, json, `{"state":"offline"}`, 401, "invalid_token"},
		{"another agent without the role", "PUT", "/v1/agents/ana/channels/whatsapp", sam, json, `{"state":"offline"}`, 403, "forbidden"},
		{"another agent's presence", "GET", "/v1/agents/ana/presence", sam, "", "", 403, "forbidden"},
		{"supervisor resuming an offline channel", "PUT", "/v1/agents/ana/channels/webchat", sup, json, `{"state":"online"}`, 409, "channel_offline"},
		{"agent list without the role", "GET", "/v1/agents", ana, "", "", 403, "role_required"},
		{"bad totals day", "GET", "/v1/agents/me/presence/totals?day=yesterday", ana, "", "", 400, "invalid_day"},
		{"empty body", "PUT", "/v1/agents/me/channels/whatsapp", ana, json, ``, 400, "invalid_json"},
		{"no state", "PUT", "/v1/agents/me/channels/whatsapp", ana, json, `{}`, 400, "invalid_state"},
		{"state of the wrong type", "PUT", "/v1/agents/me/channels/whatsapp", ana, json, `{"state":1}`, 400, "invalid_json"},
		{"two JSON values", "PUT", "/v1/agents/me/channels/whatsapp", ana, json, `{"state":"offline"}{}`, 400, "invalid_json"},
		{"state in capitals", "PUT", "/v1/agents/me/channels/whatsapp", ana, json, `{"state":"OFFLINE"}`, 400, "invalid_state"},
		{"supervisor pause without reason", "PUT", "/v1/agents/ana/channels/whatsapp", sup, json, `{"state":"paused"}`, 422, "invalid_reason"},
		{"supervisor pause of an offline channel", "PUT", "/v1/agents/ana/channels/webchat", sup, json, `{"state":"paused","reason":"lunch"}`, 409, "channel_offline"},
		{"supervisor toggling an unknown agent", "PUT", "/v1/agents/zed/channels/whatsapp", sup, json, `{"state":"paused","reason":"lunch"}`, 404, "agent_not_found"},
		{"unknown agent's presence", "GET", "/v1/agents/zed/presence", sup, "", "", 404, "agent_not_found"},
		{"token of an unconfigured agent", "PUT", "/v1/agents/me/channels/whatsapp", token(t, "zed", auth.RoleAgent, time.Hour), json, `{"state":"online"}`, 404, "agent_not_found"},
		{"another agent's heartbeat", "POST", "/v1/agents/ana/heartbeat", sam, "", "", 403, "forbidden"},
		{"unknown agent's heartbeat", "POST", "/v1/agents/zed/heartbeat", sup, "", "", 404, "agent_not_found"},
		{"another agent's history", "GET", "/v1/agents/ana/presence/history", sam, "", "", 403, "forbidden"},
		{"history from after to", "GET", "/v1/agents/me/presence/history?from=2026-11-25T10:00:00Z&to=2026-11-25T09:00:00Z", ana, "", "", 400, "invalid_range"},
		{"history from not RFC 3339", "GET", "/v1/agents/me/presence/history?from=today", ana, "", "", 400, "invalid_range"},
	} {
		before := redistest.Snapshot(t, client)
		status, body := call(t, app, tc.method, tc.path, tc.tok, tc.ctype, tc.body)
		if status != tc.status || code(body) != tc.code {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, status, code(body), tc.status, tc.code)
		}
		if after := redistest.Snapshot(t, client); after != before {
			t.Errorf("%s changed the store:\nbefore %s\nafter  %s", tc.name, before, after)
		}
	}
}

// TestSupervisorOverHTTP: a supervisor pauses, resumes and logs out another agent, each recorded with
// the supervisor's id; the agent's own history and totals are readable by both.
func TestSupervisorOverHTTP(t *testing.T) {
	s := newTestStore(t, redistest.Client(t), clock.Real{})
	app := newTestAPI(t, s)
	ana := token(t, "ana", auth.RoleAgent, time.Hour)
	sup := token(t, "sue", auth.RoleSupervisor, time.Hour)
	const json = "application/json"
	for _, step := range []struct {
		name, tok, channel, body string
		changes                  int
		status                   string
	}{
		{"ana logs in to whatsapp", ana, "whatsapp", `{"state":"online"}`, 1, "online"},
		{"ana logs in to webchat", ana, "webchat", `{"state":"online"}`, 1, "online"},
		{"sue pauses ana's group", sup, "whatsapp", `{"state":"paused","reason":"training"}`, 2, "paused"},
		{"sue pauses again", sup, "webchat", `{"state":"paused","reason":"training"}`, 0, "paused"},
		{"sue resumes ana", sup, "webchat", `{"state":"online"}`, 2, "online"},
		{"sue logs ana out of whatsapp", sup, "whatsapp", `{"state":"offline"}`, 1, "online"},
		{"sue logs ana out of webchat", sup, "webchat", `{"state":"offline"}`, 1, "offline"},
	} {
		status, body := call(t, app, "PUT", "/v1/agents/ana/channels/"+step.channel, step.tok, json, step.body)
		if status != 200 {
			t.Fatalf("%s: got %d %v", step.name, status, body)
		}
		changes, _ := body["changes"].([]any)
		presence, _ := body["presence"].(map[string]any)
		if len(changes) != step.changes || presence["status"] != step.status {
			t.Errorf("%s: got %d changes and status %v, want %d and %s", step.name, len(changes), presence["status"], step.changes, step.status)
		}
	}
	for _, tok := range []string{ana, sup} {
		status, body := call(t, app, "GET", "/v1/agents/ana/presence/history", tok, "", "")
		changes, _ := body["changes"].([]any)
		if status != 200 || len(changes) != 8 {
			t.Fatalf("history: got %d with %d changes, want 200 with 8", status, len(changes))
		}
		bySue := 0
		for _, c := range changes {
			if c.(map[string]any)["by"] == "sue" {
				bySue++
			}
		}
		if bySue != 6 {
			t.Errorf("history entries by sue: got %d, want 6", bySue)
		}
		status, body = call(t, app, "GET", "/v1/agents/ana/presence/totals", tok, "", "")
		channels, _ := body["channels"].(map[string]any)
		if _, ok := channels["whatsapp"]; status != 200 || !ok {
			t.Errorf("totals: got %d %v", status, body)
		}
	}
}

// sinceOf reads a channel's since from a presence body.
func sinceOf(t *testing.T, presence any, channel string) string {
	t.Helper()
	p, _ := presence.(map[string]any)
	chans, _ := p["channels"].([]any)
	for _, c := range chans {
		if m := c.(map[string]any); m["channel"] == channel {
			s, _ := m["since"].(string)
			return s
		}
	}
	t.Fatalf("no channel %s in %v", channel, presence)
	return ""
}

func historyLen(t *testing.T, app *fiber.App, tok string) int {
	t.Helper()
	status, body := call(t, app, "GET", "/v1/agents/ana/presence/history", tok, "", "")
	changes, ok := body["changes"].([]any)
	if status != 200 || !ok {
		t.Fatalf("history: got %d %v", status, body)
	}
	return len(changes)
}

// TestSameStateTwiceOverHTTP: repeating a login or a pause (same reason) minutes later is a 200 with
// no changes; since stays at the first transition and the history does not grow.
func TestSameStateTwiceOverHTTP(t *testing.T) {
	clk := clock.NewFake(t0)
	s := newTestStore(t, redistest.Client(t), clk)
	app := newTestAPI(t, s)
	ana := token(t, "ana", auth.RoleAgent, time.Hour)
	const json = "application/json"
	for _, step := range []struct{ name, body, since string }{
		{"login", `{"state":"online"}`, t0.Format(time.RFC3339)},
		{"pause", `{"state":"paused","reason":"lunch"}`, t0.Add(10 * time.Minute).Format(time.RFC3339)},
	} {
		status, body := call(t, app, "PUT", "/v1/agents/me/channels/whatsapp", ana, json, step.body)
		if status != 200 || len(body["changes"].([]any)) == 0 || sinceOf(t, body["presence"], "whatsapp") != step.since {
			t.Fatalf("%s: got %d %v, want a change since %s", step.name, status, body, step.since)
		}
		hist := historyLen(t, app, ana)
		clk.Advance(5 * time.Minute)
		status, body = call(t, app, "PUT", "/v1/agents/me/channels/whatsapp", ana, json, step.body)
		if status != 200 || len(body["changes"].([]any)) != 0 {
			t.Errorf("%s again: got %d %v, want 200 with no changes", step.name, status, body["changes"])
		}
		if got := sinceOf(t, body["presence"], "whatsapp"); got != step.since {
			t.Errorf("%s again: since %s, want unchanged %s", step.name, got, step.since)
		}
		_, body = call(t, app, "GET", "/v1/agents/me/presence", ana, "", "")
		if got := sinceOf(t, body, "whatsapp"); got != step.since {
			t.Errorf("%s again: GET presence since %s, want unchanged %s", step.name, got, step.since)
		}
		if got := historyLen(t, app, ana); got != hist {
			t.Errorf("%s again: history has %d entries, want %d (no second transition)", step.name, got, hist)
		}
		clk.Advance(5 * time.Minute)
	}
}

// TestHeartbeatOverHTTPKeepsTheReaperAway: with a one-minute grace, an agent whose client posts a
// heartbeat is not logged out 70 s after login; once it stays silent past the grace, it is.
func TestHeartbeatOverHTTPKeepsTheReaperAway(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(t0)
	s := newTestStore(t, redistest.Client(t), clk)
	app := newTestAPI(t, s)
	reaper := NewReaper(s, time.Second, time.Minute)
	ana := token(t, "ana", auth.RoleAgent, time.Hour)
	if status, body := call(t, app, "PUT", "/v1/agents/me/channels/whatsapp", ana, "application/json", `{"state":"online"}`); status != 200 {
		t.Fatalf("login: got %d %v", status, body)
	}
	clk.Advance(50 * time.Second)
	if status, _ := call(t, app, "POST", "/v1/agents/me/heartbeat", ana, "", ""); status != 204 {
		t.Fatalf("heartbeat: got %d, want 204", status)
	}
	clk.Advance(20 * time.Second) // 70 s after login, 20 s after the heartbeat
	if n, err := reaper.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep after a heartbeat: got %d, %v; want nobody logged out", n, err)
	}
	if _, body := call(t, app, "GET", "/v1/agents/me/presence", ana, "", ""); body["status"] != "online" {
		t.Errorf("after the sweep: status %v, want online", body["status"])
	}
	clk.Advance(41 * time.Second) // 61 s since the heartbeat
	if n, err := reaper.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after 61 s of silence: got %d, %v; want ana logged out", n, err)
	}
	if _, body := call(t, app, "GET", "/v1/agents/me/presence", ana, "", ""); body["status"] != "offline" {
		t.Errorf("after the silence: status %v, want offline", body["status"])
	}
}

// TestResumeOfAnOfflineChannel: a supervisor's resume (online) of an offline channel is 409
// channel_offline and stores nothing; the same on a paused channel resumes it; the agent's own
// online on an offline channel is its login.
func TestResumeOfAnOfflineChannel(t *testing.T) {
	client := redistest.Client(t)
	s := newTestStore(t, client, clock.NewFake(t0))
	app := newTestAPI(t, s)
	sam := token(t, "sam", auth.RoleAgent, time.Hour)
	sup := token(t, "sue", auth.RoleSupervisor, time.Hour)
	const json = "application/json"
	before := redistest.Snapshot(t, client)
	if status, body := call(t, app, "PUT", "/v1/agents/sam/channels/whatsapp", sup, json, `{"state":"online"}`); status != 409 || code(body) != "channel_offline" {
		t.Errorf("supervisor resume of an offline channel: got %d %v, want 409 channel_offline", status, body)
	}
	if redistest.Snapshot(t, client) != before {
		t.Errorf("the refused resume changed the store")
	}
	call(t, app, "PUT", "/v1/agents/me/channels/whatsapp", sam, json, `{"state":"online"}`)
	call(t, app, "PUT", "/v1/agents/sam/channels/whatsapp", sup, json, `{"state":"paused","reason":"training"}`)
	status, body := call(t, app, "PUT", "/v1/agents/sam/channels/whatsapp", sup, json, `{"state":"online"}`)
	if status != 200 || body["presence"].(map[string]any)["status"] != "online" {
		t.Errorf("supervisor resume of a paused channel: got %d %v, want 200 online", status, body)
	}
	status, body = call(t, app, "PUT", "/v1/agents/me/channels/webchat", sam, json, `{"state":"online"}`)
	if status != 200 || len(body["changes"].([]any)) != 1 {
		t.Errorf("the agent's own online on an offline channel: got %d %v, want its login", status, body)
	}
}
