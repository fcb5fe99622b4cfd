package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
)

// openStream opens an agent's event stream and hands over each event's data until it ends.
func openStream(t *testing.T, base, token string) <-chan string {
	t.Helper()
	return openAgentStream(t, base, token, "me")
}

// openAgentStream opens the event stream of the agent named in the path.
func openAgentStream(t *testing.T, base, token, agent string) <-chan string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/agents/"+agent+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open stream: %v %v", err, resp)
	}
	t.Cleanup(func() { resp.Body.Close() })
	events := make(chan string, 64)
	go func() {
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				close(events)
				return
			}
			if strings.HasPrefix(line, "data: ") {
				events <- strings.TrimSpace(line[6:])
			}
		}
	}()
	return events
}

// TestWebhookToCardOnTheAgentsStream drives the whole gateway like Meta and an agent would: the agent
// logs in and opens its event stream, a signed WhatsApp message arrives, the card is offered on the
// stream, the agent accepts it and reads the conversation.
func TestWebhookToCardOnTheAgentsStream(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	tg := startTestGateway(t, cfg, nil)
	ana, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ana", auth.RoleAgent, time.Hour, time.Now())
	bruno, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "bruno", auth.RoleAgent, time.Hour, time.Now())
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	events := openStream(t, tg.base, ana)

	body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi, tudo bem?"})
	hook, _ := http.NewRequest("POST", tg.base+"/webhooks/whatsapp", bytes.NewReader(body))
	hook.Header.Set("Content-Type", "application/json")
	hook.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, cfg.WhatsApp.AppSecret))
	hr, err := http.DefaultClient.Do(hook)
	if err != nil || hr.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, hr)
	}
	hr.Body.Close()

	var offered struct {
		Type string `json:"type"`
		Card struct {
			ID             string `json:"id"`
			ConversationID string `json:"conversation_id"`
			State          string `json:"state"`
			Contact        struct {
				Name string `json:"name"`
			} `json:"contact"`
		} `json:"card"`
	}
	deadline := time.After(5 * time.Second)
	for offered.Type != "card.offered" {
		select {
		case data, ok := <-events:
			if !ok {
				t.Fatal("stream closed")
			}
			_ = json.Unmarshal([]byte(data), &offered)
		case <-deadline:
			t.Fatal("no card.offered within 5s")
		}
	}
	if offered.Card.State != "offered" || offered.Card.Contact.Name != "Maria" {
		t.Fatalf("offered card: %+v", offered.Card)
	}
	cardURL := tg.base + "/v1/cards/" + offered.Card.ID
	for _, tc := range []struct {
		method, url, token string
		status             int
	}{
		{"POST", cardURL + "/accept", bruno, 403},                 // not offered to bruno
		{"POST", tg.base + "/v1/cards/NOPE/accept", ana, 404},     // unknown card
		{"POST", tg.base + "/v1/cards/..%2Fetc/accept", ana, 400}, // not an id
		{"POST", cardURL + "/close", ana, 409},                    // not accepted yet
		{"POST", cardURL + "/accept", ana, 200},                   //
		{"POST", cardURL + "/accept", ana, 409},                   // twice
		{"GET", tg.base + "/v1/conversations/" + offered.Card.ConversationID + "/messages", bruno, 403},
		{"GET", tg.base + "/v1/conversations/" + offered.Card.ConversationID + "/messages", ana, 200},
		{"GET", tg.base + "/v1/agents/me/cards", ana, 200},
		{"GET", tg.base + "/v1/queues", ana, 200},
	} {
		code, body := do(t, tc.method, tc.url, tc.token, nil)
		if code != tc.status {
			t.Errorf("%s %s: got %d %s, want %d", tc.method, tc.url, code, body, tc.status)
		}
		if strings.HasSuffix(tc.url, "/messages") && code == 200 && !strings.Contains(string(body), "Oi, tudo bem?") {
			t.Errorf("conversation messages lack the customer's text: %s", body)
		}
	}
	if code, body := do(t, "POST", cardURL+"/close", ana, nil); code != 200 || !strings.Contains(string(body), `"state":"closed"`) {
		t.Errorf("close: %d %s", code, body)
	}
}
