package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
)

// boardChannel is the wallboard's row of an agent's channel.
func boardChannel(agent, channel string) string {
	return fmt.Sprintf(`document.querySelector('li.board-agent[data-agent=%q] li.board-channel[data-channel=%q]')`, agent, channel)
}

// boardChannelIs: the row is in that state, in its colour, and its words say includes.
func boardChannelIs(agent, channel, state, includes string) string {
	colour := map[string]string{"offline": grey, "online": green, "paused": orange}[state]
	return fmt.Sprintf(`(() => { const r = %s;
		return r?.dataset.state === %q && getComputedStyle(r).backgroundColor === %q && r.querySelector('[data-words]').textContent.includes(%q); })()`,
		boardChannel(agent, channel), state, colour, includes)
}

// TestWallboardInTheBrowser: a supervisor's wallboard follows an agent going online, pausing with a
// reason, taking a card, and being force-paused from the wallboard itself (with who did it recorded),
// then logged out after a confirmation; in both languages, with no serious accessibility violation.
func TestWallboardInTheBrowser(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	tg := startTestGateway(t, cfg, nil)
	ana := mintFor(t, cfg, "ana")
	supervisor := cliToken(t, "supervisor", "supervisor")
	put := func(state, reason string) {
		t.Helper()
		body := fmt.Sprintf(`{"state":%q,"reason":%q}`, state, reason)
		if code, raw := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(body)); code != 200 {
			t.Fatalf("ana %s: %d %s", state, code, raw)
		}
	}

	b := newBrowser(t)
	b.signInWithToken(tg.base, "/wallboard/", supervisor)
	b.until("every agent is on the board, offline in grey", boardChannelIs("ana", "whatsapp", "offline", "Offline")+
		` && document.querySelectorAll('li.board-agent').length === 3`)
	b.until("the queues are listed, open", `document.querySelector('#queues tr[data-queue="sales"][data-channel="whatsapp"]')?.dataset.open === 'true'`)
	b.shot("offline")

	put("online", "")
	b.until("ana online, in green", boardChannelIs("ana", "whatsapp", "online", "Online"))
	put("paused", "lunch")
	b.until("ana paused, in orange, with her reason", boardChannelIs("ana", "whatsapp", "paused", "Lunch"))
	b.shot("paused-lunch")
	put("online", "")
	b.until("ana back online", boardChannelIs("ana", "whatsapp", "online", "Online"))

	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi, tudo bem?"})
	b.until("the offer on ana's row", `document.querySelector('li.board-agent[data-agent="ana"] li.board-card[data-state="offered"] .who')?.textContent === 'Maria'`)
	code, raw := do(t, "GET", tg.base+"/v1/agents/me/cards", ana, nil)
	var cards struct {
		Cards []struct {
			ID string `json:"id"`
		} `json:"cards"`
	}
	if err := json.Unmarshal(raw, &cards); err != nil || code != 200 || len(cards.Cards) != 1 {
		t.Fatalf("ana's cards: %d %s", code, raw)
	}
	if code, raw := do(t, "POST", tg.base+"/v1/cards/"+cards.Cards[0].ID+"/accept", ana, nil); code != 200 {
		t.Fatalf("accept: %d %s", code, raw)
	}
	b.until("ana took the card: in progress, load 1/3", `(() => { const a = document.querySelector('li.board-agent[data-agent="ana"]');
		return a.querySelector('li.board-card[data-state="accepted"] .who')?.textContent === 'Maria'
			&& a.querySelector('li.board-channel[data-channel="whatsapp"] [data-load]').textContent === '1/3'; })()`)
	b.axe("wallboard")
	b.shotBoth("taking-a-card")
	// The same board from the API (validated against the OpenAPI document like every answer here).
	code, raw = do(t, "GET", tg.base+"/v1/supervisor/wallboard", supervisor, nil)
	if code != 200 || !strings.Contains(string(raw), `"contact":"Maria"`) || !strings.Contains(string(raw), `"open":true`) {
		t.Fatalf("wallboard: %d %s", code, raw)
	}
	if code, _ := do(t, "GET", tg.base+"/v1/supervisor/wallboard", ana, nil); code != 403 {
		t.Fatalf("an agent read the wallboard: %d", code)
	}

	// The supervisor pauses ana from the wallboard, choosing the reason in the dialog.
	b.click("pause ana's WhatsApp", `li.board-agent[data-agent="ana"] li.board-channel[data-channel="whatsapp"] button[data-pause]`)
	b.until("the dialog names ana and WhatsApp", `document.querySelector('#pause-dialog').open && document.querySelector('#pause-title').textContent.includes('WhatsApp')`)
	b.axe("pause dialog")
	b.click("choose Training", `#wb-reason-training`)
	b.click("confirm the pause", `#pause-form button[data-submit]`)
	b.until("ana force-paused, in orange, with the supervisor's reason; the queue counts her paused", boardChannelIs("ana", "whatsapp", "paused", "Training")+
		` && !document.querySelector('#pause-dialog').open
		&& document.querySelector('#queues tr[data-queue="sales"][data-channel="whatsapp"] [data-col="paused"]').textContent === '1'
		&& document.querySelector('#queues tr[data-queue="sales"][data-channel="whatsapp"] [data-col="available"]').textContent === '0'`)
	b.shot("force-paused")
	code, raw = do(t, "GET", tg.base+"/v1/agents/ana/presence/history", supervisor, nil)
	var hist struct {
		Changes []struct {
			To, Reason, By string
		} `json:"changes"`
	}
	if err := json.Unmarshal(raw, &hist); err != nil || code != 200 || len(hist.Changes) == 0 {
		t.Fatalf("history: %d %s", code, raw)
	}
	if last := hist.Changes[len(hist.Changes)-1]; last.To != "paused" || last.Reason != "training" || last.By != "supervisor" {
		t.Fatalf("the force pause was recorded as %+v, want paused/training by supervisor", last)
	}
	if state := serverState(t, tg.base, ana, "whatsapp"); state != "paused" {
		t.Fatalf("server says ana's WhatsApp is %s", state)
	}

	// In Portuguese, from the switch.
	b.eval("switch to Portuguese", `(() => { const s = document.querySelector('#lang'); s.value = 'pt-BR'; s.dispatchEvent(new Event('change')); return s.value; })()`)
	b.until("the board in Portuguese", boardChannelIs("ana", "whatsapp", "paused", "Treinamento")+
		` && document.querySelector('#queues th').textContent === 'fila'`)
	b.axe("wallboard in Portuguese")
	b.shotBoth("force-paused-pt-BR")

	// Logging ana out asks first; Cancel changes nothing, Desconectar logs her out and Maria goes
	// back to the front of the line.
	logout := `li.board-agent[data-agent="ana"] li.board-channel[data-channel="whatsapp"] button[data-logout]`
	b.click("log ana out", logout)
	b.until("the confirmation says what happens to her conversation", `document.querySelector('#confirm-dialog').open
		&& document.querySelector('#confirm-text').textContent.includes('1 conversa')`)
	b.click("cancel", `#confirm-dialog button[data-confirm-cancel]`)
	b.until("nothing changed", `!document.querySelector('#confirm-dialog').open`)
	if state := serverState(t, tg.base, ana, "whatsapp"); state != "paused" {
		t.Fatalf("cancel changed ana's state to %s", state)
	}
	b.click("log ana out again", logout)
	b.click("confirm", `#confirm-dialog button[data-confirm-ok]`)
	b.until("ana offline, Maria waiting in the queue", boardChannelIs("ana", "whatsapp", "offline", "Offline")+
		` && document.querySelector('#queues tr[data-queue="sales"][data-channel="whatsapp"] [data-col="waiting"]').textContent === '1'`)
	b.shot("logged-out")
}

// TestWallboardTilesKeepTheirSizeInTheBrowser: conversations arriving on an agent's tile scroll
// within a box of fixed height, so no tile grows and none below moves under the supervisor's
// pointer, at a desk's width and at a phone's (where the tiles stand one above the other).
func TestWallboardTilesKeepTheirSizeInTheBrowser(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	tg := startTestGateway(t, cfg, nil)
	ana := mintFor(t, cfg, "ana")
	if code, raw := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("ana online: %d %s", code, raw)
	}
	b := newBrowser(t)
	b.signInWithToken(tg.base, "/wallboard/", cliToken(t, "supervisor", "supervisor"))
	b.until("ana online, no conversation", boardChannelIs("ana", "whatsapp", "online", "Online")+
		` && document.querySelectorAll('li.board-agent').length === 3`)
	tiles := []string{`li.board-agent[data-agent="ana"]`, `li.board-agent[data-agent="bruno"]`, `li.board-agent[data-agent="carla"]`,
		`li.board-agent[data-agent="bruno"] button[data-pause]`}
	sizes := []struct {
		name string
		w, h int64
	}{{"1280", 1280, 900}, {"360", 360, 740}}
	before := map[string]string{}
	for _, vp := range sizes {
		b.run(vp.name, chromedp.EmulateViewport(vp.w, vp.h))
		before[vp.name] = b.rects("the tiles at "+vp.name+" px before", tiles...)
	}
	for i, name := range []string{"Maria", "Joana", "Pedro", "Lucia"} {
		postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: fmt.Sprintf("+55119999903%02d", i), Name: name, Text: "Oi"})
	}
	b.until("three conversations on ana's tile", `document.querySelectorAll('li.board-agent[data-agent="ana"] li.board-card').length === 3`)
	for _, vp := range []string{"360", "1280"} {
		w := map[string]int64{"360": 360, "1280": 1280}[vp]
		b.run(vp, chromedp.EmulateViewport(w, map[string]int64{"360": 740, "1280": 900}[vp]))
		if after := b.rects("the tiles at "+vp+" px after", tiles...); after != before[vp] {
			t.Errorf("at %s px the conversations moved the tiles: %s → %s", vp, before[vp], after)
		}
		b.shot("tiles-with-conversations-" + vp)
	}
	b.axe("wallboard with conversations")
}
