package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
	"github.com/chatgate/chatgate/routing"
)

type streamEvent struct {
	Type string `json:"type"`
	Card struct {
		ID             string `json:"id"`
		ConversationID string `json:"conversation_id"`
	} `json:"card"`
	Message struct {
		ID                string                `json:"id"`
		ConversationID    string                `json:"conversation_id"`
		Kind              string                `json:"kind"`
		Text              string                `json:"text"`
		Status            string                `json:"status"`
		ProviderMessageID string                `json:"provider_message_id"`
		Error             *routing.MessageError `json:"error"`
	} `json:"message"`
}

// waitEvent reads the stream until an event satisfies match.
func waitEvent(t *testing.T, events <-chan string, what string, match func(streamEvent) bool) streamEvent {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case data, ok := <-events:
			if !ok {
				t.Fatalf("stream closed before %s", what)
			}
			var ev streamEvent
			if json.Unmarshal([]byte(data), &ev) == nil && match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within 15s", what)
		}
	}
}

// TestAgentRepliesAndStartsConversationsThroughTheGateway drives the outbound path end to end: a
// customer writes, the agent accepts and replies, then starts a new conversation with a template;
// the gateway's own workers send both to the (fake) Cloud API and the agent's stream reports them sent.
func TestAgentRepliesAndStartsConversationsThroughTheGateway(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	fake := fakeapi.New(fakeapi.Options{Numbers: map[string]string{"100200300": cfg.WhatsApp.Numbers[0].AccessToken}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	cfg.WhatsApp.APIBaseURL = fake.URL()
	tg := startTestGateway(t, cfg, nil)
	ana, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ana", auth.RoleAgent, time.Hour, time.Now())

	if code, body := do(t, "GET", tg.base+"/v1/templates", ana, nil); code != 200 || !strings.Contains(string(body), `"name":"order_update"`) {
		t.Fatalf("templates: %d %s", code, body)
	}
	if code, body := do(t, "POST", tg.base+"/v1/conversations", ana, strings.NewReader(`{"channel":"whatsapp","to":"+5511999990002",
	  "template":{"name":"welcome","language":"en_US","body_params":["Ana"]}}`)); code != 409 || errorCode(t, body) != "whatsapp_not_logged_in" {
		t.Fatalf("start while offline: %d %s", code, body)
	}
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	events := openStream(t, tg.base, ana)

	body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi"})
	hook, _ := http.NewRequest("POST", tg.base+"/webhooks/whatsapp", bytes.NewReader(body))
	hook.Header.Set("Content-Type", "application/json")
	hook.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, cfg.WhatsApp.AppSecret))
	if hr, err := http.DefaultClient.Do(hook); err != nil || hr.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, hr)
	} else {
		hr.Body.Close()
	}
	offered := waitEvent(t, events, "card.offered", func(e streamEvent) bool { return e.Type == "card.offered" })
	if code, body := do(t, "POST", tg.base+"/v1/cards/"+offered.Card.ID+"/accept", ana, nil); code != 200 {
		t.Fatalf("accept: %d %s", code, body)
	}

	code, raw := do(t, "POST", tg.base+"/v1/conversations/"+offered.Card.ConversationID+"/messages", ana, strings.NewReader(`{"text":"Olá Maria!"}`))
	if code != 202 {
		t.Fatalf("reply: %d %s", code, raw)
	}
	var reply struct {
		MessageID string `json:"message_id"`
	}
	json.Unmarshal(raw, &reply)
	waitEvent(t, events, "the reply's sent status", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == reply.MessageID && e.Message.Status == "sent"
	})

	code, raw = do(t, "POST", tg.base+"/v1/conversations", ana, strings.NewReader(`{"channel":"whatsapp","to":"+5511999990002",
	  "template":{"name":"welcome","language":"en_US","body_params":["Ana"]}}`))
	if code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	var started struct {
		MessageID string `json:"message_id"`
	}
	json.Unmarshal(raw, &started)
	waitEvent(t, events, "the template's sent status", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == started.MessageID && e.Message.Status == "sent"
	})

	calls := fake.Calls()
	if len(calls) != 2 || calls[0].Type != "text" || calls[0].Recipient != "5511999990001" ||
		calls[1].Type != "template" || calls[1].Template != "welcome" || calls[1].Recipient != "5511999990002" {
		t.Fatalf("provider calls: %+v", calls)
	}
}
