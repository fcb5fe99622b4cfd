package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
	"github.com/chatgate/chatgate/routing"
)

// A reply Meta answers with 130429 on every attempt ends failed once the task's retries run out:
// the stored message and the agent's message.status event carry Meta's code, title and message and
// a plain sentence naming the attempts (no HTTP status, trace id or Go error), and the next reply of
// the conversation goes only after that failure is shown.
func TestThrottledToTheEndThroughTheGateway(t *testing.T) {
	const throttledText, nextText = "Seu pedido saiu para entrega", "Chega amanhã"
	const details = "Cloud API message throughput has been reached."
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	cfg.Outbound.MaxRetry = 2 // three attempts
	cfg.Outbound.RetryBase, cfg.Outbound.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	fake := fakeapi.New(fakeapi.Options{Numbers: map[string]string{"100200300": cfg.WhatsApp.Numbers[0].AccessToken}})
	// Meta's answer to a send over the number's throughput, as the Cloud API gives it (HTTP 400, no
	// Retry-After), for every attempt of one text; the other sends reach the fake.
	var mu sync.Mutex
	var seen []string // texts of the sends, in the order they reached the provider
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(raw))
		var send struct {
			Text struct {
				Body string `json:"body"`
			} `json:"text"`
		}
		_ = json.Unmarshal(raw, &send)
		if send.Text.Body != "" {
			mu.Lock()
			seen = append(seen, send.Text.Body)
			mu.Unlock()
		}
		if send.Text.Body == throttledText {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Fb-Trace-Id", "AbCtrace42")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,`+
				`"error_data":{"messaging_product":"whatsapp","details":%q},"fbtrace_id":"AbCtrace42"}}`, details)
			return
		}
		fake.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(meta.Close)
	cfg.WhatsApp.APIBaseURL = meta.URL
	tg := startTestGateway(t, cfg, nil)
	ana, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ana", auth.RoleAgent, time.Hour, time.Now())
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	events := openStream(t, tg.base, ana)
	postSigned(t, tg.base, cfg, simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300",
		From: "+5511999990031", Name: "Maria", Text: "Oi"}))
	offered := waitEvent(t, events, "card.offered", func(e streamEvent) bool { return e.Type == "card.offered" })
	if code, body := do(t, "POST", tg.base+"/v1/cards/"+offered.Card.ID+"/accept", ana, nil); code != 200 {
		t.Fatalf("accept: %d %s", code, body)
	}
	conv := offered.Card.ConversationID
	reply := func(text string) string {
		code, raw := do(t, "POST", tg.base+"/v1/conversations/"+conv+"/messages", ana, strings.NewReader(`{"text":"`+text+`"}`))
		var out struct {
			MessageID string `json:"message_id"`
			Status    string `json:"status"`
		}
		if code != 202 || json.Unmarshal(raw, &out) != nil || out.Status != "queued" {
			t.Fatalf("reply %q: %d %s", text, code, raw)
		}
		return out.MessageID
	}
	throttled, next := reply(throttledText), reply(nextText) // back to back: the second waits its turn

	summary := "Não enviada: o WhatsApp continuou limitando a velocidade de envio deste número em 3 tentativas. Envie de novo mais tarde. · " +
		"Not sent: WhatsApp kept limiting how fast this number may send through 3 attempts. Send it again later. (130429 Rate limit hit: " + details + ")"
	// The stream shows the failure first, then the next reply sent.
	failed := waitEvent(t, events, "the throttled reply's failure", func(e streamEvent) bool {
		if e.Type == "message.status" && e.Message.ID == next && e.Message.Status == "sent" {
			t.Fatal("the next reply was shown sent before the throttled one's failure")
		}
		return e.Type == "message.status" && e.Message.ID == throttled && e.Message.Status != "queued"
	})
	if failed.Message.Status != "failed" || failed.Message.Error == nil {
		t.Fatalf("the agent was told %+v", failed.Message)
	}
	if e := failed.Message.Error; e.Code != 130429 || e.Title != "Rate limit hit" || e.Message != "(#130429) Rate limit hit" ||
		e.Details != details || e.Summary != summary {
		t.Fatalf("the agent's event says %+v, want code 130429, Meta's title, message and details, and %q", *e, summary)
	}
	waitEvent(t, events, "the next reply sent", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == next && e.Message.Status == "sent"
	})

	// The stored conversation says the same, and nothing internal.
	code, raw := do(t, "GET", tg.base+"/v1/conversations/"+conv+"/messages", ana, nil)
	var stored struct {
		Messages []struct {
			ID                string                `json:"id"`
			Status            string                `json:"status"`
			ProviderMessageID string                `json:"provider_message_id"`
			Error             *routing.MessageError `json:"error"`
		} `json:"messages"`
	}
	if code != 200 || json.Unmarshal(raw, &stored) != nil {
		t.Fatalf("messages: %d %s", code, raw)
	}
	found := 0
	for _, m := range stored.Messages {
		switch m.ID {
		case throttled:
			found++
			if m.Status != "failed" || m.ProviderMessageID != "" || m.Error == nil || m.Error.Code != 130429 ||
				m.Error.Title != "Rate limit hit" || m.Error.Message != "(#130429) Rate limit hit" || m.Error.Details != details ||
				m.Error.Summary != summary {
				t.Errorf("stored throttled reply: %s", raw)
			}
		case next:
			found++
			if m.Status != "sent" || m.ProviderMessageID == "" || m.Error != nil {
				t.Errorf("stored next reply: %s", raw)
			}
		}
	}
	if found != 2 {
		t.Fatalf("the conversation lacks its replies: %s", raw)
	}
	for _, internal := range []string{"gave up", "HTTP", "fbtrace", "AbCtrace42", "whatsapp:", "rate_limited", "again in"} {
		if strings.Contains(string(raw), internal) {
			t.Errorf("the agent would read %q: %s", internal, raw)
		}
	}

	// Meta saw the throttled reply once per attempt, then the next one, once.
	mu.Lock()
	defer mu.Unlock()
	if want := []string{throttledText, throttledText, throttledText, nextText}; !slices.Equal(seen, want) {
		t.Fatalf("the provider got %q, want %q", seen, want)
	}
}
