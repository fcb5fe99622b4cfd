package routing

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestCompactInboundMessage: a customer's message is stored without what other fields hold — no id
// field, no dedup key, no payload members that repeat the message's or the conversation's fields —
// in Redis's listpack encoding, and read back (one message, or the conversation's list) with its
// payload whole. What cannot be rebuilt (a WebChat visitor's email, a media object) is kept.
func TestCompactInboundMessage(t *testing.T) {
	const longText = "Olá, boa tarde! Gostaria de saber o status do meu pedido 12345, comprei semana passada e ainda não chegou. Obrigada — Maria 😊"
	ctx := context.Background()
	e := newEnv(t, "longest_idle")
	at := t0.Add(-time.Minute)
	atJSON, _ := json.Marshal(at)
	for _, tc := range []struct {
		name    string
		in      Inbound
		payload string
		kept    string // the x field
	}{
		{"whatsapp text", Inbound{Channel: "whatsapp", EntryPoint: "100", ContactName: "Maria", ContactPhone: "+5511999990001",
			Identifiers: []Identifier{{IdentPhone, "5511999990001"}, {IdentUserID, "BR.1"}}, ProviderMessageID: "wamid.c1", Kind: "text", Text: "oi"},
			`{"channel":"whatsapp","entry_point":"100","entry_point_display":"+55 11 4000-0000","contact":{"id":"BR.1","wa_id":"5511999990001",` +
				`"user_id":"BR.1","name":"Maria","phone":"+5511999990001"},"id":"wamid.c1","at":` + string(atJSON) + `,"kind":"text","text":"oi"}`, "{}"},
		{"whatsapp image", Inbound{Channel: "whatsapp", EntryPoint: "100", ContactName: "Maria",
			Identifiers: []Identifier{{IdentPhone, "5511999990001"}, {IdentUserID, "BR.1"}}, ProviderMessageID: "wamid.c2", Kind: "image", Text: "foto"},
			`{"channel":"whatsapp","entry_point":"100","entry_point_display":"+55 11 4000-0000","contact":{"id":"BR.1","wa_id":"5511999990001","user_id":"BR.1","name":"Maria",` +
				`"phone":"+5511999990001"},"id":"wamid.c2","at":` + string(atJSON) + `,"kind":"image","text":"foto","media":{"id":"M9"}}`,
			`{"media":{"id":"M9"}}`},
		{"long text and media", Inbound{Channel: "whatsapp", EntryPoint: "100", ContactName: "Maria",
			Identifiers: []Identifier{{IdentPhone, "5511999990001"}, {IdentUserID, "BR.1"}}, ProviderMessageID: "wamid.c3", Kind: "image", Text: longText},
			`{"channel":"whatsapp","entry_point":"100","entry_point_display":"+55 11 4000-0000","contact":{"id":"BR.1","wa_id":"5511999990001","user_id":"BR.1","name":"Maria",` +
				`"phone":"+5511999990001"},"id":"wamid.c3","at":` + string(atJSON) + `,"kind":"image","text":"` + longText + `",` +
				`"media":{"id":"1234567890123456","mime_type":"image/jpeg","sha256":"c2ltdWxhdGVkIGhhc2ggb2YgdGhlIGltYWdl"}}`,
			`{"media":{"id":"1234567890123456","mime_type":"image/jpeg","sha256":"c2ltdWxhdGVkIGhhc2ggb2YgdGhlIGltYWdl"}}`},
		{"webchat with email", Inbound{Channel: "webchat", EntryPoint: "shop", ContactID: "v1", ContactName: "Ana", Sender: "shop:v1",
			ProviderMessageID: "w1", Kind: "text", Text: "olá"},
			`{"channel":"webchat","entry_point":"shop","contact":{"id":"v1","name":"Ana","email":"ana@example.com"},"id":"w1","at":` +
				string(atJSON) + `,"kind":"text","text":"olá"}`, `{"contact":{"id":"v1","name":"Ana","email":"ana@example.com"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.At, tc.in.Payload = at, json.RawMessage(tc.payload)
			res, err := e.router.Deliver(ctx, []Inbound{tc.in})
			if err != nil || res.Recorded != 1 {
				t.Fatal(res, err)
			}
			id := res.Messages[0]
			if want := InboundMessageID(tc.in.Channel, tc.in.Sender, tc.in.ProviderMessageID); id != want {
				t.Errorf("id %s, want %s (derived from the provider's)", id, want)
			}
			key := e.router.keys.msg(id)
			h := e.client.HGetAll(ctx, key).Val()
			h = joinPieces(h, "x") // a long value is kept in 64-byte pieces
			if _, ok := h["id"]; ok || h["payload"] != "" || h["x"] != tc.kept {
				t.Errorf("stored %v, want no id or payload field and x %s", h, tc.kept)
			}
			if enc := e.client.ObjectEncoding(ctx, key).Val(); enc != "listpack" {
				t.Errorf("encoding %s, want listpack", enc)
			}
			if n := len(e.client.Keys(ctx, "cg:{t}:pmsg:*").Val()); n != 0 {
				t.Errorf("%d dedup keys, want none", n)
			}
			m, err := e.router.Message(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			list, err := e.router.Messages(ctx, m.ConversationID, 100)
			if err != nil || len(list) == 0 {
				t.Fatal(list, err)
			}
			for _, got := range []Message{m, list[len(list)-1]} {
				var want, have any
				_ = json.Unmarshal([]byte(tc.payload), &want)
				if err := json.Unmarshal(got.Payload, &have); err != nil || !reflect.DeepEqual(want, have) {
					t.Errorf("payload read back:\n got %s\nwant %s", got.Payload, tc.payload)
				}
				if got.ID != id || got.Text != tc.in.Text || got.Direction != "in" {
					t.Errorf("message read back: %+v", got)
				}
			}
			// A redelivery is recognised by the message's own key.
			if res, err := e.router.Deliver(ctx, []Inbound{tc.in}); err != nil || res.Duplicates != 1 {
				t.Errorf("redelivery: %+v %v", res, err)
			}
		})
	}
}
