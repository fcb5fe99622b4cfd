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

func dotIs(channel, colour string) string {
	return fmt.Sprintf(`getComputedStyle(document.querySelector('li.channel[data-channel=%q] .dot')).backgroundColor === %q`, channel, colour)
}

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

// The console's per-channel dots, a declined card, and the later statuses of sent messages
// (delivered, read, failed with the provider's reason) as WhatsApp's status webhooks report them.
func TestConsoleStatusesDeclineAndDotsInTheBrowser(t *testing.T) {
	fake := startFakeWhatsApp(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL()})
	tg := startTestGateway(t, cfg, nil)
	ana := mintFor(t, cfg, "ana")
	b := newBrowser(t)

	b.signIn(tg.base, "/console/", "ana")
	b.until("dots grey while offline", `!!document.querySelector('li.channel .dot') && `+dotIs("whatsapp", grey)+" && "+dotIs("webchat", grey))
	b.click("log in on WhatsApp", `input[data-toggle="whatsapp"]`)
	b.until("WhatsApp's dot green, WebChat's grey", dotIs("whatsapp", green)+" && "+dotIs("webchat", grey))
	b.click("log in on WebChat", `input[data-toggle="webchat"]`)
	b.until("both dots green", dotIs("whatsapp", green)+" && "+dotIs("webchat", green))
	b.until("the event stream is open", `document.querySelector('#stream-state').textContent === '● live'`)
	b.shot("dots-green")

	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990004", Name: "Rui", Text: "Quero cancelar"})
	b.until("Rui's card", `document.querySelector('.card[data-state="offered"] h3')?.textContent.startsWith('Rui')`)
	declined := b.eval("the card's id", `document.querySelector('.card[data-state="offered"]').dataset.cardId`)
	b.click("decline", `.card[data-state="offered"] button[data-action="decline"]`)
	b.until("the declined card leaves the page", fmt.Sprintf(`!document.querySelector('.card[data-card-id=%q]')`, declined))
	// Never offered to ana again, and nobody else is online: it waits in sales.
	if n := waitingIn(t, tg.base, ana, "sales", "whatsapp"); n != 1 {
		t.Fatalf("%d waiting after the decline, want 1", n)
	}
	b.shot("declined")

	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi"})
	b.until("Maria's card", `[...document.querySelectorAll('.card[data-state="offered"] h3')].some((h) => h.textContent.startsWith('Maria'))`)
	b.click("accept", `.card[data-state="offered"] button[data-action="accept"]`)
	reply := func(n int, text string) string {
		b.type_("write reply", `.card[data-state="accepted"] form[data-reply] input[name=text]`, text)
		b.click("send reply", `.card[data-state="accepted"] form[data-reply] button[type=submit]`)
		b.until("reply sent", fmt.Sprintf(`document.querySelectorAll('.messages li.out[data-status="sent"]').length === %d`, n))
		return lastWamid(t, fake, "5511999990001", n)
	}
	first := reply(1, "Olá Maria")
	second := reply(2, "Pode me dizer o pedido?")
	status := func(wamid, state string) {
		postSigned(t, tg.base, cfg, simulate.WhatsAppStatusNotification(simulate.WhatsAppStatus{PhoneNumberID: "100200300",
			MessageID: wamid, Status: state, RecipientID: "+5511999990001", ErrorCode: 131049,
			ErrorTitle: "Message not delivered to maintain healthy ecosystem engagement", At: time.Now()}))
	}
	shown := func(i int) string {
		return fmt.Sprintf(`document.querySelectorAll('.messages li.out')[%d].querySelector('[data-status]').textContent`, i)
	}
	status(first, "delivered")
	b.until("delivered shown", shown(0)+` === 'delivered'`)
	b.shot("delivered")
	status(first, "read")
	b.until("read shown", shown(0)+` === 'read'`)
	b.shot("read")
	status(first, "played")
	b.until("played shown", shown(0)+` === 'played'`)
	status(first, "deleted")
	b.until("the deletion shown beside the status", shown(0)+` === 'played · deleted'`)
	status(second, "failed")
	b.until("failed with the reason shown", shown(1)+` === 'failed: 131049 Message not delivered to maintain healthy ecosystem engagement'
		&& document.querySelectorAll('.messages li.out')[1].querySelector('[data-status]').classList.contains('failed')`)
	b.shot("failed")
}
