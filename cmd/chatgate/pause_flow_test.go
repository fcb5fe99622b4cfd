package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
)

// presenceOf reads an agent's channel states over HTTP.
func presenceOf(t *testing.T, base, token string) map[string]string {
	t.Helper()
	code, raw := do(t, "GET", base+"/v1/agents/me/presence", token, nil)
	if code != 200 {
		t.Fatalf("presence: %d %s", code, raw)
	}
	var p struct {
		Channels []struct {
			Channel string `json:"channel"`
			State   string `json:"state"`
		} `json:"channels"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range p.Channels {
		out[c.Channel] = c.State
	}
	return out
}

// waitingIn reads a queue's waiting count on a channel from GET /v1/queues.
func waitingIn(t *testing.T, base, token, queue, channel string) int64 {
	t.Helper()
	code, raw := do(t, "GET", base+"/v1/queues", token, nil)
	if code != 200 {
		t.Fatalf("queues: %d %s", code, raw)
	}
	var qs struct {
		Queues []struct {
			ID       string `json:"id"`
			Channels []struct {
				Channel string `json:"channel"`
				Waiting int64  `json:"waiting"`
			} `json:"channels"`
		} `json:"queues"`
	}
	if err := json.Unmarshal(raw, &qs); err != nil {
		t.Fatalf("queues: %v: %s", err, raw)
	}
	for _, q := range qs.Queues {
		for _, c := range q.Channels {
			if q.ID == queue && c.Channel == channel {
				return c.Waiting
			}
		}
	}
	t.Fatalf("no %s/%s in %s", queue, channel, raw)
	return 0
}

// Pausing WebChat in a queue shared with WhatsApp (sales) pauses WhatsApp too: a WhatsApp
// customer's card then waits, and is offered when the agent resumes.
func TestPausingWebChatInASharedQueueHoldsWhatsAppCards(t *testing.T) {
	cfg, tg, ana, events := outboundGateway(t) // ana online on WhatsApp
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/webchat", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("webchat login: %d %s", code, body)
	}
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/webchat", ana, strings.NewReader(`{"state":"paused","reason":"lunch"}`)); code != 200 {
		t.Fatalf("pause: %d %s", code, body)
	}
	if p := presenceOf(t, tg.base, ana); p["whatsapp"] != "paused" || p["webchat"] != "paused" {
		t.Fatalf("after pausing WebChat: %v", p)
	}

	postSigned(t, tg.base, cfg, simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300",
		From: "+5511999990005", Name: "Lia", Text: "Alguém?"}))
	testutil.Eventually(t, 5*time.Second, "the WhatsApp card waiting in sales", func() bool {
		return waitingIn(t, tg.base, ana, "sales", "whatsapp") == 1
	})
	if _, raw := do(t, "GET", tg.base+"/v1/agents/me/cards", ana, nil); strings.Contains(string(raw), `"offered"`) {
		t.Fatalf("a card was offered to a paused agent: %s", raw)
	}

	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/webchat", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("resume: %d %s", code, body)
	}
	if p := presenceOf(t, tg.base, ana); p["whatsapp"] != "online" {
		t.Fatalf("after resuming WebChat: %v", p)
	}
	waitEvent(t, events, "the WhatsApp card offered after resuming", func(e streamEvent) bool { return e.Type == "card.offered" })
	if n := waitingIn(t, tg.base, ana, "sales", "whatsapp"); n != 0 {
		t.Fatalf("%d still waiting", n)
	}
}
