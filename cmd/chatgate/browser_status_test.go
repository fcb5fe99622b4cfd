package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

// lastWamid waits for the fake provider's newest accepted send to a recipient and returns its id.
func lastWamid(t *testing.T, fake *fakeapi.Server, recipient string, n int) string {
	t.Helper()
	var ids []string
	testutil.EventuallyNoError(t, 10*time.Second, fmt.Sprintf("%d sends to %s", n, recipient), func() error {
		ids = ids[:0]
		for _, c := range fake.Calls() {
			if c.Recipient == recipient {
				ids = append(ids, c.MessageID)
			}
		}
		if len(ids) != n {
			return fmt.Errorf("%d sends", len(ids))
		}
		return nil
	})
	return ids[n-1]
}

// The console's per-channel colours, a declined card, and the later statuses of sent messages
// (delivered, read, played, deleted, failed with the provider's reason) as WhatsApp's status
// webhooks report them, each as a tick and words.
func TestConsoleStatusesDeclineAndChannelColoursInTheBrowser(t *testing.T) {
	fake := startFakeWhatsApp(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL()})
	tg := startTestGateway(t, cfg, nil)
	ana := mintFor(t, cfg, "ana")
	b := newBrowser(t)

	b.signIn(tg.base, "/console/", "ana")
	b.until("rows grey while offline", `!!document.querySelector('li.channel') && `+channelIs("whatsapp", "offline")+" && "+channelIs("webchat", "offline"))
	b.click("log in on WhatsApp", `button[data-toggle="whatsapp"]`)
	b.until("WhatsApp's row green, WebChat's grey", channelIs("whatsapp", "online")+" && "+channelIs("webchat", "offline"))
	b.click("log in on WebChat", `button[data-toggle="webchat"]`)
	b.until("both rows green", channelIs("whatsapp", "online")+" && "+channelIs("webchat", "online"))
	b.until("the event stream is open", `document.querySelector('#stream-state').textContent === '● live'`)
	b.shot("rows-green")
	b.click("close the channel panel", `#indicator`)

	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990004", Name: "Rui", Text: "Quero cancelar"})
	b.until("Rui's card", `document.querySelector('#offers li.item[data-state="offered"] .who')?.textContent.startsWith('Rui')`)
	declined := b.eval("the card's id", `document.querySelector('#offers li.item[data-state="offered"]').dataset.cardId`)
	b.click("decline", `#offers li.item[data-state="offered"] button[data-action="decline"]`)
	b.until("the declined card leaves the page", fmt.Sprintf(`!document.querySelector('li.item[data-card-id=%q]')`, declined))
	// Never offered to ana again, and nobody else is online: it waits in sales.
	if n := waitingIn(t, tg.base, ana, "sales", "whatsapp"); n != 1 {
		t.Fatalf("%d waiting after the decline, want 1", n)
	}
	b.shot("declined")

	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi"})
	b.until("Maria's card", `[...document.querySelectorAll('#offers li.item[data-state="offered"] .who')].some((h) => h.textContent.startsWith('Maria'))`)
	b.click("accept", `#offers li.item[data-state="offered"] button[data-action="accept"]`)
	reply := func(n int, text string) string {
		b.type_("write reply", `#reply`, text)
		b.click("send reply", `#send`)
		b.until("reply sent", fmt.Sprintf(`document.querySelectorAll('#messages li.out[data-status="sent"]').length === %d`, n))
		return lastWamid(t, fake, "5511999990001", n)
	}
	first := reply(1, "Olá Maria")
	second := reply(2, "Pode me dizer o pedido?")
	status := func(wamid, state string) {
		postSigned(t, tg.base, cfg, simulate.WhatsAppStatusNotification(simulate.WhatsAppStatus{PhoneNumberID: "100200300",
			MessageID: wamid, Status: state, RecipientID: "+5511999990001", ErrorCode: 131049,
			ErrorTitle: "Message not delivered to maintain healthy ecosystem engagement", At: time.Now()}))
	}
	out := func(i int) string { return fmt.Sprintf(`document.querySelectorAll('#messages li.out')[%d]`, i) }
	shown := func(i int, tick, words string) string {
		return fmt.Sprintf(`%s.querySelector('.tick').textContent === %q && %s.querySelector('[data-status-words]').textContent === %q`, out(i), tick, out(i), words)
	}
	status(first, "delivered")
	b.until("delivered shown", shown(0, "✓✓", "delivered"))
	b.shot("delivered")
	status(first, "read")
	b.until("read shown", shown(0, "✓✓", "read")+` && getComputedStyle(`+out(0)+`.querySelector('.tick')).color === 'rgb(29, 78, 216)'`)
	b.shot("read")
	status(first, "played")
	b.until("played shown", shown(0, "✓✓", "played"))
	status(first, "deleted")
	b.until("the deletion shown beside the status", shown(0, "✓✓", "played · deleted from the chat"))
	status(second, "failed")
	// What Meta's code means, in the page's words; the code and Meta's title only on the element, for support.
	b.until("failed, with what Meta's reason means", shown(1, "!", "not sent")+` && `+out(1)+`.querySelector('[data-error]').textContent === "Not sent: WhatsApp held the message back to protect the customer's experience. Try later."
		&& `+out(1)+`.querySelector('[data-error]').dataset.provider === '131049 Message not delivered to maintain healthy ecosystem engagement'
		&& `+out(1)+`.querySelector('[data-status]').classList.contains('failed')`)
	b.axe("failed")
	b.shot("failed")

	// A refusal the gateway explains (the number's access): its sentence in the page's language only.
	if _, err := fake.AddRule(fakeapi.RejectRecipient("+5511999990001", 190)); err != nil {
		t.Fatal(err)
	}
	b.type_("write a reply the provider refuses", `#reply`, "Ainda aí?")
	b.click("send it", `#send`)
	b.until("refused, in English only, without a code", `!!`+out(2)+`?.querySelector('[data-error]') && `+shown(2, "!", "not sent")+`
		&& `+out(2)+`.querySelector('[data-error]').textContent === "WhatsApp refused the sending number's access; tell an administrator."
		&& `+out(2)+`.querySelector('[data-error]').dataset.provider.startsWith('190 ')`)
}
