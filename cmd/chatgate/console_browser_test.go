package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
)

// Presence colours of the stylesheet: offline grey, online green, paused orange.
const (
	grey   = "rgb(107, 114, 128)"
	green  = "rgb(21, 128, 61)"
	orange = "rgb(194, 65, 12)"
)

// words are what the desk says in one language, as the tests expect to read them.
type words struct {
	lang, browser                                      string
	offline, online1, online2, paused2, lunch, choose  string
	statusPaused, loggedIn, sent, empty, started       string
	logoutTitle, closeTitle, staleAccepted, windowText string
	pauseFor, onlineFor, expiresIn, waiting            string
}

var desks = []words{
	{lang: "pt-BR", browser: "pt-BR", offline: "Offline", online1: "Online 1/2", online2: "Online 2/2", paused2: "Em pausa 2/2",
		lunch: "Almoço", choose: "Escolha um motivo.", statusPaused: "Em pausa", loggedIn: "Conectado", sent: "enviada",
		empty: "Escreva algo primeiro.", started: "Conversa iniciada", logoutTitle: "Sair do WhatsApp?",
		closeTitle: "Encerrar a conversa com Maria?", staleAccepted: "já foi aceita em outra aba",
		windowText: "ainda não escreveu", pauseFor: "há", onlineFor: "há", expiresIn: "expira em", waiting: "aguarda há"},
	{lang: "en", browser: "en-US", offline: "Offline", online1: "Online 1/2", online2: "Online 2/2", paused2: "Paused 2/2",
		lunch: "Lunch", choose: "Choose a reason.", statusPaused: "Paused", loggedIn: "Logged in", sent: "sent",
		empty: "Write something first.", started: "Conversation started", logoutTitle: "Log out of WhatsApp?",
		closeTitle: "Close the conversation with Maria?", staleAccepted: "already accepted in another tab",
		windowText: "has not written", pauseFor: "for", onlineFor: "for", expiresIn: "expires in", waiting: "waiting"},
}

// indicatorIs is a condition on the chat-channels indicator: its words and its computed colour.
func indicatorIs(text, colour string) string {
	return fmt.Sprintf(`(() => { const i = document.querySelector('#indicator');
		return i.querySelector('[data-label]').textContent === %q && getComputedStyle(i).backgroundColor === %q; })()`, text, colour)
}

// channelIs: the channel's row is in that state and its whole row shows the state's colour.
func channelIs(channel, state string) string {
	colour := map[string]string{"offline": grey, "online": green, "paused": orange}[state]
	return fmt.Sprintf(`(() => { const r = document.querySelector('li.channel[data-channel=%q]');
		return r?.dataset.state === %q && getComputedStyle(r).backgroundColor === %q; })()`, channel, state, colour)
}

// rects returns the page positions of the elements matched by the selectors, to check nothing moved.
func (b *browser) rects(step string, sels ...string) string {
	b.t.Helper()
	list, _ := json.Marshal(sels)
	return b.eval(step, fmt.Sprintf(`JSON.stringify(%s.map((s) => { const r = document.querySelector(s).getBoundingClientRect();
		return [s, Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height)]; }))`, list))
}

// shots saves the page at 1280 px and at 390 px wide, and checks nothing overflows the narrow one.
func (b *browser) shotBoth(name string) {
	b.t.Helper()
	b.shot(name + "-1280")
	b.run("narrow "+name, chromedp.EmulateViewport(390, 844))
	b.until("nothing wider than the phone at "+name, `document.documentElement.scrollWidth <= 390
		&& [...document.querySelectorAll('.topbar button, .topbar select')].every((e) => { const r = e.getBoundingClientRect();
			return getComputedStyle(e).display === 'none' || (r.left >= 0 && r.right <= innerWidth); })`)
	b.shot(name + "-390")
	b.run("wide again "+name, chromedp.EmulateViewport(1280, 900))
}

// keys types keys into whatever has the focus, as a keyboard does.
func (b *browser) keys(step, keys string, mods ...chromedp.Modifier) {
	b.t.Helper()
	var opts []chromedp.KeyOption
	if len(mods) > 0 {
		opts = append(opts, chromedp.KeyModifiers(mods...))
	}
	b.run(step, chromedp.KeyEvent(keys, opts...))
}

// axe runs axe-core (testdata/axe, test-only: the gateway never serves it) in the page and fails on
// any serious or critical WCAG 2.1 A/AA violation.
func (b *browser) axe(step string) {
	b.t.Helper()
	if b.eval("is axe there", `typeof axe === 'undefined' ? 'no' : 'yes'`) == "no" {
		src, err := os.ReadFile("testdata/axe/axe.min.js")
		if err != nil {
			b.t.Fatal(err)
		}
		b.eval("inject axe-core", string(src)+"\n;'ok'")
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
		.then((r) => JSON.stringify({passes: r.passes.length, bad: r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
			.map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 4).map((n) => n.target.join(' ') + ' — ' + n.failureSummary).join(' | '))}))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: axe: %v", step, err)
	}
	var res struct {
		Passes int      `json:"passes"`
		Bad    []string `json:"bad"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Passes == 0 {
		b.t.Fatalf("%s: axe answered %s (%v)", step, out, err)
	}
	for _, v := range res.Bad {
		b.t.Errorf("%s: accessibility: %s", step, v)
	}
}

// newTab opens a second tab of the same browser (its own sessionStorage, the same localStorage).
func (b *browser) newTab() *browser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatal(err)
	}
	shots := filepath.Join(b.shots, "second-tab")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		b.t.Fatal(err)
	}
	return &browser{t: b.t, ctx: ctx, shots: shots}
}

func (b *browser) signIn(base, page, who string) {
	b.t.Helper()
	b.run("open "+page, chromedp.Navigate(base+page))
	b.click("sign in as "+who, fmt.Sprintf(`#dev-picker button[data-agent=%q]`, who))
}

// TestConsoleSeedScreenInTheBrowser checks every rule of the seed's screen in both languages: the
// language comes from the browser; the indicator at the top centre (grey Offline, green Online n/m,
// orange when paused) opens the channel panel; each channel's whole row takes its state's colour and
// says it in words and an icon; the toggle sits beside the name and the clock under it; Pause opens
// the reasons in the chosen language; New conversation only while logged in on WhatsApp; nothing
// moves under the pointer when a state changes; no serious accessibility violation.
func TestConsoleSeedScreenInTheBrowser(t *testing.T) {
	for _, w := range desks {
		t.Run(w.lang, func(t *testing.T) {
			cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
			tg := startTestGateway(t, cfg, nil)
			b := newBrowserIn(t, w.browser)
			ana := mintFor(t, cfg, "ana")

			b.signIn(tg.base, "/console/", "ana")
			b.until("the page speaks the browser's language", fmt.Sprintf(`document.documentElement.lang === %q && document.querySelector('#lang').value === %q`, w.lang, w.lang))
			b.until("indicator grey Offline, panel open", indicatorIs(w.offline, grey)+` && !document.querySelector('#desk').hidden && !document.querySelector('#channel-panel').hidden`)
			b.until("both channels grey", channelIs("whatsapp", "offline")+" && "+channelIs("webchat", "offline"))
			b.until("indicator at the top centre", `(() => { const r = document.querySelector('#indicator').getBoundingClientRect();
				return Math.abs(r.left + r.width / 2 - innerWidth / 2) < 4 && r.top < 40; })()`)
			b.until("the toggle beside the name, the clock under it", `(() => { const row = document.querySelector('li.channel[data-channel="whatsapp"]');
				const n = row.querySelector('.name').getBoundingClientRect(), s = row.querySelector('[data-toggle]').getBoundingClientRect(), c = row.querySelector('[data-state-text]').getBoundingClientRect();
				return s.left - n.right >= 0 && s.left - n.right < 60 && c.top >= n.bottom - 2 && Math.abs(c.left - n.left) < 30; })()`)
			b.until("no new conversation while offline (its place kept)", `document.querySelector('#new-conversation').hidden && getComputedStyle(document.querySelector('#new-conversation')).visibility === 'hidden'`)
			b.axe("offline")
			b.shotBoth("offline")

			still := []string{`#indicator`, `#new-conversation`, `button[data-toggle="whatsapp"]`, `button[data-toggle="webchat"]`, `button[data-channel-action="whatsapp"]`, `#lang`}
			before := b.rects("positions offline", still...)
			b.click("log in on WhatsApp", `button[data-toggle="whatsapp"]`)
			b.until("Online 1/2 green", indicatorIs(w.online1, green)+" && "+channelIs("whatsapp", "online")+
				` && document.querySelector('button[data-toggle="whatsapp"]').getAttribute('aria-checked') === 'true'`)
			b.until("new conversation offered on WhatsApp", `!document.querySelector('#new-conversation').hidden`)
			if after := b.rects("positions online", still...); after != before {
				t.Errorf("controls moved when WhatsApp went online:\nbefore %s\nafter  %s", before, after)
			}
			first := b.eval("read the clock", `document.querySelector('li.channel[data-channel="whatsapp"] [data-since]').textContent`)
			b.until("the clock ticks with the time online", fmt.Sprintf(`(() => { const c = document.querySelector('li.channel[data-channel="whatsapp"] [data-since]').textContent;
				return c.startsWith(%q) && /\d\d:\d\d:\d\d$/.test(c) && c !== %q; })()`, w.onlineFor, first))
			if got := serverState(t, tg.base, ana, "whatsapp"); got != "online" {
				t.Errorf("server says whatsapp is %s, want online", got)
			}
			b.shotBoth("online-whatsapp")

			b.click("log in on WebChat", `button[data-toggle="webchat"]`)
			b.until("Online 2/2", indicatorIs(w.online2, green)+" && "+channelIs("webchat", "online"))

			b.click("open the pause pop-up", `button[data-channel-action="whatsapp"]`)
			b.until("reasons listed in the language", fmt.Sprintf(`document.querySelector('#pause-dialog').open && document.querySelectorAll('#pause-dialog input[name=reason]').length === 3
				&& document.querySelector('label[for="reason-lunch"]').textContent === %q`, w.lunch))
			b.until("pause disabled without a reason", `document.querySelector('#pause-dialog [data-submit]').disabled`)
			b.eval("force the form without a reason", `document.querySelector('#pause-form').requestSubmit(); ''`)
			b.until("told to choose a reason", fmt.Sprintf(`document.querySelector('#pause-dialog [data-error]').textContent === %q && document.querySelector('#pause-dialog').open`, w.choose))
			if got := serverState(t, tg.base, ana, "whatsapp"); got != "online" {
				t.Fatalf("a pause without a reason reached the server: whatsapp is %s", got)
			}
			b.axe("pause pop-up")
			b.shotBoth("pause-popup")

			b.click("choose lunch", `#reason-lunch`)
			b.until("pause enabled", `!document.querySelector('#pause-dialog [data-submit]').disabled`)
			before = b.rects("positions online", still...)
			b.click("pause", `#pause-dialog [data-submit]`)
			b.until("both channels orange", indicatorIs(w.paused2, orange)+" && "+channelIs("whatsapp", "paused")+" && "+channelIs("webchat", "paused")+
				` && !document.querySelector('#pause-dialog').open`)
			if after := b.rects("positions paused", still...); after != before {
				t.Errorf("controls moved when the channels paused:\nbefore %s\nafter  %s", before, after)
			}
			b.until("WebChat says paused, with the pause time and WhatsApp's reason", fmt.Sprintf(`(() => { const r = document.querySelector('li.channel[data-channel="webchat"]');
				return r.querySelector('[data-state-text]').textContent === %q && r.querySelector('[data-state-icon]').textContent !== ''
					&& /^%s 00:00:0\d — %s$/.test(r.querySelector('[data-since]').textContent); })()`, w.statusPaused, w.pauseFor, w.lunch))
			if got := serverState(t, tg.base, ana, "webchat"); got != "paused" {
				t.Errorf("server says webchat is %s, want paused", got)
			}
			b.axe("paused")
			b.shotBoth("paused")

			b.click("resume WebChat", `button[data-channel-action="webchat"]`)
			b.until("both back online", indicatorIs(w.online2, green)+" && "+channelIs("whatsapp", "online")+" && "+channelIs("webchat", "online"))

			b.eval("focus a switch", `document.querySelector('button[data-toggle="webchat"]').focus(); ''`)
			b.keys("Escape closes the panel", kb.Escape)
			b.until("the panel closed, the focus on the indicator", `document.querySelector('#channel-panel').hidden && document.activeElement === document.querySelector('#indicator')
				&& document.querySelector('#indicator').getAttribute('aria-expanded') === 'false'`)
			b.keys("Enter on the indicator opens it", kb.Enter)
			b.until("the panel open again", `!document.querySelector('#channel-panel').hidden`)
			b.click("close the panel from the indicator", `#indicator`)
			b.until("the panel closed", `document.querySelector('#channel-panel').hidden && document.querySelector('#indicator').getAttribute('aria-expanded') === 'false'`)
			b.click("open it again", `#indicator`)
			b.until("the panel open", `!document.querySelector('#channel-panel').hidden`)

			b.click("log out of WhatsApp", `button[data-toggle="whatsapp"]`)
			b.until("Online 1/2 without WhatsApp", indicatorIs(w.online1, green)+" && "+channelIs("whatsapp", "offline"))
			b.until("no new conversation without WhatsApp", `document.querySelector('#new-conversation').hidden`)
			b.shotBoth("whatsapp-logged-out")

			// The switch is remembered: another language chosen here is the one after a reload.
			other := "en"
			if w.lang == "en" {
				other = "pt-BR"
			}
			b.eval("switch the language", fmt.Sprintf(`(() => { const s = document.querySelector('#lang'); s.value = %q; s.dispatchEvent(new Event('change')); return s.value; })()`, other))
			b.run("reload", chromedp.Reload())
			b.until("the other language after the reload", fmt.Sprintf(`document.documentElement.lang === %q && document.querySelector('#indicator [data-label]').textContent.startsWith('Online')
				&& document.querySelector('#lang').value === %q`, other, other))
		})
	}
}

// recordNotifications stands in for the desktop's notifications, which headless Chromium cannot
// show: permission granted on request, and every notification the page raises recorded.
const recordNotifications = `(() => { window.__notes = [];
	window.Notification = class { constructor(title, o) { window.__notes.push(title + ' | ' + (o && o.body)); }
		static get permission() { return window.__perm || 'default'; }
		static requestPermission() { window.__perm = 'granted'; return Promise.resolve('granted'); } };
	return 'ok'; })()`

func offerOf(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#offers li.item[data-state="offered"]')].find((c) => c.querySelector('.who').textContent.startsWith(%q))`, name)
}

func mineOf(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#mine li.item')].find((c) => c.querySelector('.who').textContent.startsWith(%q))`, name)
}

// TestConsoleDeskInTheBrowser drives the desk in both languages: an offer first in the list with its
// countdown, a sound, a desktop notification and the count in the title; accepted and answered from
// the keyboard only (Alt+A, Enter; Enter sends, Shift+Enter a new line); times, the day and status
// ticks in the thread; a second conversation with unread count, last message and wait; the
// confirmations before logging out with open conversations and before closing; a template-only
// conversation whose reply box explains the closed 24-hour window and offers a template; and the
// new conversation's field errors in words. Each state is checked with axe-core and photographed at
// both widths.
func TestConsoleDeskInTheBrowser(t *testing.T) {
	for _, w := range desks {
		t.Run(w.lang, func(t *testing.T) {
			fake := startFakeWhatsApp(t)
			cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL()})
			tg := startTestGateway(t, cfg, nil)
			ana := mintFor(t, cfg, "ana")
			b := newBrowserIn(t, w.browser)

			b.signIn(tg.base, "/console/", "ana")
			b.eval("stand in for desktop notifications", recordNotifications)
			// The login's presence.changed gives the page its first event id only if the stream is open.
			b.until("the stream is open", `document.querySelector('#stream-state').textContent.startsWith('●')`)
			b.click("log in on WhatsApp", `button[data-toggle="whatsapp"]`)
			b.until("Online 1/2 and live", indicatorIs(w.online1, green)+` && !!document.querySelector('#stream-state').dataset.lastEventId`)
			b.click("close the channel panel", `#indicator`)
			b.click("turn on alerts", `#alerts`)
			b.until("alerts on", `document.querySelector('#alerts').getAttribute('aria-pressed') === 'true'`)

			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi, tudo bem?"})
			b.until("the offer first in the list, with its countdown", fmt.Sprintf(`(() => { const c = %s;
				return c && c.querySelector('[data-last]').textContent === 'Oi, tudo bem?' && c.querySelector('[data-countdown]').textContent.startsWith(%q)
					&& document.querySelector('#conversation-list .item') === c; })()`, offerOf("Maria"), w.expiresIn))
			b.until("the count in the title, a sound and a notification", `document.title.startsWith('(1) ') && document.body.dataset.beeps === '1'
				&& window.__notes.length === 1 && window.__notes[0].includes('Maria')`)
			b.axe("offer")
			b.shotBoth("offer")

			// Keyboard only: Alt+A reaches the offer's Accept, Enter accepts; the reply box takes the focus.
			b.keys("Alt+A", "a", chromedp.ModifierAlt)
			b.until("Accept has the focus", `document.activeElement?.dataset.action === 'accept'`)
			b.keys("accept with Enter", kb.Enter)
			b.until("accepted, the thread open, the reply box focused", fmt.Sprintf(`(() => { const c = %s;
				const m = document.querySelector('#messages li.msg.in');
				return c && c.dataset.state === 'accepted' && m && m.querySelector('[data-text]').textContent === 'Oi, tudo bem?'
					&& /\d\d:\d\d/.test(m.querySelector('time').textContent) && document.querySelector('#messages li.day')?.textContent === %q
					&& document.activeElement === document.querySelector('#reply'); })()`, mineOf("Maria"), map[string]string{"pt-BR": "Hoje", "en": "Today"}[w.lang]))
			b.keys("Enter on an empty reply", kb.Enter)
			b.until("an empty reply is refused", fmt.Sprintf(`document.querySelector('#reply-error').textContent === %q`, w.empty))
			b.keys("type the first line", "Olá Maria!")
			b.keys("Shift+Enter for a new line", kb.Enter, chromedp.ModifierShift)
			b.keys("type the second line", "<b>Como</b> posso ajudar?")
			b.until("two lines in the box", `document.querySelector('#reply').value === 'Olá Maria!\n<b>Como</b> posso ajudar?'`)
			b.keys("send with Enter", kb.Enter)
			b.until("the reply is sent, with its tick", fmt.Sprintf(`(() => { const m = document.querySelector('#messages li.out');
				return m && m.dataset.status === 'sent' && m.querySelector('[data-text]').textContent === 'Olá Maria!\n<b>Como</b> posso ajudar?'
					&& !m.querySelector('b') && m.querySelector('.tick').textContent === '✓' && m.querySelector('[data-status]').textContent.includes(%q)
					&& document.querySelector('#reply').value === ''; })()`, w.sent))
			if n := fake.CountTo("5511999990001"); n != 1 {
				t.Errorf("the fake provider got %d messages for the customer, want 1", n)
			}
			b.axe("reply sent")
			b.shotBoth("reply-sent")

			// A second customer; Maria writes again while Joana's thread is open: unread, last message, wait.
			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990003", Name: "Joana", Text: "Bom dia"})
			b.until("Joana's offer", offerOf("Joana")+` !== undefined`)
			b.run("accept Joana", chromedp.Click(chromedp.CSS(`#offers li.item[data-state="offered"] [data-action="accept"]`)))
			b.until("Joana's thread", `document.querySelector('#thread-title').textContent.startsWith('Joana')`)
			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Ainda está aí?"})
			b.until("Maria's unread count, last message and wait", fmt.Sprintf(`(() => { const c = %s;
				return c && c.querySelector('[data-unread]').textContent === '1' && c.querySelector('[data-last]').textContent === 'Ainda está aí?'
					&& c.querySelector('[data-waited]').textContent.startsWith(%q) && document.title.startsWith('(1) '); })()`, mineOf("Maria"), w.waiting))
			b.eval("focus the first conversation", `document.querySelector('#mine .open').focus(); ''`)
			b.keys("arrow down the list", kb.ArrowDown)
			b.until("the second conversation has the focus", `document.activeElement === document.querySelectorAll('#mine .open')[1]`)
			b.keys("arrow back up", kb.ArrowUp)
			b.until("the first again", `document.activeElement === document.querySelectorAll('#mine .open')[0]`)
			b.axe("two conversations")
			b.shotBoth("two-conversations")

			// Logging out with open conversations asks first and says what happens; staying changes nothing.
			b.click("open the channel panel", `#indicator`)
			b.click("log out of WhatsApp", `button[data-toggle="whatsapp"]`)
			b.until("the logout confirmation", fmt.Sprintf(`document.querySelector('#confirm-dialog').open && document.querySelector('#confirm-title').textContent === %q
				&& document.querySelector('#confirm-text').textContent.includes('2')`, w.logoutTitle))
			b.axe("logout confirmation")
			b.shotBoth("confirm-logout")
			b.click("stay logged in", `[data-confirm-cancel]`)
			b.until("still online", `!document.querySelector('#confirm-dialog').open && `+channelIs("whatsapp", "online"))
			if got := serverState(t, tg.base, ana, "whatsapp"); got != "online" {
				t.Fatalf("cancelled logout reached the server: whatsapp is %s", got)
			}
			b.click("close the channel panel", `#indicator`)

			// Closing asks first; keeping it open changes nothing, confirming closes it.
			b.run("open Maria", chromedp.Click(chromedp.CSS(`#mine li.item[data-state="accepted"]:last-child .open`)))
			b.until("Maria's thread, read", fmt.Sprintf(`document.querySelector('#thread-title').textContent.startsWith('Maria') && %s.querySelector('[data-unread]').textContent === ''`, mineOf("Maria")))
			b.click("close Maria's conversation", `#thread-close`)
			b.until("the close confirmation, with the queue's dispositions", fmt.Sprintf(`document.querySelector('#close-dialog').open && document.querySelector('#close-title').textContent === %q
				&& document.querySelectorAll('#close-form input[name=disposition]').length === 3`, w.closeTitle))
			b.shotBoth("confirm-close")
			b.click("keep it open", `#close-form [data-cancel]`)
			b.until("still accepted", `!document.querySelector('#close-dialog').open && `+mineOf("Maria")+`.dataset.state === 'accepted'`)
			b.click("close it after all", `#thread-close`)
			b.until("asked again", `document.querySelector('#close-dialog').open`)
			b.click("confirm", `#close-form button[type=submit]`)
			b.until("closed, no reply box", mineOf("Maria")+`.dataset.state === 'closed' && document.querySelector('#composer').hidden && document.querySelector('#thread-state').textContent !== ''`)
			b.shotBoth("closed")

			// A conversation started with a template: the customer has not written, so only a template may follow.
			b.click("new conversation", `#new-conversation`)
			b.until("templates listed", `document.querySelector('#conversation-dialog').open && document.querySelectorAll('#nc-template option').length === 3`)
			b.eval("choose order_update", `(() => { const s = document.querySelector('#nc-template');
				s.value = [...s.options].find((o) => o.textContent.startsWith('order_update')).value;
				s.dispatchEvent(new Event('change')); return s.value; })()`)
			b.type_("a bad number", `#nc-to`, "12345")
			b.type_("the name", `#nc-body_params-0`, "Ana")
			b.type_("the order", `#nc-body_params-1`, "#123")
			b.click("send", `#conversation-form button[type=submit]`)
			b.until("the number's error in words next to it", `document.querySelector('.field-error[data-field="to"]').textContent.includes('+5511999990001') && document.querySelector('#conversation-dialog').open`)
			b.axe("new conversation error")
			b.shotBoth("new-conversation-error")
			b.eval("clear the number", `(() => { const i = document.querySelector('#nc-to'); i.value = ''; return i.value; })()`)
			b.type_("fix the number", `#nc-to`, "+5511999990002")
			b.click("send again", `#conversation-form button[type=submit]`)
			b.until("started", fmt.Sprintf(`!document.querySelector('#conversation-dialog').open && document.querySelector('#notice').textContent.startsWith(%q)`, w.started))
			b.until("its card in the list", mineOf("+5511999990002")+` !== undefined`)
			b.run("open it", chromedp.Click(chromedp.CSS(`#mine li.item[data-state="accepted"]:first-child .open`)))
			b.until("the template sent, the window explained, a template offered", fmt.Sprintf(`(() => { const m = document.querySelector('#messages li.out');
				return document.querySelector('#thread-title').textContent === '+5511999990002' && m?.dataset.status === 'sent'
					&& m.querySelector('[data-text]').textContent === 'Olá Ana, seu pedido #123 foi atualizado.'
					&& !document.querySelector('#window-closed').hidden && document.querySelector('#window-closed').dataset.reason === 'not-yet'
					&& document.querySelector('#window-closed').textContent.includes(%q)
					&& document.querySelector('#composer').hidden; })()`, w.windowText))
			b.axe("window closed")
			b.shotBoth("window-closed")
			b.click("send a template instead", `#send-template`)
			b.until("the template form, for this customer", `document.querySelector('#conversation-dialog').open && document.querySelector('#nc-to').value === '+5511999990002'`)
			b.click("cancel", `#conversation-form [data-cancel]`)

			// A customer whose last message is over 24 hours old: yesterday's separator, the window explained.
			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990006", Name: "Paulo",
				Text: "Mensagem de ontem", At: time.Now().Add(-25 * time.Hour)})
			b.until("Paulo's offer", offerOf("Paulo")+` !== undefined`)
			b.run("accept Paulo", chromedp.Click(chromedp.CSS(`#offers li.item[data-state="offered"] [data-action="accept"]`)))
			b.until("yesterday's message, the window closed for 24 hours", fmt.Sprintf(`document.querySelector('#thread-title').textContent.startsWith('Paulo')
				&& document.querySelector('#messages li.day')?.textContent === %q && document.querySelector('#window-closed').dataset.reason === 'expired'
				&& !document.querySelector('#window-closed').hidden && document.querySelector('#window-text').textContent.includes('24') && document.querySelector('#composer').hidden`,
				map[string]string{"pt-BR": "Ontem", "en": "Yesterday"}[w.lang]))
			b.axe("window expired")
			b.shotBoth("window-expired")

			// Confirming the logout gives the open conversations back to the queue: they leave the list.
			b.click("open the channel panel again", `#indicator`)
			b.click("log out of WhatsApp again", `button[data-toggle="whatsapp"]`)
			b.until("asked again", fmt.Sprintf(`document.querySelector('#confirm-dialog').open && document.querySelector('#confirm-title').textContent === %q`, w.logoutTitle))
			b.click("log out and give them back", `[data-confirm-ok]`)
			b.until("offline, the open conversations gone from the list", channelIs("whatsapp", "offline")+
				` && ![...document.querySelectorAll('#mine li.item')].some((c) => c.dataset.state === 'accepted') && document.querySelector('#new-conversation').hidden`)
			if got := serverState(t, tg.base, ana, "whatsapp"); got != "offline" {
				t.Errorf("server says whatsapp is %s after the confirmed logout, want offline", got)
			}
			b.shotBoth("logged-out-conversations-returned")

			// Nothing the agent reads names a path or an error code.
			if text := b.eval("the page's words", `document.body.innerText`); strings.Contains(text, "/v1/") || strings.Contains(text, "window_closed") || strings.Contains(text, "card_state") {
				t.Errorf("the page shows API words: %s", text)
			}
		})
	}
}

// TestConsoleTabsStayConsistentInTheBrowser opens the desk in two tabs of the same agent (through a
// proxy that can hold the event streams). An offer shows in both; accepted in one, the other moves
// it to the agent's conversations from the stream; a reply sent from one shows in the other. Then,
// with the streams held, a card is accepted elsewhere: the stale tab's Accept is refused by the
// server, and the tab reads the card again and says so in words. A close in one tab closes the
// conversation in the other.
func TestConsoleTabsStayConsistentInTheBrowser(t *testing.T) {
	for _, w := range desks {
		t.Run(w.lang, func(t *testing.T) {
			fake := startFakeWhatsApp(t)
			cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL()})
			tg := startTestGateway(t, cfg, nil)
			cutter, base := newStreamCutter(t, tg.base)
			ana := mintFor(t, cfg, "ana")
			token := cliToken(t, "ana", "agent")
			a := newBrowserIn(t, w.browser)
			a.signInWithToken(base, "/console/", token)
			bTab := a.newTab()
			bTab.signInWithToken(base, "/console/", token)
			streaming := `document.querySelector('#stream-state').textContent.startsWith('●')`
			a.until("tab A's stream open", streaming)
			bTab.until("tab B's stream open", streaming)
			a.click("log in on WhatsApp in tab A", `button[data-toggle="whatsapp"]`)
			live := `!!document.querySelector('#stream-state').dataset.lastEventId && ` + indicatorIs(w.online1, green)
			a.until("tab A online and live", live)
			bTab.until("tab B follows the login", live)
			a.click("close the panel in A", `#indicator`)
			bTab.click("close the panel in B", `#indicator`)

			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi, tudo bem?"})
			a.until("the offer in A", offerOf("Maria")+` !== undefined`)
			bTab.until("the offer in B", offerOf("Maria")+` !== undefined`)
			a.click("accept in A", `#offers [data-action="accept"]`)
			bTab.until("B shows it accepted, from the stream", mineOf("Maria")+`?.dataset.state === 'accepted' && !document.querySelector('#offers [data-action="accept"]')`)
			bTab.axe("second tab")
			bTab.shotBoth("tab-b-follows-accept")

			bTab.run("open Maria in B", chromedp.Click(chromedp.CSS(`#mine li.item .open`)))
			bTab.type_("reply from B", `#reply`, "Respondo da outra aba")
			bTab.click("send from B", `#send`)
			a.until("A shows B's reply, sent", `[...document.querySelectorAll('#messages li.out')].some((m) => m.querySelector('[data-text]').textContent === 'Respondo da outra aba' && m.dataset.status === 'sent')`)
			a.shotBoth("tab-a-shows-reply")

			// A second offer, then the streams are held and the card is accepted elsewhere.
			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990003", Name: "Joana", Text: "Bom dia"})
			a.until("Joana's offer in A", offerOf("Joana")+` !== undefined`)
			bTab.until("Joana's offer in B", offerOf("Joana")+` !== undefined`)
			cutter.cut()
			bTab.until("B's stream is gone", `!!document.querySelector('#stream-state').dataset.lastEventId && !document.querySelector('#stream-state').textContent.includes('●')`)
			var cards struct {
				Cards []struct{ ID, State string } `json:"cards"`
			}
			_, raw := do(t, "GET", tg.base+"/v1/agents/me/cards", ana, nil)
			if err := json.Unmarshal(raw, &cards); err != nil {
				t.Fatal(err)
			}
			joana := ""
			for _, c := range cards.Cards {
				if c.State == "offered" {
					joana = c.ID
				}
			}
			if code, body := do(t, "POST", tg.base+"/v1/cards/"+joana+"/accept", ana, nil); code != 200 {
				t.Fatalf("accept elsewhere: %d %s", code, body)
			}
			bTab.until("B still offers it (its stream is held)", offerOf("Joana")+` !== undefined`)
			bTab.click("accept the stale card in B", `#offers [data-action="accept"]`)
			bTab.until("B reads the card again and says why", fmt.Sprintf(`%s?.dataset.state === 'accepted' && !document.querySelector('#offers li.item')
				&& document.querySelector('#notice').textContent.includes(%q) && !/card_state|\/v1\//.test(document.querySelector('#notice').textContent)`, mineOf("Joana"), w.staleAccepted))
			bTab.axe("stale card refreshed")
			bTab.shotBoth("stale-card-refreshed")
			cutter.release()

			// A decline in A takes the offer away in B.
			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990005", Name: "Rita", Text: "Olá"})
			bTab.until("Rita's offer in B", offerOf("Rita")+` !== undefined`)
			a.until("Rita's offer in A", offerOf("Rita")+` !== undefined`)
			a.click("decline in A", `#offers [data-action="decline"]`)
			bTab.until("B drops the declined offer", offerOf("Rita")+` === undefined`)

			// A conversation started elsewhere (here over the API) joins both tabs' lists from its messages' events.
			if code, body := do(t, "POST", tg.base+"/v1/conversations", ana, strings.NewReader(`{"channel":"whatsapp","to":"+5511999990009",
				"template":{"name":"order_update","language":"pt_BR","body_params":["Ana","#9"]}}`)); code != 202 {
				t.Fatalf("new conversation: %d %s", code, body)
			}
			bTab.until("B lists the conversation started elsewhere", mineOf("+5511999990009")+` !== undefined`)
			a.until("A lists it too", mineOf("+5511999990009")+` !== undefined`)

			// Closing in A closes it in B.
			a.until("A live again with Joana accepted", mineOf("Joana")+`?.dataset.state === 'accepted' && document.querySelector('#stream-state').textContent.includes('●')`)
			a.eval("open Maria in A", mineOf("Maria")+`.querySelector('.open').click(); ''`)
			a.until("Maria's thread in A", `document.querySelector('#thread-title').textContent.startsWith('Maria')`)
			a.click("close Maria in A", `#thread-close`)
			a.until("the close dialog", `document.querySelector('#close-dialog').open`)
			a.click("confirm", `#close-form button[type=submit]`)
			bTab.until("B shows Maria closed", mineOf("Maria")+`?.dataset.state === 'closed' && document.querySelector('#thread-title').textContent.startsWith('Joana')`)
			bTab.shotBoth("tab-b-follows-close")
		})
	}
}
