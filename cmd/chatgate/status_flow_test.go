package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

// outboundGateway starts a gateway whose workers send to a fake Cloud API, with ana online on
// WhatsApp and her event stream open.
func outboundGateway(t *testing.T) (cfg configs.Config, tg *testGateway, ana string, events <-chan string) {
	t.Helper()
	cfg = exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	fake := fakeapi.New(fakeapi.Options{Numbers: map[string]string{"100200300": cfg.WhatsApp.Numbers[0].AccessToken}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	cfg.WhatsApp.APIBaseURL = fake.URL()
	tg = startTestGateway(t, cfg, nil)
	ana, _ = auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ana", auth.RoleAgent, time.Hour, time.Now())
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	return cfg, tg, ana, openAgentStream(t, tg.base, ana, "ana")
}

// replySent sends a reply and returns the sent status event, which carries the provider's id.
func replySent(t *testing.T, tg *testGateway, token, conversationID, text string, events <-chan string) streamEvent {
	t.Helper()
	code, raw := do(t, "POST", tg.base+"/v1/conversations/"+conversationID+"/messages", token, strings.NewReader(`{"text":"`+text+`"}`))
	if code != 202 {
		t.Fatalf("reply: %d %s", code, raw)
	}
	var reply struct {
		MessageID string `json:"message_id"`
	}
	json.Unmarshal(raw, &reply)
	ev := waitEvent(t, events, "the reply's sent status", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == reply.MessageID && e.Message.Status == "sent"
	})
	if ev.Message.ProviderMessageID == "" {
		t.Fatalf("sent without a provider id: %+v", ev)
	}
	return ev
}

func postSigned(t *testing.T, base string, cfg configs.Config, body []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, cfg.WhatsApp.AppSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
}

// Delivered, read and failed (with the provider's reason) come from signed status webhooks and
// reach the agent's event stream as message.status events.
func TestStatusWebhooksReachTheAgentsStream(t *testing.T) {
	cfg, tg, ana, events := outboundGateway(t)
	postSigned(t, tg.base, cfg, simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300",
		From: "+5511999990001", Name: "Maria", Text: "Oi"}))
	offered := waitEvent(t, events, "card.offered", func(e streamEvent) bool { return e.Type == "card.offered" })
	if code, body := do(t, "POST", tg.base+"/v1/cards/"+offered.Card.ID+"/accept", ana, nil); code != 200 {
		t.Fatalf("accept: %d %s", code, body)
	}
	first := replySent(t, tg, ana, offered.Card.ConversationID, "Olá", events)
	second := replySent(t, tg, ana, offered.Card.ConversationID, "Tudo bem?", events)

	status := func(wamid, state string, code int, title string) {
		postSigned(t, tg.base, cfg, simulate.WhatsAppStatusNotification(simulate.WhatsAppStatus{PhoneNumberID: "100200300",
			MessageID: wamid, Status: state, RecipientID: "+5511999990001", ErrorCode: code, ErrorTitle: title, At: time.Now()}))
	}
	status(first.Message.ProviderMessageID, "delivered", 0, "")
	waitEvent(t, events, "delivered", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == first.Message.ID && e.Message.Status == "delivered"
	})
	status(first.Message.ProviderMessageID, "read", 0, "")
	waitEvent(t, events, "read", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == first.Message.ID && e.Message.Status == "read"
	})
	status(second.Message.ProviderMessageID, "failed", 131049, "Message not delivered to maintain healthy ecosystem engagement")
	failed := waitEvent(t, events, "failed", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == second.Message.ID && e.Message.Status == "failed"
	})
	if failed.Message.Error == nil || failed.Message.Error.Code != 131049 ||
		failed.Message.Error.Title != "Message not delivered to maintain healthy ecosystem engagement" {
		t.Fatalf("failed without the provider's reason: %+v", failed.Message.Error)
	}
}

// `chatgate simulate whatsapp` with --text, --image and --status, run as the command line runs it,
// against a gateway: a card, an image message and a status reach the agent.
func TestSimulateWhatsAppThroughRun(t *testing.T) {
	_, tg, ana, events := outboundGateway(t)
	configFile := filepath.Join(t.TempDir(), "chatgate.yaml")
	if err := os.WriteFile(configFile, configs.Example, 0o600); err != nil {
		t.Fatal(err)
	}
	simulateCmd := func(args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append([]string{"simulate", "whatsapp", "--url", tg.base, "--config", configFile, "--from", "+5511999990007"}, args...)
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s %s", args, code, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "→ 200") {
			t.Fatalf("%v: %s", args, stdout.String())
		}
	}

	simulateCmd("--text", "Oi do simulador", "--name", "Rita")
	offered := waitEvent(t, events, "card.offered", func(e streamEvent) bool { return e.Type == "card.offered" })
	if code, body := do(t, "POST", tg.base+"/v1/cards/"+offered.Card.ID+"/accept", ana, nil); code != 200 {
		t.Fatalf("accept: %d %s", code, body)
	}
	_, raw := do(t, "GET", tg.base+"/v1/conversations/"+offered.Card.ConversationID+"/messages", ana, nil)
	if !strings.Contains(string(raw), `"Oi do simulador"`) || !strings.Contains(string(raw), `"Rita"`) {
		t.Fatalf("conversation: %s", raw)
	}

	simulateCmd("--image", "media-4711", "--text", "a foto")
	img := waitEvent(t, events, "the image message", func(e streamEvent) bool { return e.Type == "message.received" })
	if img.Message.Kind != "image" || img.Message.ConversationID != offered.Card.ConversationID {
		t.Fatalf("image message: %+v", img.Message)
	}

	sent := replySent(t, tg, ana, offered.Card.ConversationID, "Recebi", events)
	simulateCmd("--status", "read", "--message-id", sent.Message.ProviderMessageID)
	waitEvent(t, events, "read", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == sent.Message.ID && e.Message.Status == "read"
	})
	simulateCmd("--status", "failed", "--message-id", replySent(t, tg, ana, offered.Card.ConversationID, "Mais?", events).Message.ProviderMessageID)
	failed := waitEvent(t, events, "failed", func(e streamEvent) bool { return e.Type == "message.status" && e.Message.Status == "failed" })
	if failed.Message.Error == nil || failed.Message.Error.Code != 131026 {
		t.Fatalf("failed status: %+v", failed.Message)
	}
}
