package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

var perIPRefusals = regexp.MustCompile(`(?m)^chatgate_streams_refused_total\{bound="per_ip"\} (\d+)$`)

// TestWidgetRetriesAStreamRefusedAtTheBound: with http.max_streams_per_ip at 1 and the one slot of
// 127.0.0.1 held by an agent's stream, the widget's event stream is refused (429); EventSource gives
// up on a refusal, so the widget tries again with backoff and, once the slot is free, shows the agent's
// reply.
func TestWidgetRetriesAStreamRefusedAtTheBound(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	cfg.HTTP.MaxStreamsPerIP = 1
	for i := range cfg.WebChat.Sites {
		if cfg.WebChat.Sites[i].ID == "shop" {
			cfg.WebChat.Sites[i].AllowedOrigins = append(cfg.WebChat.Sites[i].AllowedOrigins, base)
		}
	}
	tg := startTestGatewayOn(t, cfg, ln, nil)
	carla, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "carla", auth.RoleAgent, time.Hour, time.Now())
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/webchat", carla, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	// carla's stream takes the address's only slot.
	held, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	fmt.Fprintf(held, "GET /v1/agents/me/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", carla)
	_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if status, err := bufio.NewReader(held).ReadString('\n'); err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("carla's stream: %q %v", status, err)
	}
	refusals := func() int {
		_, body := do(t, "GET", tg.base+"/metrics", adminToken(t, cfg), nil)
		m := perIPRefusals.FindSubmatch(body)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}

	b := newBrowser(t)
	b.run("open the demo page", chromedp.Navigate(tg.base+"/webchat/demo"))
	b.click("open the chat", ".cgw-toggle")
	b.type_("type a message", ".cgw-form input", "Oi")
	b.click("send it", ".cgw-form button")
	testutil.Eventually(t, 10*time.Second, "the widget's stream refused at the per-address bound", func() bool { return refusals() > 0 })
	held.Close() // the slot is free again

	card := acceptFirstCard(t, tg.base, carla, "carla")
	if code, body := do(t, "POST", tg.base+"/v1/conversations/"+card.ConversationID+"/messages", carla, strings.NewReader(`{"text":"Olá, de volta!"}`)); code != 202 {
		t.Fatalf("reply: %d %s", code, body)
	}
	b.until("the reply arrives once the widget's retry gets the slot",
		`[...document.querySelectorAll('.cgw-log [data-from="agent"]')].some(e => e.textContent === 'Olá, de volta!')`)
}

// offeredCard is a card as an agent's card list shows it.
type offeredCard struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
}

// acceptFirstCard waits for the first card offered to the agent whose token this is and accepts it.
func acceptFirstCard(t *testing.T, base, token, agent string) offeredCard {
	t.Helper()
	var card offeredCard
	testutil.Within(10*time.Second, func() bool { // the check below says what was missing
		_, body := do(t, "GET", base+"/v1/agents/me/cards", token, nil)
		var list struct {
			Cards []json.RawMessage `json:"cards"`
		}
		if json.Unmarshal(body, &list) == nil && len(list.Cards) > 0 {
			_ = json.Unmarshal(list.Cards[0], &card)
		}
		return card.ID != ""
	})
	if card.ID == "" {
		t.Fatalf("no card offered to %s", agent)
	}
	if code, body := do(t, "POST", base+"/v1/cards/"+card.ID+"/accept", token, nil); code != 200 {
		t.Fatalf("%s accepting %s: %d %s", agent, card.ID, code, body)
	}
	return card
}
