package routing

import (
	"context"
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/presence"
	"github.com/redis/go-redis/v9"
)

func phone(v string) Identifier             { return Identifier{Kind: IdentPhone, Value: v} }
func bsuid(v string) Identifier             { return Identifier{Kind: IdentUserID, Value: v} }
func uname(v string) Identifier             { return Identifier{Kind: IdentUsername, Value: v} }
func idents(ids ...Identifier) []Identifier { return ids }

// wa delivers one WhatsApp message naming the customer by ids (and, for a notice, the replaced
// ones) and returns the conversation it joined ("" for none).
func (e *env) wa(t *testing.T, entry string, at time.Time, in Inbound) (string, DeliverResult) {
	t.Helper()
	msgSeq++
	in.Channel, in.EntryPoint, in.At = "whatsapp", entry, at
	if in.ProviderMessageID == "" {
		in.ProviderMessageID = "wamid.id" + time.Duration(msgSeq).String()
	}
	if in.Kind == "" {
		in.Kind, in.Text = "text", "oi"
	}
	res, err := e.router.Deliver(context.Background(), []Inbound{in})
	if err != nil || res.Recorded != 1 {
		t.Fatalf("deliver %+v: %+v %v", in, res, err)
	}
	return e.client.HGet(context.Background(), e.router.keys.msg(res.Messages[0]), "conversation_id").Val(), res
}

// keysLike lists the keys of the tenant matching a pattern after the prefix, sorted.
func (e *env) keysLike(t *testing.T, pattern string) []string {
	t.Helper()
	ks, err := e.client.Keys(context.Background(), e.router.keys.prefix()+pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ks)
	return ks
}

// contactOf reads the raw index: the contact an identifier points to.
func (e *env) contactOf(t *testing.T, id Identifier) string {
	t.Helper()
	return e.client.Get(context.Background(), e.router.keys.ident("whatsapp", id)).Val()
}

// assertContact checks a contact's raw records both ways: its HASH of current identifiers, its SET
// of every identifier, and each identifier's index key pointing back at it.
func (e *env) assertContact(t *testing.T, contact string, current map[string]string, all ...Identifier) {
	t.Helper()
	ctx := context.Background()
	h := e.client.HGetAll(ctx, e.router.keys.contact(contact)).Val()
	for k, v := range current {
		if h[k] != v {
			t.Errorf("contact %s field %s = %q, want %q (%v)", contact, k, h[k], v, h)
		}
	}
	for _, f := range contactFieldNames {
		if _, want := current[f]; !want && h[f] != "" {
			t.Errorf("contact %s has %s = %q, want none", contact, f, h[f])
		}
	}
	var want []string
	for _, id := range all {
		want = append(want, id.Kind+":"+id.Value)
		if got := e.contactOf(t, id); got != contact {
			t.Errorf("index of %s → %q, want %q", id, got, contact)
		}
	}
	got := e.client.SMembers(ctx, e.router.keys.contactIDs(contact)).Val()
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("contact %s identifiers %v, want %v", contact, got, want)
	}
}

var contactFieldNames = []string{"phone", "bsuid", "pbsuid", "username"}

func TestPhoneThenUserIDThenUserIDOnlyIsOneContactAndOneConversation(t *testing.T) {
	e := newEnv(t, "longest_idle")
	c1, _ := e.wa(t, "100", t0, Inbound{Identifiers: idents(phone("5511999990001")), ContactName: "Maria"})
	c2, _ := e.wa(t, "100", t0.Add(time.Minute), Inbound{Identifiers: idents(phone("5511999990001"), bsuid("BR.1502576394655843"), uname("maria.s"))})
	c3, _ := e.wa(t, "100", t0.Add(2*time.Minute), Inbound{Identifiers: idents(bsuid("BR.1502576394655843"))})
	if c1 == "" || c2 != c1 || c3 != c1 {
		t.Fatalf("conversations %q %q %q, want one", c1, c2, c3)
	}
	contacts := e.keysLike(t, "contact:*")
	if len(contacts) != 1 {
		t.Fatalf("contacts %v, want one", contacts)
	}
	k := strings.TrimPrefix(contacts[0], e.router.keys.prefix()+"contact:")
	e.assertContact(t, k, map[string]string{"phone": "5511999990001", "bsuid": "BR.1502576394655843", "username": "maria.s", "name": "Maria"},
		phone("5511999990001"), bsuid("BR.1502576394655843"), uname("maria.s"))
	if open := e.keysLike(t, "convopen:*"); len(open) != 1 || e.client.Get(context.Background(), open[0]).Val() != c1 {
		t.Fatalf("open conversations %v, want only %s", open, c1)
	}
	conv := e.client.HGetAll(context.Background(), e.router.keys.conv(c1)).Val()
	if conv["contact_id"] != k || conv["contact_phone"] != "+5511999990001" || conv["contact_bsuid"] != "BR.1502576394655843" ||
		conv["contact_username"] != "maria.s" || conv["contact_name"] != "Maria" {
		t.Errorf("conversation's contact: %v", conv)
	}
	if n := e.client.LLen(context.Background(), e.router.keys.convMsgs(c1)).Val(); n != 3 {
		t.Errorf("%d messages in the conversation, want 3", n)
	}
	if e.waiting(t, "sales", "whatsapp") != 1 || len(e.keysLike(t, "card:*")) != 1 {
		t.Errorf("cards: %v", e.keysLike(t, "card:*"))
	}
}

func TestTemplateToAPhoneAndTheAnswerWithUserIDAreOneConversation(t *testing.T) {
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	conv, _, isNew, err := e.router.StartConversation(context.Background(), StartRequest{Agent: "ana", Channel: "whatsapp", EntryPoint: "100",
		ContactPhone: "+5511999990002", Message: Outbound{Kind: "template", Text: "Seu pedido saiu"}})
	if err != nil || !isNew {
		t.Fatalf("start: %v %v", isNew, err)
	}
	k := e.contactOf(t, phone("5511999990002"))
	if k == "" || conv.Contact.ID != k || conv.Contact.Phone != "+5511999990002" {
		t.Fatalf("started conversation's contact %+v, index → %q", conv.Contact, k)
	}
	e.assertContact(t, k, map[string]string{"phone": "5511999990002"}, phone("5511999990002"))
	got, _ := e.wa(t, "100", t0, Inbound{Identifiers: idents(phone("5511999990002"), bsuid("BR.77"))})
	if got != conv.ID {
		t.Fatalf("the answer opened %q, want the started %q", got, conv.ID)
	}
	e.assertContact(t, k, map[string]string{"phone": "5511999990002", "bsuid": "BR.77"}, phone("5511999990002"), bsuid("BR.77"))
	if open := e.keysLike(t, "convopen:*"); len(open) != 1 {
		t.Errorf("open conversations %v, want one", open)
	}
	if n := e.pub.count("ana", EventMessageReceived); n != 1 {
		t.Errorf("ana told of %d messages, want 1", n)
	}
	// A second template to the same customer by the same agent joins it; a refused start writes nothing.
	before := redistest.Snapshot(t, e.client)
	e.set(t, "bob", "whatsapp", presence.Online, "")
	before = redistest.Snapshot(t, e.client)
	if _, _, _, err := e.router.StartConversation(context.Background(), StartRequest{Agent: "bob", Channel: "whatsapp", EntryPoint: "100",
		ContactPhone: "+5511999990002", Message: Outbound{Kind: "template", Text: "x"}}); err != ErrConversationTaken {
		t.Fatalf("bob's start to ana's customer: %v", err)
	}
	if after := redistest.Snapshot(t, e.client); after != before {
		t.Error("a refused start changed Redis")
	}
}

func twoNumbers() *configs.Config {
	cfg := testConfig("longest_idle")
	cfg.WhatsApp.Numbers = append(cfg.WhatsApp.Numbers, configs.Number{PhoneNumberID: "200", Queue: "sales"})
	return cfg
}

func TestTwoContactsOfOneCustomerMergeKeepingTheOpenConversation(t *testing.T) {
	e := newEnvWith(t, redistest.Client(t), twoNumbers(), clock.NewFake(t0))
	ctx := context.Background()
	// The customer is first seen by phone on number 100, then by user id only on 100 and on 200.
	ca, _ := e.wa(t, "100", t0, Inbound{Identifiers: idents(phone("5511988887777"))})
	ka := e.contactOf(t, phone("5511988887777"))
	e.clock.Advance(time.Minute)
	cb, _ := e.wa(t, "100", t0.Add(time.Minute), Inbound{Identifiers: idents(bsuid("BR.99"))})
	cb2, _ := e.wa(t, "200", t0.Add(time.Minute), Inbound{Identifiers: idents(bsuid("BR.99"))})
	kb := e.contactOf(t, bsuid("BR.99"))
	if ka == kb || ca == cb || len(e.keysLike(t, "convopen:*")) != 3 {
		t.Fatalf("before the merge: contacts %s %s, conversations %s %s", ka, kb, ca, cb)
	}
	// Both at once: one customer. The contact with the conversation opened first on 100 survives.
	got, _ := e.wa(t, "100", t0.Add(2*time.Minute), Inbound{Identifiers: idents(phone("5511988887777"), bsuid("BR.99"))})
	if got != ca {
		t.Fatalf("the message went to %s, want the first open conversation %s", got, ca)
	}
	e.assertContact(t, ka, map[string]string{"phone": "5511988887777", "bsuid": "BR.99"}, phone("5511988887777"), bsuid("BR.99"))
	if n := e.client.Exists(ctx, e.router.keys.contact(kb), e.router.keys.contactIDs(kb)).Val(); n != 0 {
		t.Errorf("the merged contact's keys remain (%d)", n)
	}
	open := e.keysLike(t, "convopen:*")
	want := []string{e.router.keys.convOpen("whatsapp", "100", ka), e.router.keys.convOpen("whatsapp", "200", ka)}
	if strings.Join(open, ",") != strings.Join(want, ",") {
		t.Fatalf("open keys %v, want %v", open, want)
	}
	if v := e.client.Get(ctx, want[1]).Val(); v != cb2 {
		t.Errorf("on number 200 the open conversation is %q, want %q moved to the survivor", v, cb2)
	}
	// The other conversation on 100 waited for an agent: it ends, and its message joins the one that goes on.
	b := e.client.HGetAll(ctx, e.router.keys.conv(cb)).Val()
	if b["contact_id"] != ka || b["merged_into"] != ca || b["state"] != "closed" {
		t.Errorf("the other conversation on 100: %v", b)
	}
	if st := e.client.HGet(ctx, e.router.keys.card(b["card"]), "state").Val(); st != CardClosed || e.waiting(t, "sales", "whatsapp") != 2 {
		t.Errorf("its card is %s, %d cards wait (want closed, and the cards of %s and %s)", st, e.waiting(t, "sales", "whatsapp"), ca, cb2)
	}
	if msgs := e.client.LRange(ctx, e.router.keys.convMsgs(ca), 0, -1).Val(); len(msgs) != 3 ||
		e.client.HGet(ctx, e.router.keys.msg(msgs[1]), "conversation_id").Val() != ca || e.client.Exists(ctx, e.router.keys.convMsgs(cb)).Val() != 0 {
		t.Errorf("messages of the conversation that goes on: %v", msgs)
	}
	if v := e.client.HGet(ctx, e.router.keys.conv(cb2), "contact_id").Val(); v != ka {
		t.Errorf("the conversation on 200 belongs to %q", v)
	}
	// From now on any identifier finds the one conversation.
	if c, _ := e.wa(t, "100", t0.Add(3*time.Minute), Inbound{Identifiers: idents(bsuid("BR.99"))}); c != ca {
		t.Errorf("user id alone → %s, want %s", c, ca)
	}
}

// TestAMergeKeepsTheConversationAnAgentHolds: the customer's user-id-only message waits in the
// queue; then an agent starts a conversation with a template to the phone; the answer shows both.
// The agent's conversation goes on, though opened later; the waiting one ends and its message joins.
func TestAMergeKeepsTheConversationAnAgentHolds(t *testing.T) {
	e := newEnv(t, "longest_idle")
	ctx := context.Background()
	e.set(t, "ana", "whatsapp", presence.Online, "")
	waiting, _ := e.wa(t, "100", t0, Inbound{Identifiers: idents(bsuid("BR.5"))})
	if _, err := e.router.Decline(ctx, e.cards(t, "ana")[0].ID, "ana"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	started, _, _, err := e.router.StartConversation(ctx, StartRequest{Agent: "ana", Channel: "whatsapp", EntryPoint: "100",
		ContactPhone: "5511944443333", Message: Outbound{Kind: "template", Text: "Olá"}})
	if err != nil || started.ID == waiting {
		t.Fatalf("start: %v", err)
	}
	got, _ := e.wa(t, "100", t0.Add(2*time.Minute), Inbound{Identifiers: idents(phone("5511944443333"), bsuid("BR.5"))})
	if got != started.ID {
		t.Fatalf("the answer went to %s, want the agent's %s", got, started.ID)
	}
	k := e.contactOf(t, phone("5511944443333"))
	e.assertContact(t, k, map[string]string{"phone": "5511944443333", "bsuid": "BR.5"}, phone("5511944443333"), bsuid("BR.5"))
	if open := e.keysLike(t, "convopen:*"); len(open) != 1 || e.client.Get(ctx, open[0]).Val() != started.ID {
		t.Fatalf("open keys %v", open)
	}
	if st := e.client.HGet(ctx, e.router.keys.conv(waiting), "state").Val(); st != "closed" || e.waiting(t, "sales", "whatsapp") != 0 {
		t.Errorf("the waiting conversation is %s with %d cards waiting", st, e.waiting(t, "sales", "whatsapp"))
	}
	if n := e.client.LLen(ctx, e.router.keys.convMsgs(started.ID)).Val(); n != 3 {
		t.Errorf("%d messages in the agent's conversation, want template, the moved message and the answer", n)
	}
}

func TestANumberChangeMovesIdentifiersAndTheConversationCarriesOn(t *testing.T) {
	e := newEnv(t, "longest_idle")
	ctx := context.Background()
	e.set(t, "ana", "whatsapp", presence.Online, "")
	conv, _ := e.wa(t, "100", t0, Inbound{Identifiers: idents(phone("16505551234"), bsuid("US.1"))})
	k := e.contactOf(t, phone("16505551234"))
	cards := e.cards(t, "ana")
	if len(cards) != 1 {
		t.Fatalf("cards %v", cards)
	}
	if _, err := e.router.Accept(ctx, cards[0].ID, "ana"); err != nil {
		t.Fatal(err)
	}
	window := e.client.HGet(ctx, e.router.keys.conv(conv), "window_expires_at").Val()
	got, _ := e.wa(t, "100", t0.Add(time.Hour), Inbound{Identifiers: idents(phone("12195555358"), bsuid("US.2")),
		Replaced: idents(phone("16505551234"), bsuid("US.1")), Notice: true, Kind: "system",
		Text: "User Sheena Nelson changed from 16505551234 to 12195555358"})
	if got != conv {
		t.Fatalf("the notice went to %q, want %q", got, conv)
	}
	e.assertContact(t, k, map[string]string{"phone": "12195555358", "bsuid": "US.2"}, phone("12195555358"), bsuid("US.2"))
	if n := e.client.Exists(ctx, e.router.keys.ident("whatsapp", phone("16505551234")), e.router.keys.ident("whatsapp", bsuid("US.1"))).Val(); n != 0 {
		t.Errorf("the old identifiers still lead somewhere (%d)", n)
	}
	h := e.client.HGetAll(ctx, e.router.keys.conv(conv)).Val()
	if h["contact_phone"] != "+12195555358" || h["contact_bsuid"] != "US.2" || h["window_expires_at"] != window {
		t.Errorf("conversation after the notice: %v (window was %s)", h, window)
	}
	var note *Message
	for _, ev := range e.pub.events["ana"] {
		if m, ok := ev.Message.(Message); ok && ev.Type == EventMessageReceived && m.Kind == "system" {
			note = &m
		}
	}
	if note == nil || note.ConversationID != conv || !strings.Contains(note.Text, "12195555358") {
		t.Fatalf("ana's system note: %+v", note)
	}
	if c, _ := e.wa(t, "100", t0.Add(2*time.Hour), Inbound{Identifiers: idents(phone("12195555358"))}); c != conv {
		t.Errorf("the new number → %s, want %s", c, conv)
	}
	if c, _ := e.wa(t, "100", t0.Add(3*time.Hour), Inbound{Identifiers: idents(phone("16505551234"))}); c == conv {
		t.Error("the old number still reaches the customer who left it")
	}
}

func TestANoticeWithoutAnOpenConversationOpensNone(t *testing.T) {
	e := newEnv(t, "longest_idle")
	conv, res := e.wa(t, "100", t0, Inbound{Identifiers: idents(bsuid("BR.NEW")), Replaced: idents(bsuid("BR.OLD")), Notice: true, Kind: "system", Text: "id changed"})
	if conv != "" || len(e.keysLike(t, "conv:*")) != 0 || len(e.keysLike(t, "card:*")) != 0 || e.waiting(t, "sales", "whatsapp") != 0 {
		t.Fatalf("a notice opened something: conv %q, keys %v", conv, e.keysLike(t, "*"))
	}
	k := e.contactOf(t, bsuid("BR.NEW"))
	if m := e.client.HGetAll(context.Background(), e.router.keys.msg(res.Messages[0])).Val(); m["kind"] != "system" || m["contact_id"] != k || k == "" {
		t.Errorf("the notice's record: %v (contact %q)", m, k)
	}
}

func TestTheWindowNeverMovesBack(t *testing.T) {
	e := newEnv(t, "longest_idle")
	ctx := context.Background()
	e.set(t, "ana", "whatsapp", presence.Online, "")
	now := t0.Add(48 * time.Hour)
	e.clock.Set(now)
	conv, _ := e.wa(t, "100", now.Add(-time.Minute), Inbound{Identifiers: idents(phone("5511911112222"))})
	cards := e.cards(t, "ana")
	if _, err := e.router.Accept(ctx, cards[0].ID, "ana"); err != nil {
		t.Fatal(err)
	}
	want := e.client.HMGet(ctx, e.router.keys.conv(conv), "last_customer_message_at", "window_expires_at").Val()
	// Redelivered and out-of-order messages written 25 hours and 2 minutes ago arrive late.
	for _, late := range []time.Duration{25 * time.Hour, 2 * time.Minute} {
		if c, _ := e.wa(t, "100", now.Add(-late), Inbound{Identifiers: idents(phone("5511911112222"))}); c != conv {
			t.Fatalf("late message went to %s", c)
		}
		got := e.client.HMGet(ctx, e.router.keys.conv(conv), "last_customer_message_at", "window_expires_at").Val()
		if got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("a message %v old moved the window from %v to %v", late, want, got)
		}
	}
	if _, _, err := e.router.Reply(ctx, conv, "ana", Outbound{Kind: "text", Text: "ainda aqui"}); err != nil {
		t.Fatalf("reply inside the real window: %v", err)
	}
	// A newer message still moves it forward.
	e.wa(t, "100", now.Add(time.Minute), Inbound{Identifiers: idents(phone("5511911112222"))})
	got := e.client.HGet(ctx, e.router.keys.conv(conv), "window_expires_at").Val()
	if got != msString(now.Add(time.Minute).Add(24*time.Hour)) { // WhatsApp's service window
		t.Errorf("window after a newer message: %s", got)
	}
}

func msString(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func TestAUsernameMovesButNeverMergesTwoCustomers(t *testing.T) {
	e := newEnv(t, "longest_idle")
	e.wa(t, "100", t0, Inbound{Identifiers: idents(bsuid("BR.A"), uname("sol"))})
	ka := e.contactOf(t, bsuid("BR.A"))
	// Someone else now shows the username "sol" (A changed it, B took it).
	e.wa(t, "100", t0.Add(time.Minute), Inbound{Identifiers: idents(bsuid("BR.B"), uname("sol"))})
	kb := e.contactOf(t, bsuid("BR.B"))
	if ka == kb || len(e.keysLike(t, "contact:*")) != 2 || len(e.keysLike(t, "convopen:*")) != 2 {
		t.Fatalf("the username merged two customers: %s %s", ka, kb)
	}
	e.assertContact(t, ka, map[string]string{"bsuid": "BR.A"}, bsuid("BR.A"))
	e.assertContact(t, kb, map[string]string{"bsuid": "BR.B", "username": "sol"}, bsuid("BR.B"), uname("sol"))
}

// TestConcurrentIdentifiersOfOneCustomerEndAsOneContact has two routers (two replicas) take
// thousands of messages at once from 30 customers, each named at random by phone, by user id or by
// both, while an agent starts conversations to their phones. Contacts made apart from each other
// merge once a message shows both identifiers; afterwards the index holds both ways (every
// identifier's key names a contact whose set has it, and every set member's key names its contact),
// each customer is one contact with at most one open conversation reached by new messages, and
// every open conversation's contact exists.
func TestConcurrentIdentifiersOfOneCustomerEndAsOneContact(t *testing.T) {
	const customers, workers, perWorker = 30, 6, 200
	client := redistest.Client(t)
	ctx := context.Background()
	var envs []*env
	for i := 0; i < 2; i++ {
		envs = append(envs, newEnvWith(t, client, twoNumbers(), clock.NewFake(t0)))
	}
	envs[0].set(t, "ana", "whatsapp", presence.Online, "")
	client.HSet(ctx, envs[0].router.keys.capacity("ana"), "whatsapp", 1000)
	ph := func(i int) Identifier { return phone("55119" + strconv.Itoa(10000000+i)) }
	us := func(i int) Identifier { return bsuid("BR." + strconv.Itoa(500+i)) }
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < perWorker; i++ {
				r := envs[i%2].router
				c := rnd.Intn(customers)
				entry := []string{"100", "200"}[rnd.Intn(2)]
				if rnd.Intn(20) == 0 {
					_, _, _, _ = r.StartConversation(ctx, StartRequest{Agent: "ana", Channel: "whatsapp", EntryPoint: entry,
						ContactPhone: ph(c).Value, Message: Outbound{Kind: "template", Text: "t"}})
					continue
				}
				ids := [][]Identifier{{ph(c)}, {us(c)}, {ph(c), us(c)}}[rnd.Intn(3)]
				if _, err := r.Deliver(ctx, []Inbound{{Channel: "whatsapp", EntryPoint: entry, Identifiers: ids,
					ProviderMessageID: fmt.Sprintf("w%d-%d", w, i), At: t0, Kind: "text", Text: "oi"}}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	e := envs[0]
	for c := 0; c < customers; c++ {
		e.wa(t, "100", t0, Inbound{Identifiers: idents(ph(c), us(c))})
		if a, b := e.contactOf(t, ph(c)), e.contactOf(t, us(c)); a == "" || a != b {
			t.Fatalf("customer %d: phone → %q, user id → %q", c, a, b)
		}
	}
	P := e.router.keys.prefix()
	contacts := map[string]bool{}
	for _, k := range e.keysLike(t, "ident:*") {
		c := client.Get(ctx, k).Val()
		contacts[c] = true
		ident := strings.TrimPrefix(k, P+"ident:whatsapp:")
		if !client.SIsMember(ctx, e.router.keys.contactIDs(c), ident).Val() {
			t.Errorf("%s → %s, whose set lacks it", ident, c)
		}
	}
	if len(contacts) != customers || len(e.keysLike(t, "contact:*")) != customers || len(e.keysLike(t, "contactids:*")) != customers {
		t.Fatalf("%d contacts indexed, %d records, %d sets; want %d each", len(contacts), len(e.keysLike(t, "contact:*")),
			len(e.keysLike(t, "contactids:*")), customers)
	}
	for c := range contacts {
		for _, ident := range client.SMembers(ctx, e.router.keys.contactIDs(c)).Val() {
			if got := client.Get(ctx, P+"ident:whatsapp:"+ident).Val(); got != c {
				t.Errorf("contact %s has %s, whose key names %q", c, ident, got)
			}
		}
	}
	reached := map[string]bool{}
	for _, k := range e.keysLike(t, "convopen:*") {
		f := strings.Split(strings.TrimPrefix(k, P+"convopen:"), ":")
		conv := client.Get(ctx, k).Val()
		h := client.HGetAll(ctx, e.router.keys.conv(conv)).Val()
		if !contacts[f[2]] || h["contact_id"] != f[2] || h["entry_point"] != f[1] || h["state"] != "open" {
			t.Errorf("%s → %s: %v", k, conv, h)
		}
		reached[conv] = true
	}
	if len(reached) > 2*customers {
		t.Errorf("%d open conversations reached, want at most one per customer and number", len(reached))
	}
	detached := 0
	for _, k := range e.keysLike(t, "conv:*") {
		h := client.HGetAll(ctx, k).Val()
		// A conversation left open by a merge names the one that goes on (which a later merge may
		// have left open in turn): following the names ends at a reached one.
		next := h
		for i := 0; i < 10 && next["state"] == "open" && !reached[next["id"]] && next["merged_into"] != ""; i++ {
			next = client.HGetAll(ctx, e.router.keys.conv(next["merged_into"])).Val()
		}
		if h["state"] == "open" && !reached[next["id"]] {
			t.Errorf("open conversation %s is reached by nothing: %v", h["id"], h)
		}
		if h["merged_into"] != "" && h["state"] == "open" {
			detached++
		}
		if !contacts[h["contact_id"]] {
			t.Errorf("conversation %s belongs to a contact that is gone: %s", h["id"], h["contact_id"])
		}
	}
	t.Logf("%d conversations held by agents left open beside the one that goes on after merges", detached)
}

// TestAContactTakesOverAConversationOpenedBeforeContacts: before contacts, a WhatsApp conversation
// was keyed by the user id or the number itself; the first message after the upgrade finds it.
func TestAContactTakesOverAConversationOpenedBeforeContacts(t *testing.T) {
	e := newEnv(t, "longest_idle")
	ctx := context.Background()
	old, _ := e.wa(t, "100", t0, Inbound{ContactID: "5511933332222", ContactPhone: "+5511933332222"})
	if e.client.Get(ctx, e.router.keys.convOpen("whatsapp", "100", "5511933332222")).Val() != old {
		t.Fatal("the old-style conversation is not keyed by the number")
	}
	got, _ := e.wa(t, "100", t0.Add(time.Minute), Inbound{Identifiers: idents(phone("5511933332222"), bsuid("BR.3"))})
	k := e.contactOf(t, phone("5511933332222"))
	if got != old || e.client.HGet(ctx, e.router.keys.conv(old), "contact_id").Val() != k {
		t.Fatalf("the upgrade's first message went to %s, want %s", got, old)
	}
	if open := e.keysLike(t, "convopen:*"); len(open) != 1 || open[0] != e.router.keys.convOpen("whatsapp", "100", k) {
		t.Errorf("open keys %v", open)
	}
}

// Starting a conversation makes the agent a candidate again in the same script (least_busy scores
// the new load), returns the stored conversation, and offers what waits only to an agent online and
// below capacity: a paused agent's start leaves the waiting card waiting.
func TestStartMakesTheAgentACandidateAndOffersWhatWaits(t *testing.T) {
	cfg := testConfig("least_busy")
	cfg.Agents[0].Channels["whatsapp"] = configs.AgentChannel{Capacity: 5}
	e := newEnvWith(t, redistest.Client(t), cfg, clock.NewFake(t0))
	ctx := context.Background()
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.set(t, "ana", "whatsapp", presence.Paused, "lunch")
	e.customer(t, "whatsapp", "100", "c1", "hello")
	start := func(to string) Conversation {
		t.Helper()
		conv, _, isNew, err := e.router.StartConversation(ctx, StartRequest{Agent: "ana", Channel: "whatsapp", EntryPoint: "100",
			ContactPhone: to, Message: Outbound{Kind: "template", Text: "Seu pedido saiu"}})
		if err != nil || !isNew {
			t.Fatalf("start to %s: %v %v", to, isNew, err)
		}
		return conv
	}
	conv := start("+5511999990003")
	if stored, err := e.router.Conversation(ctx, conv.ID); err != nil || !reflect.DeepEqual(stored, conv) {
		t.Errorf("start returned %+v, stored %+v (%v)", conv, stored, err)
	}
	if e.waiting(t, "sales", "whatsapp") != 1 || len(e.pub.events["ana"]) != 0 {
		t.Fatalf("a paused agent's start offered the waiting card: %v", e.pub.events["ana"])
	}
	if _, err := e.client.ZScore(ctx, e.router.keys.avail("sales", "whatsapp"), "ana").Result(); err != redis.Nil {
		t.Fatalf("a paused agent became a candidate: %v", err)
	}
	// Online (written without the presence listener, as if the offer it triggers were lost): the
	// next start makes her a candidate again and offers her the card.
	e.client.HSet(ctx, presence.StateKey(e.router.keys.ks, "ana"), "whatsapp", string(presence.Online))
	start("+5511999990004")
	if cs := e.cards(t, "ana"); len(cs) != 3 || e.waiting(t, "sales", "whatsapp") != 0 {
		t.Fatalf("after the start: %d waiting, ana's cards %+v", e.waiting(t, "sales", "whatsapp"), cs)
	}
	// Nothing waits: the start only scores her by her new load.
	e.clock.Advance(time.Second)
	start("+5511999990005")
	load, _ := e.client.HGet(ctx, e.router.keys.load("ana"), "whatsapp").Int()
	score, err := e.client.ZScore(ctx, e.router.keys.avail("sales", "whatsapp"), "ana").Result()
	if want := float64(load)*leastBusyLoadUnit + float64(e.clock.Now().UnixMilli()); load < 3 || err != nil || score != want {
		t.Errorf("ana's least_busy score %v (%v), want %v (load %d)", score, err, want, load)
	}
}
