package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestOpsIntegrationsInTheBrowser: a subscription whose receiver fails (503), with a short max_age, so two
// customers' conversation.opened events are dead-lettered; the ops page shows the subscription
// unhealthy with both dead letters in words; Retry (the receiver now answering 204) delivers one
// with its webhook-id, Delete (after a confirmation, which Keep it cancels first) removes the other;
// Enable clears the failures first.
func TestOpsIntegrationsInTheBrowser(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var mu sync.Mutex
	var delivered []string // webhook-ids acknowledged
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		delivered = append(delivered, r.Header.Get("webhook-id"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	fake := startFakeWhatsApp(t) // the welcome replies go to it, not to Meta
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL()})
	cfg.Integrations.Webhooks = append(cfg.Integrations.Webhooks, configs.Webhook{ID: "crm", URL: recv.URL + "/events",
		Secret: "whsec_" + base64.StdEncoding.EncodeToString([]byte("a-test-secret-of-32-bytes-long!!")),
		Events: []string{"conversation.opened"}, Timeout: 2 * time.Second, MaxAge: 8 * time.Second, Workers: 2})
	cfg.Integrations.RetainEvents = time.Hour
	tg := startTestGateway(t, cfg, nil)
	admin := cliToken(t, "ops", "admin")

	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi"})
	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990003", Name: "Joana", Text: "Bom dia"})
	type deadLetter struct {
		ID, Type, Error string
		ConversationID  string `json:"conversation_id"`
	}
	var dead []deadLetter
	testutil.Eventually(t, 40*time.Second, "both events dead-lettered", func() bool {
		code, body := do(t, "GET", tg.base+"/v1/ops/integrations/crm/dead-letters", admin, nil)
		var r struct {
			DeadLetters []deadLetter `json:"dead_letters"`
		}
		if code != 200 || json.Unmarshal(body, &r) != nil {
			return false
		}
		dead = r.DeadLetters
		return len(dead) == 2
	})
	for _, d := range dead {
		if d.Type != "conversation.opened" || d.ConversationID == "" || !strings.Contains(d.Error, "max_age") {
			t.Fatalf("dead letter: %+v", d)
		}
	}
	retried, deleted := dead[0], dead[1]

	b := newBrowser(t)
	b.signInWithToken(tg.base, "/ops/", admin)
	sub := `document.querySelector('[data-subscription="crm"]')`
	row := func(id string) string { return fmt.Sprintf(`document.querySelector('tr[data-dead-letter=%q]')`, id) }
	b.until("the subscription, unhealthy, with its two dead letters in words", sub+`?.dataset.state === 'unhealthy'
		&& `+sub+`.querySelector('h3').textContent.startsWith('crm → 127.0.0.1:')
		&& `+sub+`.querySelector('[data-col="state"]').textContent === 'Failing continuously'
		&& `+sub+`.querySelector('[data-col="last_error"]').textContent.includes('(HTTP 503)')
		&& `+sub+`.querySelectorAll('tbody tr').length === 2
		&& `+row(retried.ID)+`.textContent.includes('conversation.opened') && `+row(retried.ID)+`.textContent.includes('`+retried.ConversationID+`')
		&& `+row(retried.ID)+`.querySelector('[data-col="error"]').textContent === 'the receiver did not acknowledge it within the retry period'
		&& /\d+ (s|min) ago/.test(`+row(retried.ID)+`.textContent)`)
	scroll := func() {
		b.eval("show the section", `(document.querySelector('#integrations-title').scrollIntoView(), '')`)
	}
	scroll()
	b.axe("ops integrations")
	b.shotBoth("integrations-dead")
	scroll()
	b.eval("switch to Portuguese", `(() => { const s = document.querySelector('#lang'); s.value = 'pt-BR'; s.dispatchEvent(new Event('change')); return s.value; })()`)
	b.until("the section in Portuguese", sub+`?.querySelector('[data-col="state"]').textContent === 'Com falhas seguidas'
		&& `+row(retried.ID)+`?.querySelector('[data-col="error"]').textContent === 'o destino não confirmou dentro do prazo máximo de tentativas'
		&& document.querySelector('button[data-retry-dead="`+retried.ID+`"]').textContent === 'Tentar agora'`)
	b.axe("ops integrations in Portuguese")
	scroll()
	b.shot("integrations-dead-pt-BR")
	b.eval("back to English", `(() => { const s = document.querySelector('#lang'); s.value = 'en'; s.dispatchEvent(new Event('change')); return s.value; })()`)
	// the section is drawn again in English: click only once it is
	b.until("the section in English again", sub+`?.querySelector('[data-col="state"]').textContent !== 'Com falhas seguidas'
		&& document.querySelector('button[data-retry-dead="`+retried.ID+`"]')?.textContent !== 'Tentar agora'`)

	// Enable clears the failures; the keyboard's place goes to the subscription's heading.
	b.click("enable the subscription", `button[data-enable="crm"]`)
	b.until("healthy, without Enable, the dead letters kept", sub+`.dataset.state === 'healthy' && !document.querySelector('button[data-enable="crm"]')
		&& `+sub+`.querySelector('[data-col="state"]').textContent === 'Healthy' && `+sub+`.querySelectorAll('tbody tr').length === 2
		&& document.activeElement === `+sub+`.querySelector('h3')`)

	// Retry, with the receiver back: the event is delivered, with its webhook-id, and leaves the list.
	failing.Store(false)
	b.click("retry a dead letter", `button[data-retry-dead="`+retried.ID+`"]`)
	b.until("it left the list", `!`+row(retried.ID)+` && `+row(deleted.ID)+` !== null`)
	testutil.Eventually(t, 10*time.Second, "the retried event delivered with its webhook-id", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == 1 && delivered[0] == retried.ID
	})

	// Delete asks first: Keep it changes nothing; Delete the event removes it.
	b.click("delete a dead letter", `button[data-delete-dead="`+deleted.ID+`"]`)
	b.until("the confirmation is open", `document.querySelector('#confirm-dialog').open
		&& document.querySelector('#confirm-title').textContent === 'Delete the conversation.opened event?'`)
	b.axe("ops delete confirmation")
	b.shot("integrations-confirm-delete")
	b.click("keep it", `#confirm-dialog [data-confirm-cancel]`)
	b.until("still listed", `!document.querySelector('#confirm-dialog').open && `+row(deleted.ID)+` !== null`)
	b.click("delete a dead letter again", `button[data-delete-dead="`+deleted.ID+`"]`)
	b.click("confirm the deletion", `#confirm-dialog [data-confirm-ok]`)
	b.until("no dead letters left", sub+`.querySelectorAll('tbody tr').length === 0 && `+sub+`.textContent.includes('No dead letters.')`)
	if code, body := do(t, "DELETE", tg.base+"/v1/ops/integrations/crm/dead-letters/"+deleted.ID, admin, nil); code != 404 {
		t.Errorf("the deleted dead letter is still there: %d %s", code, body)
	}
	mu.Lock()
	if len(delivered) != 1 {
		t.Errorf("the deleted event was delivered: %v", delivered)
	}
	mu.Unlock()

	b.until("still healthy", sub+`.dataset.state === 'healthy' && !document.querySelector('button[data-enable="crm"]')`)
	scroll()
	b.shot("integrations-clean")
}
