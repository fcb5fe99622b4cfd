package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestWidgetOnTheDemoPageInTheBrowser: the demo page's widget sends a visitor message, an agent accepts
// the card and replies over the API, and the reply appears in the page once. Markup typed by the visitor
// or sent by the agent shows as text and never runs.
func TestWidgetOnTheDemoPageInTheBrowser(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	// The example allows the widget on localhost:8080; in development the origins follow the port the
	// gateway listens on, so the demo works on this one without touching the configuration.
	cfg.Listen = ln.Addr().String()
	tg := startTestGatewayOn(t, cfg, ln, nil)
	carla, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "carla", auth.RoleAgent, time.Hour, time.Now())
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/webchat", carla, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}

	b := newBrowser(t)
	b.run("open the demo page", chromedp.Navigate(tg.base+"/webchat/demo"))
	b.until("the widget's stylesheet applies under the page's policy", `getComputedStyle(document.querySelector('.cgw')).position === 'fixed'`)
	b.click("open the chat", ".cgw-toggle")
	b.until("the chat box is open", `document.querySelector('.cgw').classList.contains('open')`)
	const visitorText = `<script>window.__injected = 1</script><img src=x onerror="window.__injected = 2">Oi, preciso de ajuda`
	b.type_("type a message", ".cgw-form input", visitorText)
	b.click("send it", ".cgw-form button")
	b.until("the visitor's message is shown as text", fmt.Sprintf(
		`[...document.querySelectorAll('.cgw-log [data-from="visitor"]')].some(e => e.textContent === %q)`, visitorText))
	b.shot("visitor-message")

	var card struct {
		ID             string `json:"id"`
		ConversationID string `json:"conversation_id"`
		Channel        string `json:"channel"`
		State          string `json:"state"`
	}
	testutil.Within(10*time.Second, func() bool { // the check below says what was missing
		_, body := do(t, "GET", tg.base+"/v1/agents/me/cards", carla, nil)
		var list struct {
			Cards []json.RawMessage `json:"cards"`
		}
		if json.Unmarshal(body, &list) == nil && len(list.Cards) > 0 {
			json.Unmarshal(list.Cards[0], &card)
		}
		return card.ID != ""
	})
	if card.ID == "" || card.Channel != "webchat" {
		t.Fatalf("no WebChat card offered to carla: %+v", card)
	}
	if code, body := do(t, "POST", tg.base+"/v1/cards/"+card.ID+"/accept", carla, nil); code != 200 {
		t.Fatalf("accept: %d %s", code, body)
	}
	const agentText = `<b>Olá!</b> Como posso ajudar?`
	reply, _ := json.Marshal(map[string]string{"text": agentText})
	if code, body := do(t, "POST", tg.base+"/v1/conversations/"+card.ConversationID+"/messages", carla, strings.NewReader(string(reply))); code != 202 {
		t.Fatalf("reply: %d %s", code, body)
	}
	b.until("the agent's reply appears in the page as text", fmt.Sprintf(
		`[...document.querySelectorAll('.cgw-log [data-from="agent"]')].some(e => e.textContent === %q)`, agentText))
	b.shot("agent-reply")

	time.Sleep(500 * time.Millisecond) // proving that nothing happens: room for a duplicate to arrive
	if n := b.eval("count replies", `String(document.querySelectorAll('.cgw-log [data-from="agent"]').length)`); n != "1" {
		t.Errorf("the reply is shown %s times, want once", n)
	}
	if got := b.eval("look for injected markup", `String(window.__injected) + ' ' + document.querySelectorAll('.cgw-log script, .cgw-log img, .cgw-log b').length`); got != "undefined 0" {
		t.Errorf("markup from a message became part of the page: %s", got)
	}
}

// TestWidgetSpeaksTheVisitorsLanguage: the widget takes the visitor's browser language (Portuguese
// here, English in the test above) and passes axe-core's checks on the demo page.
func TestWidgetSpeaksTheVisitorsLanguage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	cfg.Listen = ln.Addr().String()
	tg := startTestGatewayOn(t, cfg, ln, nil)
	for _, tc := range []struct{ browser, title, open, send string }{
		{"pt-BR", "Fale com a gente", "Conversar", "Enviar"},
		{"en-US", "Chat with us", "Chat", "Send"},
	} {
		t.Run(tc.browser, func(t *testing.T) {
			b := newBrowserIn(t, tc.browser)
			b.run("open the demo page", chromedp.Navigate(tg.base+"/webchat/demo"))
			b.until("the widget in the visitor's language", fmt.Sprintf(`document.querySelector('.cgw-toggle')?.textContent === %q
				&& document.querySelector('.cgw-head').textContent === %q && document.querySelector('.cgw-form button').textContent === %q`, tc.open, tc.title, tc.send))
			b.click("open the chat", ".cgw-toggle")
			b.until("open, the toggle says so", `document.querySelector('.cgw').classList.contains('open') && document.querySelector('.cgw-toggle').getAttribute('aria-expanded') === 'true'`)
			b.axe("widget open")
			b.shot("widget-open")
		})
	}
}
