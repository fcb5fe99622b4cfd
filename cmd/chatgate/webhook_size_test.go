package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

// A 3 MB notification, the largest Meta sends, passes the gateway's built-in limits (the example
// without its http.body_limit and http.whatsapp_body_limit lines): answered 200 with every message
// recorded, while another route still refuses a body half that size with 413. Lowering the
// default under 3 MB fails this test.
func TestThreeMegabyteNotificationUnderTheDefaultLimits(t *testing.T) {
	limits := regexp.MustCompile(`(?m)^  (whatsapp_)?body_limit:.*\n`)
	if n := len(limits.FindAll(configs.Example, -1)); n != 2 {
		t.Fatalf("the example has %d body_limit lines, want 2 to remove", n)
	}
	env := map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)}
	cfg, err := configs.Parse(limits.ReplaceAll(configs.Example, nil), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownGrace = 5 * time.Second
	fake := fakeapi.New(fakeapi.Options{Numbers: map[string]string{"100200300": cfg.WhatsApp.Numbers[0].AccessToken}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	cfg.WhatsApp.APIBaseURL = fake.URL() // nothing of this test should reach Meta
	tg := startTestGateway(t, cfg, nil)
	ana, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ana", auth.RoleAgent, time.Hour, time.Now())
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	events := openStream(t, tg.base, ana)

	// Three customers (ana's WhatsApp capacity) writing long texts (Meta's limit is 4096
	// characters), batched as Meta does: entries, each with changes, each with many messages.
	customers := []struct{ phone, name string }{{"5511988880001", "Maria"}, {"5511988880002", "João"}, {"5511988880003", "Bia"}}
	const entries, changesPerEntry, perChange = 3, 2, 120
	text := func(n int) string {
		s := fmt.Sprintf("Mensagem %d: ", n) + strings.Repeat("Olá, preciso de ajuda com o pedido e a entrega. ", 90)
		return string([]rune(s)[:4096])
	}
	want := map[string][]string{} // customer → message ids, in order
	var entryList []any
	n := 0
	for e := 0; e < entries; e++ {
		var changes []any
		for c := 0; c < changesPerEntry; c++ {
			who := customers[(e*changesPerEntry+c)%len(customers)]
			var msgs []any
			for i := 0; i < perChange; i++ {
				n++
				id := fmt.Sprintf("wamid.HBgNNTUxMTk4ODg4MDAwMRUCABIYFDNBQjg%05d", n)
				want[who.phone] = append(want[who.phone], id)
				msgs = append(msgs, map[string]any{"from": who.phone, "id": id, "timestamp": fmt.Sprint(time.Now().Unix() - 600 + int64(n)),
					"type": "text", "text": map[string]any{"body": text(n)}})
			}
			changes = append(changes, map[string]any{"field": "messages", "value": map[string]any{
				"messaging_product": "whatsapp",
				"metadata":          map[string]any{"display_phone_number": "15550001234", "phone_number_id": "100200300"},
				"contacts":          []any{map[string]any{"profile": map[string]any{"name": who.name}, "wa_id": who.phone}},
				"messages":          msgs}})
		}
		entryList = append(entryList, map[string]any{"id": fmt.Sprint(102290129340398 + e), "changes": changes})
	}
	body, _ := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": entryList})
	if len(body) < 3_000_000 || len(body) > 3<<20 {
		t.Fatalf("built %d bytes, want Meta's 3 MB", len(body))
	}

	req, _ := http.NewRequest("POST", tg.base+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, cfg.WhatsApp.AppSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var receipt struct {
		Status     string `json:"status"`
		Recorded   int    `json:"recorded"`
		Duplicates int    `json:"duplicates"`
	}
	err = json.NewDecoder(resp.Body).Decode(&receipt)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || receipt.Status != "ok" || receipt.Recorded != n || receipt.Duplicates != 0 {
		t.Fatalf("%d-byte notification: %d %+v (%v), want 200 with all %d messages recorded", len(body), resp.StatusCode, receipt, err, n)
	}

	// Each customer's conversation holds its messages, in order, with their text.
	for range customers {
		offered := waitEvent(t, events, "a card.offered", func(e streamEvent) bool { return e.Type == "card.offered" })
		if code, raw := do(t, "POST", tg.base+"/v1/cards/"+offered.Card.ID+"/accept", ana, nil); code != 200 {
			t.Fatalf("accept: %d %s", code, raw)
		}
		code, raw := do(t, "GET", tg.base+"/v1/conversations/"+offered.Card.ConversationID+"/messages?limit=1000", ana, nil)
		var conv struct {
			Conversation struct {
				Contact struct {
					Phone string `json:"phone"`
					Name  string `json:"name"`
				} `json:"contact"`
			} `json:"conversation"`
			Messages []struct {
				Direction         string `json:"direction"`
				Kind              string `json:"kind"`
				Text              string `json:"text"`
				ProviderMessageID string `json:"provider_message_id"`
			} `json:"messages"`
		}
		if code != 200 || json.Unmarshal(raw, &conv) != nil {
			t.Fatalf("messages: %d %.300s", code, raw)
		}
		var ids []string
		for _, m := range conv.Messages {
			if m.Direction == "out" {
				continue
			}
			var i int
			fmt.Sscanf(m.ProviderMessageID[len(m.ProviderMessageID)-5:], "%d", &i)
			if m.Kind != "text" || m.Text != text(i) {
				t.Fatalf("message %s: kind %q, text %.40q… of %d characters", m.ProviderMessageID, m.Kind, m.Text, len([]rune(m.Text)))
			}
			ids = append(ids, m.ProviderMessageID)
		}
		phone := strings.TrimPrefix(conv.Conversation.Contact.Phone, "+")
		if got := want[phone]; len(got) == 0 || strings.Join(ids, ",") != strings.Join(got, ",") {
			t.Fatalf("conversation of %q holds %d messages, want %d in order", phone, len(ids), len(got))
		}
		delete(want, phone)
	}
	if len(want) != 0 {
		t.Fatalf("no conversation for %v", want)
	}

	// The other routes keep the 1 MB limit: half the notification's size is refused.
	half := bytes.Repeat([]byte("x"), len(body)/2)
	for _, path := range []string{"/webhooks/webchat", "/v1/conversations/c1/messages"} {
		req, _ := http.NewRequest("POST", tg.base+path, bytes.NewReader(append(append([]byte(`{"text":"`), half...), `"}`...)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+ana)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var refusal bytes.Buffer
		refusal.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || errorCode(t, refusal.Bytes()) != "body_too_large" {
			t.Errorf("%s with %d bytes: %d %s, want 413 body_too_large", path, len(half), resp.StatusCode, refusal.String())
		}
	}
}
