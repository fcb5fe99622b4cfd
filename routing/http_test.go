package routing

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/presence"
)

const httpSecret = "routing-http-test-secret"

// call sends one authenticated request to the routing API as the agent and decodes the JSON answer.
func (e *env) call(t *testing.T, method, path, agent string, role auth.Role, out any) int {
	t.Helper()
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	NewHandler(e.router).Register(app.Group("/v1", auth.NewVerifier(httpSecret, "", "chatgate").Middleware()))
	tok, err := auth.Mint(httpSecret, "chatgate", agent, role, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := app.Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, body, err)
		}
	}
	return resp.StatusCode
}

type errorBody struct {
	Error struct {
		Code string `json:"code"`
	} `json:"error"`
}

func TestDeclineOverHTTP(t *testing.T) {
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.clock.Advance(time.Second)
	e.set(t, "bob", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "c1", "hello")
	card := e.cards(t, "ana")[0]

	// Someone else cannot decline ana's offer; nothing changes.
	var eb errorBody
	if code := e.call(t, "POST", "/v1/cards/"+card.ID+"/decline", "bob", auth.RoleAgent, &eb); code != http.StatusForbidden || eb.Error.Code != "not_your_card" {
		t.Fatalf("bob declining ana's card: %d %+v", code, eb)
	}
	if cs := e.cards(t, "ana"); len(cs) != 1 || cs[0].State != CardOffered {
		t.Fatalf("a refused decline changed the card: %+v", cs)
	}
	eb = errorBody{}
	if code := e.call(t, "POST", "/v1/cards/bad%3Bid/decline", "ana", auth.RoleAgent, &eb); code != http.StatusBadRequest || eb.Error.Code != "invalid_id" {
		t.Fatalf("bad id: %d %+v", code, eb)
	}
	eb = errorBody{}
	if code := e.call(t, "POST", "/v1/cards/01UNKNOWN/decline", "ana", auth.RoleAgent, &eb); code != http.StatusNotFound || eb.Error.Code != "card_not_found" {
		t.Fatalf("unknown card: %d %+v", code, eb)
	}

	var got Card
	if code := e.call(t, "POST", "/v1/cards/"+card.ID+"/decline", "ana", auth.RoleAgent, &got); code != http.StatusOK {
		t.Fatalf("decline: %d", code)
	}
	if got.ID != card.ID || got.State != CardOffered || got.Agent != "bob" || got.LastOutcome != "declined" {
		t.Fatalf("decline answered %+v, want the card offered to bob, last_outcome declined", got)
	}
	if n := len(e.cards(t, "ana")); n != 0 {
		t.Fatalf("ana still holds %d cards", n)
	}
	// Declining again is refused: the card is bob's now.
	eb = errorBody{}
	if code := e.call(t, "POST", "/v1/cards/"+card.ID+"/decline", "ana", auth.RoleAgent, &eb); code != http.StatusForbidden {
		t.Fatalf("second decline by ana: %d %+v", code, eb)
	}
	// bob declines too: nobody left but ana, who refused it; the card waits instead of going back to her.
	got = Card{}
	if code := e.call(t, "POST", "/v1/cards/"+card.ID+"/decline", "bob", auth.RoleAgent, &got); code != http.StatusOK {
		t.Fatalf("bob's decline: %d", code)
	}
	if got.State != CardWaiting || got.Agent != "" || len(e.cards(t, "ana")) != 0 || e.waiting(t, "sales", "whatsapp") != 1 {
		t.Fatalf("after both declined: %+v, ana holds %d", got, len(e.cards(t, "ana")))
	}
	if e.pub.count("ana", EventCardOffered) != 1 {
		t.Errorf("ana was offered the card %d times, want once", e.pub.count("ana", EventCardOffered))
	}
	// Each decline is on the decliner's own stream (its other tabs drop the card); refused ones are not.
	if a, b := e.pub.count("ana", EventCardDeclined), e.pub.count("bob", EventCardDeclined); a != 1 || b != 1 {
		t.Errorf("card.declined: ana %d, bob %d; want one each", a, b)
	}
}

func TestQueuesOverHTTP(t *testing.T) {
	e := newEnv(t, "longest_idle")
	e.router.entries["webchat:shop2"] = "sales"
	// sales/whatsapp: ana online and full (capacity 2), bob paused, one card waits 90 s.
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.set(t, "bob", "whatsapp", presence.Online, "")
	e.set(t, "bob", "whatsapp", presence.Paused, "lunch")
	e.customer(t, "whatsapp", "100", "c1", "1")
	e.customer(t, "whatsapp", "100", "c2", "2")
	e.customer(t, "whatsapp", "100", "c3", "3") // waits
	e.clock.Advance(30 * time.Second)
	e.customer(t, "whatsapp", "100", "c4", "4") // waits, younger
	e.clock.Advance(60 * time.Second)
	// support/webchat: cat online with room; nothing waits.
	e.set(t, "cat", "webchat", presence.Online, "")

	var out struct {
		Queues []QueueStatus `json:"queues"`
	}
	if code := e.call(t, "GET", "/v1/queues", "ana", auth.RoleAgent, &out); code != http.StatusOK {
		t.Fatalf("GET /v1/queues: %d", code)
	}
	got := map[string]ChannelStatus{}
	for _, q := range out.Queues {
		for _, c := range q.Channels {
			got[q.ID+"/"+c.Channel] = c
		}
	}
	want := map[string]ChannelStatus{
		// ana online but full: online 1, available 0; bob (paused on the sales group) counted as paused.
		"sales/whatsapp":  {Channel: "whatsapp", Waiting: 2, OldestWaitSeconds: 90, AgentsAvailable: 0, AgentsOnline: 1, AgentsPaused: 1},
		"sales/webchat":   {Channel: "webchat"}, // nobody logged in there
		"support/webchat": {Channel: "webchat", Waiting: 0, AgentsAvailable: 1, AgentsOnline: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("queues: %+v", out.Queues)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %+v, want %+v", k, got[k], w)
		}
	}
}
