package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
)

// overlapJS is a JavaScript function: true when two elements' boxes share any area.
const overlapJS = `((a, b) => { const r = a.getBoundingClientRect(), s = b.getBoundingClientRect();
	return r.left < s.right - 1 && s.left < r.right - 1 && r.top < s.bottom - 1 && s.top < r.bottom - 1; })`

// TestConsoleThreadLayoutInTheBrowser: an open conversation laid out at a desk's width and a phone's.
// At 1280 px the tools, the reply box and Send share one row, the reply box taking the room (the rules
// after the wallboard's phone block once sat inside it, so a wide screen lost them). At 360 px the
// customer's name and channel keep their width beside Transfer and Close instead of being squeezed
// under them.
func TestConsoleThreadLayoutInTheBrowser(t *testing.T) {
	b, _, _ := deskWithMaria(t, "pt-BR")

	b.until("at 1280 px the tools, the reply box and Send on one row, the reply box the widest", `(() => {
		const tools = document.querySelector('.composer-tools').getBoundingClientRect();
		const reply = document.querySelector('#reply').getBoundingClientRect();
		const send = document.querySelector('#send').getBoundingClientRect();
		const form = document.querySelector('#composer').getBoundingClientRect();
		return tools.right <= reply.left && reply.right <= send.left && reply.width > form.width / 2
			&& Math.abs(tools.bottom - reply.bottom) < 4 && Math.abs(send.bottom - reply.bottom) < 4; })()`)
	b.shot("thread-1280")

	b.run("a phone's width", chromedp.EmulateViewport(360, 740))
	b.until("at 360 px the name and the channel beside the buttons, not under them", `(() => {
		const overlap = `+overlapJS+`;
		const title = document.querySelector('#thread-title'), sub = document.querySelector('#thread-sub');
		return [document.querySelector('#thread-transfer'), document.querySelector('#thread-close'), document.querySelector('#thread-back')]
			.every((btn) => !overlap(title, btn) && !overlap(sub, btn))
			&& title.getBoundingClientRect().width >= 120 && sub.scrollWidth <= sub.clientWidth + 1
			&& document.documentElement.scrollWidth <= 360; })()`)
	b.shot("thread-360")
	b.axe("thread at 360 px")
}

// deskWithMaria signs ana in on WhatsApp in a browser speaking lang, with Maria Aparecida's
// conversation accepted and open.
func deskWithMaria(t *testing.T, lang string) (*browser, *testGateway, configs.Config) {
	t.Helper()
	fake := startFakeWhatsApp(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL()})
	tg := startTestGateway(t, cfg, nil)
	b := newBrowserIn(t, lang)
	b.signIn(tg.base, "/console/", "ana")
	b.until("the stream is open", `document.querySelector('#stream-state').textContent.startsWith('●')`)
	b.click("log in on WhatsApp", `button[data-toggle="whatsapp"]`)
	b.until("online", `document.querySelector('#indicator').dataset.status === 'online'`)
	b.click("close the channel panel", `#indicator`)
	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria Aparecida", Text: "Oi, tudo bem?"})
	b.until("the offer", offerOf("Maria")+` !== undefined`)
	b.click("accept", `#offers li.item[data-state="offered"] [data-action="accept"]`)
	b.until("the thread", `document.querySelector('#thread-title').textContent.startsWith('Maria')`)
	return b, tg, cfg
}

// TestConsoleAnnouncesCustomersMessagesInTheBrowser: a screen reader hears a customer's new message
// through the page's polite status region — its words in the open conversation, who wrote for
// another — once, and not the statuses of the agent's own replies.
func TestConsoleAnnouncesCustomersMessagesInTheBrowser(t *testing.T) {
	for _, w := range []struct{ browser, open, other string }{
		{"pt-BR", "Mensagem de Maria Aparecida: Ainda está aí?", "Nova mensagem de Maria Aparecida"},
		{"en-US", "Message from Maria Aparecida: Ainda está aí?", "New message from Maria Aparecida"},
	} {
		t.Run(w.browser, func(t *testing.T) {
			b, tg, cfg := deskWithMaria(t, w.browser)
			b.until("the announcer is a polite status region", `document.querySelector('#announcer').getAttribute('role') === 'status'
				&& document.querySelector('#announcer').getAttribute('aria-live') === 'polite'`)
			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria Aparecida", Text: "Ainda está aí?"})
			b.until("her words announced", `document.querySelector('#announcer').textContent === `+jsString(w.open))
			b.type_("reply", "#reply", "Sim!")
			b.click("send", "#send")
			b.until("the reply sent", `document.querySelector('#messages li.out')?.dataset.status === 'sent'`)
			if got := b.eval("announcer", `document.querySelector('#announcer').textContent`); got != w.open {
				t.Errorf("after the reply the announcer says %q, want it unchanged", got)
			}

			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990002", Name: "Joana", Text: "Bom dia"})
			b.until("Joana's offer", offerOf("Joana")+` !== undefined`)
			b.click("accept Joana", `#offers li.item[data-state="offered"] [data-action="accept"]`)
			b.until("Joana's thread", `document.querySelector('#thread-title').textContent.startsWith('Joana')`)
			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria Aparecida", Text: "Oi?"})
			b.until("who wrote, for a conversation not open", `document.querySelector('#announcer').textContent === `+jsString(w.other))
		})
	}
}

// TestConsoleOfferPushesNothingInTheBrowser: an offer arriving above My conversations takes the place
// the empty offers note kept for it, so the conversation under the agent's pointer stays where it
// was, at a desk's width and a phone's; and the place is given back when the offer goes.
func TestConsoleOfferPushesNothingInTheBrowser(t *testing.T) {
	b, tg, cfg := deskWithMaria(t, "pt-BR")
	b.atDeskAndPhoneWidths(func(i int, width string) {
		before := b.rects("Maria's conversation before", `#mine li.item`)
		from := fmt.Sprintf("+55119999900%02d", 10+i)
		postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: from, Name: "Joana", Text: "Bom dia"})
		b.until("Joana's offer", offerOf("Joana")+` !== undefined`)
		if after := b.rects("Maria's conversation after", `#mine li.item`); after != before {
			t.Errorf("at %s px the offer moved Maria's conversation: %s → %s", width, before, after)
		}
		b.shot("offer-arrived-" + width)
		b.click("decline Joana", `#offers li.item[data-state="offered"] [data-action="decline"]`)
		b.until("the offer gone", `document.querySelectorAll('#offers li.item').length === 0`)
		if after := b.rects("Maria's conversation after the decline", `#mine li.item`); after != before {
			t.Errorf("at %s px the declined offer moved Maria's conversation: %s → %s", width, before, after)
		}
	})
}

// TestConsoleAnnouncesChannelChangesInTheBrowser: when a supervisor pauses or logs out an agent's
// channel, the agent's console says so in words through its polite status region, not only by the
// indicator's colour.
func TestConsoleAnnouncesChannelChangesInTheBrowser(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	tg := startTestGateway(t, cfg, nil)
	supervisor := cliToken(t, "supervisor", "supervisor")
	for _, w := range []struct{ browser, paused, offline string }{
		{"pt-BR", "WhatsApp: Em pausa — Almoço", "WhatsApp: Offline"},
		{"en-US", "WhatsApp: Paused — Lunch", "WhatsApp: Offline"},
	} {
		t.Run(w.browser, func(t *testing.T) {
			b := newBrowserIn(t, w.browser)
			b.signIn(tg.base, "/console/", "ana")
			b.until("the stream is open", `document.querySelector('#stream-state').textContent.startsWith('●')`)
			b.click("log in on WhatsApp", `button[data-toggle="whatsapp"]`)
			b.until("online", `document.querySelector('#indicator').dataset.status === 'online'`)
			if code, raw := do(t, "PUT", tg.base+"/v1/agents/ana/channels/whatsapp", supervisor, strings.NewReader(`{"state":"paused","reason":"lunch"}`)); code != 200 {
				t.Fatalf("supervisor's pause: %d %s", code, raw)
			}
			b.until("the pause said in words", `document.querySelector('#indicator').dataset.status === 'paused'
				&& document.querySelector('#announcer').textContent === `+jsString(w.paused))
			if code, raw := do(t, "PUT", tg.base+"/v1/agents/ana/channels/whatsapp", supervisor, strings.NewReader(`{"state":"offline"}`)); code != 200 {
				t.Fatalf("supervisor's logout: %d %s", code, raw)
			}
			b.until("the logout said in words", `document.querySelector('#announcer').textContent === `+jsString(w.offline))
		})
	}
}

// TestConsoleSecondOfferPushesNothingInTheBrowser: with one offer shown, a second arriving goes
// below it inside the offers' own scrolling area, so neither the first offer's buttons nor My
// conversations move under the agent's pointer; the count says two wait and the second is reachable.
func TestConsoleSecondOfferPushesNothingInTheBrowser(t *testing.T) {
	b, tg, cfg := deskWithMaria(t, "pt-BR")
	b.atDeskAndPhoneWidths(func(i int, width string) {
		postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: fmt.Sprintf("+55119999901%02d", 10+i), Name: "Joana", Text: "Bom dia"})
		b.until("Joana's offer", offerOf("Joana")+` !== undefined`)
		before := b.rects("the first offer and Maria's conversation before", `#offers li.item [data-action="accept"]`, `#mine li.item`)
		postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: fmt.Sprintf("+55119999902%02d", 10+i), Name: "Pedro", Text: "Olá"})
		b.until("Pedro's offer, counted", offerOf("Pedro")+` !== undefined && document.querySelector('#offers-count').textContent === '2'`)
		if after := b.rects("the first offer and Maria's conversation after", `#offers li.item [data-action="accept"]`, `#mine li.item`); after != before {
			t.Errorf("at %s px the second offer moved what was under the pointer: %s → %s", width, before, after)
		}
		b.until("the second offer within reach by scrolling the offers", `(() => { const o = document.querySelector('#offers');
			return o.scrollHeight > o.clientHeight && getComputedStyle(o).overflowY === 'auto'; })()`)
		b.shot("second-offer-" + width)
		for n := 1; n >= 0; n-- {
			b.click("decline an offer", `#offers li.item[data-state="offered"] [data-action="decline"]`)
			b.until("one offer fewer", fmt.Sprintf(`document.querySelectorAll('#offers li.item').length === %d`, n))
		}
	})
}

// TestLanguageMenuFitsAPhoneInTheBrowser: at 360 px the language menu of every page shows its
// language's whole name ("Português" was cut to "Portuguê"), and says what it is to a screen reader.
func TestLanguageMenuFitsAPhoneInTheBrowser(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	tg := startTestGateway(t, cfg, nil)
	supervisor, admin := cliToken(t, "supervisor", "supervisor"), cliToken(t, "ops", "admin")
	for _, page := range []string{"/console/", "/wallboard/", "/reports/", "/ops/"} {
		b := newBrowserIn(t, "pt-BR") // a browser each: one page's sign-in would carry to the next
		b.run("a phone's width", chromedp.EmulateViewport(360, 740))
		switch page { // signed in, with every button of the top bar beside the menu
		case "/console/":
			b.signIn(tg.base, page, "ana")
			b.until("the stream is open", `document.querySelector('#stream-state').textContent.startsWith('●')`)
		case "/ops/":
			b.signInWithToken(tg.base, page, admin)
		default:
			b.signInWithToken(tg.base, page, supervisor)
		}
		b.until("signed in", `!document.querySelector('#sign-out').hidden`)
		for _, lang := range []string{"en", "pt-BR"} {
			b.eval("choose "+lang, `(() => { const s = document.querySelector('#lang'); s.value = `+jsString(lang)+`; s.dispatchEvent(new Event('change')); return s.value; })()`)
			b.until(page+" in "+lang+": the menu as wide as its text needs, its name said", `(() => { const s = document.querySelector('#lang');
				const shown = s.getBoundingClientRect().width;
				s.style.cssText = 'max-width: none; min-width: 0; flex: none'; // the width its own text asks for
				const needed = s.getBoundingClientRect().width;
				s.style.cssText = '';
				return s.scrollWidth <= s.clientWidth && shown >= needed - 0.5 && s.labels[0]?.textContent.trim() !== ''; })()`)
		}
		b.shot("language-menu-360-" + strings.Trim(page, "/"))
	}
}

// atDeskAndPhoneWidths runs check at a desk's width and at a phone's (the list of conversations in
// view there), each time with no offer shown.
func (b *browser) atDeskAndPhoneWidths(check func(i int, width string)) {
	for i, vp := range []struct {
		name string
		w, h int64
	}{{"1280", 1280, 900}, {"360", 360, 740}} {
		b.run(vp.name, chromedp.EmulateViewport(vp.w, vp.h))
		if vp.w == 360 {
			b.click("back to the list", "#thread-back")
		}
		b.until("no offer", `document.querySelectorAll('#offers li.item').length === 0`)
		check(i, vp.name)
	}
}
