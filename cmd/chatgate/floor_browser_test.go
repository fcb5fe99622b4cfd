package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
)

// floorWords are what the floor's parts of the desk say in one language.
type floorWords struct {
	lang, browser                                 string
	queue, choose, confirm, done, badge, received string
	note, dispositions, chooseOutcome, wrapUp     string
}

var floorDesks = []floorWords{
	{lang: "pt-BR", browser: "pt-BR", queue: "Fila Sales", choose: "Escolha para quem transferir.", confirm: "Transferir para Bruno?",
		done: "transferida para Bruno", badge: "↪ de Ana", received: "Ana transferiu para você a conversa com Maria",
		note: "Transferida por Ana: “Cliente VIP, troca de tamanho”", dispositions: "Resolvido|Venda realizada|Cliente não respondeu",
		chooseOutcome: "Escolha o resultado do atendimento.", wrapUp: "Finalizando atendimento no WhatsApp"},
	{lang: "en", browser: "en-US", queue: "Queue Sales", choose: "Choose whom to transfer it to.", confirm: "Transfer to Bruno?",
		done: "transferred to Bruno", badge: "↪ from Ana", received: "Ana transferred the conversation with Maria to you",
		note: "Transferred by Ana: “Cliente VIP, troca de tamanho”", dispositions: "Resolved|Sale made|Customer left",
		chooseOutcome: "Choose the outcome.", wrapUp: "Wrapping up on WhatsApp"},
}

// TestConsoleTransferAndWrapUpInTheBrowser runs the floor between two consoles (ana and bruno, in
// two tabs): ana transfers Maria's conversation to bruno with a note, after a confirmation; it
// leaves ana's list and arrives in bruno's as an offer that says who transferred it by her name, and the note
// shows in bruno's thread. Bruno closes it: the close dialog lists the queue's dispositions in the
// console's language and refuses a close without one; after it, bruno's WhatsApp wraps up with a
// countdown, a new customer waits meanwhile, and "End now" brings that customer to bruno at once.
// In both languages.
func TestConsoleTransferAndWrapUpInTheBrowser(t *testing.T) {
	for _, w := range floorDesks {
		t.Run(w.lang, func(t *testing.T) {
			fake := startFakeWhatsApp(t)
			cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL()})
			cfg.Queues[0].WrapUp = 10 * time.Minute // ended early in the test: no test waits for it
			cfg.Queues[0].RequireDisposition = true
			tg := startTestGateway(t, cfg, nil)
			bruno := mintFor(t, cfg, "bruno")

			a := newBrowserIn(t, w.browser)
			a.signIn(tg.base, "/console/", "ana")
			a.until("ana's stream is open", `document.querySelector('#stream-state').textContent.startsWith('●')`)
			a.click("ana logs in on WhatsApp", `button[data-toggle="whatsapp"]`)
			a.until("ana online", channelIs("whatsapp", "online"))
			a.click("close ana's channel panel", `#indicator`)
			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Quero trocar um produto"})
			a.until("Maria's offer to ana", offerOf("Maria")+` !== undefined`)
			a.click("ana accepts", `#offers li.item[data-state="offered"] [data-action="accept"]`)
			a.until("Maria's thread with Transfer", `document.querySelector('#thread-title').textContent.startsWith('Maria') && !document.querySelector('#thread-transfer').hidden`)

			b := a.newTab()
			b.signIn(tg.base, "/console/", "bruno")
			b.until("bruno's stream is open", `document.querySelector('#stream-state').textContent.startsWith('●')`)
			b.click("bruno logs in on WhatsApp", `button[data-toggle="whatsapp"]`)
			b.until("bruno online", channelIs("whatsapp", "online"))
			b.click("close bruno's channel panel", `#indicator`)

			// ana transfers to bruno, with a note and a confirmation.
			a.click("Transfer", `#thread-transfer`)
			a.until("the transfer dialog lists bruno as available and the queue", fmt.Sprintf(`document.querySelector('#transfer-dialog').open
				&& !document.querySelector('#transfer-to option[value="agent:bruno"]').disabled
				&& document.querySelector('#transfer-to option[value="queue:sales"]').textContent === %q`, w.queue))
			a.click("transfer without choosing", `#transfer-form button[type=submit]`)
			a.until("asked to choose", fmt.Sprintf(`document.querySelector('#transfer-form [data-field="to_agent"]').textContent === %q`, w.choose))
			a.axe("transfer dialog")
			a.shotBoth("transfer-dialog")
			a.eval("choose bruno", `(() => { const s = document.querySelector('#transfer-to'); s.value = 'agent:bruno'; s.dispatchEvent(new Event('change')); return s.value; })()`)
			a.type_("a note", `#transfer-note`, "Cliente VIP, troca de tamanho")
			a.click("transfer", `#transfer-form button[type=submit]`)
			a.until("the confirmation names bruno", fmt.Sprintf(`document.querySelector('#confirm-dialog').open && document.querySelector('#confirm-title').textContent === %q`, w.confirm))
			a.click("confirm", `[data-confirm-ok]`)
			a.until("Maria left ana's list, and ana is told", mineOf("Maria")+fmt.Sprintf(` === undefined && document.querySelector('#notice').textContent.includes(%q)`, w.done))

			b.until("bruno is offered Maria, saying ana transferred it", fmt.Sprintf(`(() => { const c = %s;
				return c && c.querySelector('[data-transfer]')?.textContent === %q; })()`, offerOf("Maria"), w.badge))
			b.until("and told so", fmt.Sprintf(`document.querySelector('#notice').textContent.includes(%q)`, w.received))
			b.click("bruno accepts", `#offers li.item[data-state="offered"] [data-action="accept"]`)
			b.until("the history and the note in bruno's thread", fmt.Sprintf(`document.querySelector('#thread-title').textContent.startsWith('Maria')
				&& document.querySelector('#messages li.msg.in [data-text]')?.textContent === 'Quero trocar um produto'
				&& !document.querySelector('#thread-transfer-note').hidden
				&& document.querySelector('#thread-transfer-note').textContent === %q`, w.note))
			b.axe("transferred conversation")
			b.shotBoth("transferred-conversation")

			// Close with a disposition: required here, offered in Portuguese.
			b.click("close", `#thread-close`)
			b.until("the dispositions in the console's language", fmt.Sprintf(`document.querySelector('#close-dialog').open
				&& [...document.querySelectorAll('#close-form label[for^="dispo-"]')].map((l) => l.textContent).join('|') === %q`, w.dispositions))
			b.click("close without one", `#close-form button[type=submit]`)
			b.until("asked for one", fmt.Sprintf(`document.querySelector('#close-form [data-field="disposition"]').textContent === %q && document.querySelector('#close-dialog').open`, w.chooseOutcome))
			b.axe("close dialog")
			b.shotBoth("close-dialog")
			b.click("choose Resolvido", `#dispo-resolved`)
			b.type_("a note", `#close-note`, "Troca feita")
			b.click("close it", `#close-form button[type=submit]`)
			b.until("closed, and the wrap-up counts down", mineOf("Maria")+fmt.Sprintf(`?.dataset.state === 'closed'
				&& document.querySelector('#wrapups li[data-channel="whatsapp"] [data-wrapup-text]')?.textContent.startsWith(%q)`, w.wrapUp))
			code, body := do(t, "GET", tg.base+"/v1/agents/me/presence", bruno, nil)
			if code != 200 || !strings.Contains(string(body), `"wrap_up_until"`) {
				t.Fatalf("bruno's presence during the wrap-up: %d %s", code, body)
			}
			b.axe("wrap-up")
			b.shotBoth("wrap-up")

			// ana leaves WhatsApp; a customer writes: nobody takes it while bruno wraps up.
			a.click("open ana's channel panel", `#indicator`)
			a.click("ana logs out of WhatsApp", `button[data-toggle="whatsapp"]`)
			a.until("ana offline", channelIs("whatsapp", "offline"))
			postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990003", Name: "Joana", Text: "Bom dia"})
			code, body = do(t, "GET", tg.base+"/v1/queues", bruno, nil)
			if code != 200 || !strings.Contains(string(body), `"channel":"whatsapp","waiting":1`) {
				t.Fatalf("Joana should wait while bruno wraps up: %d %s", code, body)
			}
			b.click("End now", `#wrapups [data-end-wrapup="whatsapp"]`)
			b.until("the wrap-up bar gone and Joana offered to bruno", `document.querySelector('#wrapups').children.length === 0 && `+offerOf("Joana")+` !== undefined`)

			if text := b.eval("bruno's words", `document.body.innerText`); strings.Contains(text, "/v1/") || strings.Contains(text, "agent_not_available") || strings.Contains(text, "wrap_up") {
				t.Errorf("the page shows API words: %s", text)
			}
		})
	}
}
