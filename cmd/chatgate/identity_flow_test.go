package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

// identityRig is a gateway with its workers, a fake Cloud API, ana logged in on WhatsApp with her
// stream open, and a client on the gateway's Redis database to read the raw state.
type identityRig struct {
	tg     *testGateway
	cfg    configs.Config
	fake   *fakeapi.Server
	rdb    *redis.Client
	prefix string
	ana    string
	events <-chan string
}

func newIdentityRig(t *testing.T) *identityRig {
	t.Helper()
	url := redistest.URL(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": url})
	fake := fakeapi.New(fakeapi.Options{Numbers: map[string]string{"100200300": cfg.WhatsApp.Numbers[0].AccessToken}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	cfg.WhatsApp.APIBaseURL = fake.URL()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	tg := startTestGateway(t, cfg, nil)
	ana, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ana", auth.RoleAgent, time.Hour, time.Now())
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	return &identityRig{tg: tg, cfg: cfg, fake: fake, rdb: rdb, prefix: keyspace.New(cfg.Tenant).Prefix(), ana: ana,
		events: openStream(t, tg.base, ana)}
}

// post signs a notification carrying one message as Meta does and posts it to the webhook.
func (r *identityRig) post(t *testing.T, contacts []any, msg map[string]any) {
	t.Helper()
	if msg["id"] == nil {
		msg["id"] = simulate.NewMessageID()
	}
	if msg["timestamp"] == nil {
		msg["timestamp"] = strconv.FormatInt(time.Now().Unix(), 10)
	}
	value := map[string]any{"messaging_product": "whatsapp",
		"metadata": map[string]any{"display_phone_number": "15550783881", "phone_number_id": "100200300"}, "messages": []any{msg}}
	if contacts != nil {
		value["contacts"] = contacts
	}
	body, _ := json.Marshal(map[string]any{"object": "whatsapp_business_account",
		"entry": []any{map[string]any{"id": "102290129340398", "changes": []any{map[string]any{"field": "messages", "value": value}}}}})
	req, _ := http.NewRequest("POST", r.tg.base+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, r.cfg.WhatsApp.AppSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Recorded int `json:"recorded"`
	}
	if json.NewDecoder(resp.Body).Decode(&got); resp.StatusCode != 200 || got.Recorded != 1 {
		t.Fatalf("webhook: %d, recorded %d", resp.StatusCode, got.Recorded)
	}
}

func text(from, userID, body string) map[string]any {
	m := map[string]any{"type": "text", "text": map[string]any{"body": body}}
	if from != "" {
		m["from"] = from
	}
	if userID != "" {
		m["from_user_id"] = userID
	}
	return m
}

func contact(name, waID, userID, username string) []any {
	c := map[string]any{"profile": map[string]any{"name": name}}
	if waID != "" {
		c["wa_id"] = waID
	}
	if userID != "" {
		c["user_id"] = userID
	}
	if username != "" {
		c["profile"].(map[string]any)["username"] = username
	}
	return []any{c}
}

// openConversations reads Redis: the ids of every conversation whose state is open.
func (r *identityRig) openConversations(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	keys, err := r.rdb.Keys(ctx, r.prefix+"conv:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, k := range keys {
		if r.rdb.HGet(ctx, k, "state").Val() == "open" {
			open = append(open, strings.TrimPrefix(k, r.prefix+"conv:"))
		}
	}
	sort.Strings(open)
	return open
}

// contactOf reads the raw identifier index.
func (r *identityRig) contactOf(kind, value string) string {
	return r.rdb.Get(context.Background(), r.prefix+"ident:whatsapp:"+kind+":"+value).Val()
}

func (r *identityRig) acceptOffer(t *testing.T) streamEvent {
	t.Helper()
	offered := waitEvent(t, r.events, "card.offered", func(e streamEvent) bool { return e.Type == "card.offered" })
	if code, body := do(t, "POST", r.tg.base+"/v1/cards/"+offered.Card.ID+"/accept", r.ana, nil); code != 200 {
		t.Fatalf("accept: %d %s", code, body)
	}
	return offered
}

// reply posts an agent's reply and waits until the fake Cloud API has it; it returns that call.
func (r *identityRig) reply(t *testing.T, conv, body string) fakeapi.Call {
	t.Helper()
	code, raw := do(t, "POST", r.tg.base+"/v1/conversations/"+conv+"/messages", r.ana, strings.NewReader(`{"text":`+strconv.Quote(body)+`}`))
	if code != 202 {
		t.Fatalf("reply: %d %s", code, raw)
	}
	var acc struct {
		MessageID string `json:"message_id"`
	}
	json.Unmarshal(raw, &acc)
	waitEvent(t, r.events, "the reply sent", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == acc.MessageID && e.Message.Status == "sent"
	})
	calls := r.fake.Calls()
	return calls[len(calls)-1]
}

func TestTemplateToAPhoneThenTheCustomersUserIDAnswerIsOneConversation(t *testing.T) {
	r := newIdentityRig(t)
	code, raw := do(t, "POST", r.tg.base+"/v1/conversations", r.ana, strings.NewReader(`{"channel":"whatsapp","to":"+5511999990002",
	  "template":{"name":"welcome","language":"en_US","body_params":["Ana"]}}`))
	if code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	var started struct {
		ConversationID string `json:"conversation_id"`
	}
	json.Unmarshal(raw, &started)
	r.post(t, contact("Joana", "5511999990002", "BR.1502576394655843", ""), text("5511999990002", "BR.1502576394655843", "Recebi, obrigada"))
	got := waitEvent(t, r.events, "the answer", func(e streamEvent) bool { return e.Type == "message.received" })
	if got.Message.ConversationID != started.ConversationID {
		t.Fatalf("the answer is in %s, want the started %s", got.Message.ConversationID, started.ConversationID)
	}
	if open := r.openConversations(t); len(open) != 1 || open[0] != started.ConversationID {
		t.Fatalf("open conversations %v, want only %s", open, started.ConversationID)
	}
	k := r.contactOf("phone", "5511999990002")
	if k == "" || r.contactOf("bsuid", "BR.1502576394655843") != k {
		t.Fatalf("index: phone → %q, user id → %q", k, r.contactOf("bsuid", "BR.1502576394655843"))
	}
	ids := r.rdb.SMembers(context.Background(), r.prefix+"contactids:"+k).Val()
	sort.Strings(ids)
	if strings.Join(ids, ",") != "bsuid:BR.1502576394655843,phone:5511999990002" {
		t.Errorf("the contact's identifiers: %v", ids)
	}
	if n := len(r.rdb.Keys(context.Background(), r.prefix+"card:*").Val()); n != 1 {
		t.Errorf("%d cards, want 1", n)
	}
	// The reply goes to the phone, which the contact has.
	if call := r.reply(t, started.ConversationID, "Por nada!"); call.Recipient != "5511999990002" || !bytes.Contains(call.Body, []byte(`"to":"5511999990002"`)) {
		t.Errorf("reply sent to %q: %s", call.Recipient, call.Body)
	}
}

func TestPhoneFirstThenUserIDAndPhoneThenUserIDOnlyIsOneConversation(t *testing.T) {
	r := newIdentityRig(t)
	r.post(t, contact("Maria", "5511999990001", "", ""), text("5511999990001", "", "Oi"))
	offered := r.acceptOffer(t)
	r.post(t, contact("Maria", "5511999990001", "BR.77", "maria.s"), text("5511999990001", "BR.77", "Ainda aí?"))
	r.post(t, contact("Maria", "", "BR.77", "maria.s"), text("", "BR.77", "Alô"))
	for _, want := range []string{"Ainda aí?", "Alô"} {
		got := waitEvent(t, r.events, want, func(e streamEvent) bool { return e.Type == "message.received" && e.Message.Text == want })
		if got.Message.ConversationID != offered.Card.ConversationID {
			t.Fatalf("%q is in %s, want %s", want, got.Message.ConversationID, offered.Card.ConversationID)
		}
	}
	if open := r.openConversations(t); len(open) != 1 {
		t.Fatalf("open conversations %v, want one", open)
	}
	k := r.contactOf("phone", "5511999990001")
	if k == "" || r.contactOf("bsuid", "BR.77") != k || r.contactOf("username", "maria.s") != k {
		t.Fatalf("index points to different contacts")
	}
	h := r.rdb.HGetAll(context.Background(), r.prefix+"contact:"+k).Val()
	if h["phone"] != "5511999990001" || h["bsuid"] != "BR.77" || h["username"] != "maria.s" || h["name"] != "Maria" {
		t.Errorf("contact: %v", h)
	}
}

func TestAUserIDOnlyCustomerIsAnsweredThroughRecipient(t *testing.T) {
	r := newIdentityRig(t)
	r.post(t, contact("Caio", "", "BR.99887766554433", "caio"), text("", "BR.99887766554433", "Oi, sem número"))
	offered := r.acceptOffer(t)
	if open := r.openConversations(t); len(open) != 1 {
		t.Fatalf("open conversations %v, want one", open)
	}
	call := r.reply(t, offered.Card.ConversationID, "Olá Caio")
	if call.Recipient != "BR.99887766554433" || !bytes.Contains(call.Body, []byte(`"recipient":"BR.99887766554433"`)) ||
		bytes.Contains(call.Body, []byte(`"to"`)) {
		t.Errorf("reply to a user-id-only customer: %q %s", call.Recipient, call.Body)
	}
}

func TestANumberChangeMovesTheCustomerAndTheAgentSeesANote(t *testing.T) {
	r := newIdentityRig(t)
	r.post(t, contact("Sheena", "16505551234", "US.13491208655302741918", ""), text("16505551234", "US.13491208655302741918", "Hi"))
	offered := r.acceptOffer(t)
	k := r.contactOf("phone", "16505551234")
	// Meta's system message has no contacts: the old number in from, the new identifiers in system.
	r.post(t, nil, map[string]any{"from": "16505551234", "from_user_id": "US.13491208655302741918", "type": "system",
		"system": map[string]any{"body": "User Sheena Nelson changed from 16505551234 to 12195555358", "wa_id": "12195555358",
			"user_id": "US.20004455667788990011", "previous_user_id": "US.13491208655302741918", "type": "user_changed_number"}})
	note := waitEvent(t, r.events, "the system note", func(e streamEvent) bool { return e.Type == "message.received" && e.Message.Kind == "system" })
	if note.Message.ConversationID != offered.Card.ConversationID || !strings.Contains(note.Message.Text, "12195555358") {
		t.Fatalf("note: %+v", note.Message)
	}
	if r.contactOf("phone", "12195555358") != k || r.contactOf("bsuid", "US.20004455667788990011") != k ||
		r.contactOf("phone", "16505551234") != "" || r.contactOf("bsuid", "US.13491208655302741918") != "" {
		t.Fatalf("identifiers not moved")
	}
	conv := r.rdb.HGetAll(context.Background(), r.prefix+"conv:"+offered.Card.ConversationID).Val()
	if conv["state"] != "open" || conv["contact_phone"] != "+12195555358" || conv["contact_bsuid"] != "US.20004455667788990011" {
		t.Fatalf("conversation after the change: %v", conv)
	}
	if call := r.reply(t, offered.Card.ConversationID, "Anotado"); call.Recipient != "12195555358" {
		t.Errorf("reply went to %q, want the new number", call.Recipient)
	}
	r.post(t, contact("Sheena", "12195555358", "US.20004455667788990011", ""), text("12195555358", "US.20004455667788990011", "Got it"))
	got := waitEvent(t, r.events, "a message from the new number", func(e streamEvent) bool { return e.Type == "message.received" && e.Message.Text == "Got it" })
	if got.Message.ConversationID != offered.Card.ConversationID {
		t.Errorf("the new number's message is in %s", got.Message.ConversationID)
	}
	if open := r.openConversations(t); len(open) != 1 {
		t.Errorf("open conversations %v, want one", open)
	}
}

// A changed user id (Meta's user_changed_user_id, since August 2026): the BSUID changed and no
// number is shared, so the notice names the customer by the old user id alone. The contact keeps its
// phone, trades its user ids, and the open conversation carries on.
func TestAUserIDChangeMovesTheCustomerAndTheAgentSeesANote(t *testing.T) {
	r := newIdentityRig(t)
	const phone, oldID, newID, oldParent, newParent = "5511988887777", "BR.1502576394655843", "BR.2603687405766954", "BR.ENT.66", "BR.ENT.77"
	first := contact("Caio", phone, oldID, "")
	first[0].(map[string]any)["parent_user_id"] = oldParent
	r.post(t, first, text(phone, oldID, "Oi, preciso de ajuda"))
	offered := r.acceptOffer(t)
	k := r.contactOf("phone", phone)
	if k == "" || r.contactOf("bsuid", oldID) != k || r.contactOf("pbsuid", oldParent) != k {
		t.Fatalf("before the change: phone → %q, user id → %q, parent → %q", k, r.contactOf("bsuid", oldID), r.contactOf("pbsuid", oldParent))
	}
	// Meta's shape: no contacts, no phone; the old ids as the sender, the new and previous in system.
	r.post(t, nil, map[string]any{"from_user_id": oldID, "from_parent_user_id": oldParent, "type": "system",
		"system": map[string]any{"body": "User Caio changed from " + oldID + " to " + newID, "user_id": newID,
			"parent_user_id": newParent, "previous_user_id": oldID, "previous_parent_user_id": oldParent, "type": "user_changed_user_id"}})
	note := waitEvent(t, r.events, "the system note", func(e streamEvent) bool { return e.Type == "message.received" && e.Message.Kind == "system" })
	if note.Message.ConversationID != offered.Card.ConversationID {
		t.Fatalf("the note is in %s, want %s", note.Message.ConversationID, offered.Card.ConversationID)
	}
	if !strings.Contains(note.Message.Text, "changed from") || !strings.Contains(note.Message.Text, newID) {
		t.Errorf("the note the agent reads: %q", note.Message.Text)
	}
	if r.contactOf("bsuid", newID) != k || r.contactOf("pbsuid", newParent) != k || r.contactOf("phone", phone) != k ||
		r.contactOf("bsuid", oldID) != "" || r.contactOf("pbsuid", oldParent) != "" {
		t.Fatalf("identifiers not moved: new id → %q, new parent → %q, phone → %q, old id → %q, old parent → %q (contact %s)",
			r.contactOf("bsuid", newID), r.contactOf("pbsuid", newParent), r.contactOf("phone", phone),
			r.contactOf("bsuid", oldID), r.contactOf("pbsuid", oldParent), k)
	}
	ids := r.rdb.SMembers(context.Background(), r.prefix+"contactids:"+k).Val()
	sort.Strings(ids)
	if want := "bsuid:" + newID + ",pbsuid:" + newParent + ",phone:" + phone; strings.Join(ids, ",") != want {
		t.Errorf("the contact's identifiers: %v, want %s", ids, want)
	}
	h := r.rdb.HGetAll(context.Background(), r.prefix+"contact:"+k).Val()
	if h["phone"] != phone || h["bsuid"] != newID || h["pbsuid"] != newParent || h["name"] != "Caio" {
		t.Errorf("contact after the change: %v", h)
	}
	conv := r.rdb.HGetAll(context.Background(), r.prefix+"conv:"+offered.Card.ConversationID).Val()
	if conv["state"] != "open" || conv["contact_id"] != k || conv["contact_phone"] != "+"+phone || conv["contact_bsuid"] != newID {
		t.Fatalf("conversation after the change: %v", conv)
	}
	if open := r.openConversations(t); len(open) != 1 || open[0] != offered.Card.ConversationID {
		t.Fatalf("open conversations %v, want only %s", open, offered.Card.ConversationID)
	}
	// The customer writes again under the new user id alone; it is the same conversation.
	r.post(t, contact("Caio", "", newID, ""), text("", newID, "Ainda estou aqui"))
	got := waitEvent(t, r.events, "a message from the new user id", func(e streamEvent) bool {
		return e.Type == "message.received" && e.Message.Text == "Ainda estou aqui"
	})
	if got.Message.ConversationID != offered.Card.ConversationID {
		t.Errorf("the new user id's message is in %s, want %s", got.Message.ConversationID, offered.Card.ConversationID)
	}
	if open := r.openConversations(t); len(open) != 1 {
		t.Errorf("open conversations %v, want one", open)
	}
	if n := len(r.rdb.Keys(context.Background(), r.prefix+"card:*").Val()); n != 1 {
		t.Errorf("%d cards, want 1", n)
	}
	// The contact still has its phone: the reply goes there (to), not to a user id.
	if call := r.reply(t, offered.Card.ConversationID, "Estamos vendo"); call.Recipient != phone ||
		!bytes.Contains(call.Body, []byte(`"to":"`+phone+`"`)) || bytes.Contains(call.Body, []byte(`"recipient"`)) {
		t.Errorf("reply sent to %q: %s", call.Recipient, call.Body)
	}
}

func TestALateMessageDoesNotCloseTheWindow(t *testing.T) {
	r := newIdentityRig(t)
	now := time.Now()
	r.post(t, contact("Rita", "5511911112222", "", ""), map[string]any{"from": "5511911112222", "type": "text",
		"text": map[string]any{"body": "Oi"}, "timestamp": strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)})
	offered := r.acceptOffer(t)
	key := r.prefix + "conv:" + offered.Card.ConversationID
	before := r.rdb.HMGet(context.Background(), key, "last_customer_message_at", "window_expires_at").Val()
	// Meta redelivers an older message, written 25 hours ago, after the new one.
	r.post(t, contact("Rita", "5511911112222", "", ""), map[string]any{"from": "5511911112222", "type": "text",
		"text": map[string]any{"body": "mensagem antiga"}, "timestamp": strconv.FormatInt(now.Add(-25*time.Hour).Unix(), 10)})
	waitEvent(t, r.events, "the late message", func(e streamEvent) bool { return e.Type == "message.received" && e.Message.Text == "mensagem antiga" })
	after := r.rdb.HMGet(context.Background(), key, "last_customer_message_at", "window_expires_at").Val()
	if after[0] != before[0] || after[1] != before[1] {
		t.Fatalf("the late message moved the window: %v → %v", before, after)
	}
	r.reply(t, offered.Card.ConversationID, "Ainda dentro da janela")
}
