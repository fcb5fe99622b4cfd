package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestSimulateWebChatToReply drives the wired gateway: `chatgate simulate webchat` posts a signed
// WebChat webhook, the card reaches an agent online on WebChat, and the agent's reply through the
// reply endpoint goes out through the WebChat sender (status sent).
func TestSimulateWebChatToReply(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	tg := startTestGateway(t, cfg, nil)
	carla, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "carla", auth.RoleAgent, time.Hour, time.Now())
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/webchat", carla, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	events := openStream(t, tg.base, carla)

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "webchat", "--url", tg.base, "--site", "shop", "--visitor", "v-1", "--text", "Oi do site"}, &out, &errOut); code != exitOK {
		t.Fatalf("simulate webchat: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	var offered struct {
		Type string `json:"type"`
		Card struct {
			ID             string `json:"id"`
			ConversationID string `json:"conversation_id"`
			Channel        string `json:"channel"`
		} `json:"card"`
	}
	deadline := time.After(10 * time.Second)
	for offered.Type != "card.offered" {
		select {
		case data, ok := <-events:
			if !ok {
				t.Fatal("stream closed")
			}
			_ = json.Unmarshal([]byte(data), &offered)
		case <-deadline:
			t.Fatal("no card.offered within 10s")
		}
	}
	if offered.Card.Channel != "webchat" {
		t.Fatalf("card: %+v", offered.Card)
	}
	if code, body := do(t, "POST", tg.base+"/v1/cards/"+offered.Card.ID+"/accept", carla, nil); code != 200 {
		t.Fatalf("accept: %d %s", code, body)
	}
	code, body := do(t, "POST", tg.base+"/v1/conversations/"+offered.Card.ConversationID+"/messages", carla, strings.NewReader(`{"text":"Olá!"}`))
	if code != 202 {
		t.Fatalf("reply: %d %s", code, body)
	}
	testutil.Eventually(t, 10*time.Second, "the WebChat reply's status sent", func() bool {
		_, body := do(t, "GET", tg.base+"/v1/conversations/"+offered.Card.ConversationID+"/messages", carla, nil)
		return strings.Contains(string(body), `"status":"sent"`)
	})
	for _, path := range []string{"/webchat/widget.js", "/webchat/demo"} {
		if code, _ := do(t, "GET", tg.base+path, "", nil); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
	}
}
