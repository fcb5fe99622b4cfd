package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/chatgate/chatgate/internal/redistest"
)

// TestWidgetFitsZoomedAndNarrowPagesInTheBrowser: the open chat fits the window at 200 % zoom (a
// 1280×800 screen is then 640×400 CSS pixels) and at 320 px wide — its title and the reply box on
// screen, nothing pushed past the page's edge (the demo page's own example wraps too).
func TestWidgetFitsZoomedAndNarrowPagesInTheBrowser(t *testing.T) {
	ln := listenLoopback(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	cfg.Listen = ln.Addr().String()
	tg := startTestGatewayOn(t, cfg, ln, nil)
	b := newBrowserIn(t, "pt-BR")
	b.run("open the demo page", chromedp.Navigate(tg.base+"/webchat/demo"))
	b.click("open the chat", ".cgw-toggle")
	b.until("open", `document.querySelector('.cgw').classList.contains('open')`)
	for _, vp := range []struct {
		name string
		w, h int64
	}{{"zoom-200", 640, 400}, {"narrow-320", 320, 568}} {
		b.run(vp.name, chromedp.EmulateViewport(vp.w, vp.h))
		b.until("the whole chat inside the window at "+vp.name, `(() => {
			const inside = (s) => { const r = document.querySelector(s).getBoundingClientRect();
				return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth; };
			return inside('.cgw-head') && inside('.cgw-form input') && inside('.cgw-form button') && inside('.cgw-toggle')
				&& document.documentElement.scrollWidth <= innerWidth; })()`)
		b.shot(vp.name)
	}
}

// TestWidgetFromTheKeyboardInTheBrowser: the chat is a named region; opening it puts the focus in the
// message box; Escape closes it and gives the focus back to the button that opened it.
func TestWidgetFromTheKeyboardInTheBrowser(t *testing.T) {
	ln := listenLoopback(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	cfg.Listen = ln.Addr().String()
	tg := startTestGatewayOn(t, cfg, ln, nil)
	b := newBrowserIn(t, "en-US")
	b.run("open the demo page", chromedp.Navigate(tg.base+"/webchat/demo"))
	b.run("focus the chat button", chromedp.WaitVisible(chromedp.CSS(".cgw-toggle")), chromedp.Focus(chromedp.CSS(".cgw-toggle")))
	b.keys("open with Enter", kb.Enter)
	b.until("open, the message box focused", `document.querySelector('.cgw').classList.contains('open') && document.activeElement === document.querySelector('.cgw-form input')`)
	b.until("a region named as its title", `document.querySelector('.cgw-box').getAttribute('role') === 'region' && document.querySelector('.cgw-box').getAttribute('aria-label') === 'Chat with us'`)
	b.keys("Escape", kb.Escape)
	b.until("closed, the focus back on the button that says Chat", `!document.querySelector('.cgw').classList.contains('open')
		&& document.activeElement === document.querySelector('.cgw-toggle') && document.activeElement.textContent === 'Chat'
		&& document.activeElement.getAttribute('aria-expanded') === 'false'`)
}

// TestWidgetSaysAFailedConnectionInWordsInTheBrowser: while the gateway cannot be reached the visitor
// reads the widget's own sentence in their language, never the browser's technical message; once it
// is back, the next message goes through without reloading the page.
func TestWidgetSaysAFailedConnectionInWordsInTheBrowser(t *testing.T) {
	// The page and the widget come through a proxy that drops WebChat's API calls while down is set,
	// as a network outage does (fetch fails without a response).
	var down atomic.Bool
	var target atomic.Pointer[url.URL]
	var got atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/webchat/v1/") && down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
			return
		}
		if r.URL.Path == "/webchat/v1/messages" {
			got.Add(1)
		}
		httputil.NewSingleHostReverseProxy(target.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	for i := range cfg.WebChat.Sites {
		if cfg.WebChat.Sites[i].ID == "shop" {
			cfg.WebChat.Sites[i].AllowedOrigins = append(cfg.WebChat.Sites[i].AllowedOrigins, front.URL)
		}
	}
	tg := startTestGateway(t, cfg, nil)
	u, _ := url.Parse(tg.base)
	target.Store(u)

	for _, tc := range []struct{ browser, unavailable string }{
		{"pt-BR", "O chat não está disponível agora."},
		{"en-US", "The chat is not available right now."},
	} {
		t.Run(tc.browser, func(t *testing.T) {
			down.Store(true)
			b := newBrowserIn(t, tc.browser)
			b.run("open the demo page", chromedp.Navigate(front.URL+"/webchat/demo"))
			b.click("open the chat", ".cgw-toggle")
			b.until("the widget's sentence, not the browser's", `(() => { const n = [...document.querySelectorAll('.cgw-log .cgw-note')].map((e) => e.textContent);
				return n.length > 0 && n.every((s) => s === `+jsString(tc.unavailable)+`); })()`)
			b.type_("type a message", ".cgw-form input", "Alguém aí?")
			b.click("send it while down", ".cgw-form button")
			b.until("again in words", `[...document.querySelectorAll('.cgw-log .cgw-note')].length >= 2
				&& [...document.querySelectorAll('.cgw-log .cgw-note')].every((e) => e.textContent === `+jsString(tc.unavailable)+`)`)
			b.shot("unavailable")

			down.Store(false)
			before := got.Load()
			b.click("send it again, the gateway back", ".cgw-form button")
			b.until("sent: the box empties and the message shows", `document.querySelector('.cgw-form input').value === ''
				&& [...document.querySelectorAll('.cgw-log [data-from="visitor"]')].some((e) => e.textContent === 'Alguém aí?')`)
			if got.Load() == before {
				t.Error("the message did not reach the gateway")
			}
		})
	}
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestWidgetTypingLastsWhileTheAgentTypesInTheBrowser: each typing notice keeps "typing" in the
// chat's title for 3 s from that notice; an earlier notice's timer does not put the title back while
// the agent is still typing.
func TestWidgetTypingLastsWhileTheAgentTypesInTheBrowser(t *testing.T) {
	ln := listenLoopback(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	cfg.Listen = ln.Addr().String()
	tg := startTestGatewayOn(t, cfg, ln, nil)
	carla := mintFor(t, cfg, "carla")
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/webchat", carla, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	b := newBrowserIn(t, "en-US")
	b.run("open the demo page", chromedp.Navigate(tg.base+"/webchat/demo"))
	b.click("open the chat", ".cgw-toggle")
	b.type_("type a message", ".cgw-form input", "Hello")
	b.click("send it", ".cgw-form button")
	b.until("sent", `[...document.querySelectorAll('.cgw-log [data-from="visitor"]')].length === 1`)
	card := acceptFirstCard(t, tg.base, carla, "carla")
	typing := func() {
		t.Helper()
		if code, body := do(t, "POST", tg.base+"/v1/conversations/"+card.ConversationID+"/typing", carla, nil); code/100 != 2 {
			t.Fatalf("typing: %d %s", code, body)
		}
	}
	typing()
	b.until("typing shown", `document.querySelector('.cgw-head').textContent === 'An agent is typing…'`)
	time.Sleep(2 * time.Second)
	typing()
	time.Sleep(1500 * time.Millisecond) // 3.5 s after the first notice, 1.5 s after the second
	if got := b.eval("title", `document.querySelector('.cgw-head').textContent`); got != "An agent is typing…" {
		t.Errorf("1.5 s after the last typing notice the title says %q", got)
	}
	b.until("the title back once the agent stops", `document.querySelector('.cgw-head').textContent === 'Chat with us'`)
}
