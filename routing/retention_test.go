package routing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

// retentionEnv is a router with short retention settings on a fake clock.
func retentionEnv(t *testing.T, keep, idle time.Duration) *env {
	t.Helper()
	client := redistest.Client(t)
	clk := clock.NewFake(t0)
	cfg := testConfig("longest_idle")
	ks := keyspace.New("t")
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clk})
	pub := &recorder{}
	r := NewRouter(client, ks, topology.New(cfg), Options{Clock: clk, Publisher: pub, Pauser: ps,
		Retention: RetentionOptions{ClosedConversations: keep, IdleClose: idle}})
	ps.AddListener(r)
	t.Cleanup(r.Shutdown)
	if err := r.SyncCapacity(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &env{router: r, presence: ps, pub: pub, clock: clk, client: client}
}

// whatsappCustomer delivers a message from a WhatsApp customer named by phone and user id.
func (e *env) whatsappCustomer(t *testing.T, phone, id, text string) string {
	t.Helper()
	res, err := e.router.Deliver(context.Background(), []Inbound{{Channel: "whatsapp", EntryPoint: "100", ContactName: "Maria",
		Identifiers: []Identifier{{IdentPhone, phone}, {IdentUserID, "BR." + phone}}, ProviderMessageID: id, At: e.clock.Now(),
		Kind: "text", Text: text, Payload: []byte(`{"channel":"whatsapp","kind":"text","text":"` + text + `","extra":"kept"}`)}})
	if err != nil || res.Recorded != 1 {
		t.Fatalf("deliver: %+v %v", res, err)
	}
	return res.Messages[0]
}

// keysMentioning lists the keys whose name contains any of the ids.
func (e *env) keysMentioning(t *testing.T, ids ...string) []string {
	t.Helper()
	var out []string
	for _, k := range e.client.Keys(context.Background(), "*").Val() {
		for _, id := range ids {
			if id != "" && strings.Contains(k, id) {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

// TestRetentionHoldsUntilAcknowledgedThenDeletesEverything: a closed conversation outlives its
// retention while the integration outlet owes an acknowledgement (the integ:unacked HASH, written
// here as the outlet would), is shown as held, and once acknowledged leaves Redis whole — messages
// both ways, card, refusals, contact, identifier index — while another customer's open conversation
// is untouched.
func TestRetentionHoldsUntilAcknowledgedThenDeletesEverything(t *testing.T) {
	ctx := context.Background()
	e := retentionEnv(t, time.Hour, 0)
	e.set(t, "ana", "whatsapp", presence.Online, "")
	m1 := e.whatsappCustomer(t, "5511999990001", "wamid.a1", "oi")
	m2 := e.whatsappCustomer(t, "5511999990001", "wamid.a2", "tudo bem?")
	cards := e.cards(t, "ana")
	if len(cards) != 1 {
		t.Fatalf("ana has %d cards, want 1", len(cards))
	}
	card, convID := cards[0].ID, cards[0].ConversationID
	if _, err := e.router.Accept(ctx, card, "ana"); err != nil {
		t.Fatal(err)
	}
	out, err := e.router.RecordOutbound(ctx, convID, "ana", "text", "olá", nil)
	if err != nil {
		t.Fatal(err)
	}
	conv, _ := e.router.Conversation(ctx, convID)
	contact := conv.Contact.ID
	// Another customer, still open at the end.
	e.whatsappCustomer(t, "5511999990002", "wamid.b1", "bom dia")
	if _, err := e.router.Close(ctx, card, "ana", false); err != nil {
		t.Fatal(err)
	}
	e.client.HSet(ctx, "cg:{t}:integ:unacked", convID, 2)
	e.client.ZAdd(ctx, "cg:{t}:integ:unacked_since", redis.Z{Score: float64(e.clock.Now().UnixMilli()), Member: convID})

	mine := []string{convID, card, m1, m2, out.ID, contact, "5511999990001"}
	before := e.keysMentioning(t, mine...)
	if len(before) < 7 {
		t.Fatalf("keys of the conversation before retention: %v", before)
	}
	e.clock.Advance(59 * time.Minute)
	if _, err := e.router.SweepRetention(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.keysMentioning(t, mine...); len(got) != len(before) {
		t.Fatalf("deleted before its retention: %v, had %v", got, before)
	}
	e.clock.Advance(2 * time.Minute)
	n, err := e.router.SweepRetention(ctx)
	if err != nil || n != 0 {
		t.Fatalf("sweep while unacknowledged: %d deleted, %v; want 0", n, err)
	}
	st, err := e.router.Retention(ctx)
	if err != nil || st.Held != 1 || st.OldestHold == nil || !st.OldestHold.Equal(e.clock.Now()) {
		t.Fatalf("retention status %+v %v, want 1 held since now", st, err)
	}
	if got := e.keysMentioning(t, mine...); len(got) != len(before) {
		t.Fatalf("deleted while unacknowledged: %v, had %v", got, before)
	}
	if m, err := e.router.Message(ctx, m1); err != nil || m.Text != "oi" {
		t.Fatalf("held message: %+v %v", m, err)
	}
	// Still unacknowledged a while later: still held, since the first time.
	held := e.clock.Now()
	e.clock.Advance(holdRetry)
	if n, _ := e.router.SweepRetention(ctx); n != 0 {
		t.Fatalf("deleted %d while unacknowledged", n)
	}
	if st, _ := e.router.Retention(ctx); st.Held != 1 || !st.OldestHold.Equal(held) {
		t.Fatalf("retention status %+v, want held since %v", st, held)
	}
	// The outlet acknowledges (its count goes to 0).
	e.client.HSet(ctx, "cg:{t}:integ:unacked", convID, 0)
	e.clock.Advance(holdRetry)
	if n, err := e.router.SweepRetention(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after acknowledgement: %d deleted, %v; want 1", n, err)
	}
	if got := e.keysMentioning(t, mine...); len(got) != 0 {
		t.Errorf("left after retention: %v", got)
	}
	if st, _ := e.router.Retention(ctx); st.Held != 0 || st.OldestHold != nil {
		t.Errorf("retention status %+v, want nothing held", st)
	}
	if _, err := e.router.Message(ctx, m1); err != ErrNotFound {
		t.Errorf("message after retention: %v, want not found", err)
	}
	// The other customer's open conversation is whole.
	other := e.keysMentioning(t, "5511999990002")
	if len(other) == 0 {
		t.Error("the open conversation's contact index was deleted")
	}
	// A redelivery of an expired message's notification (after Meta's 7 days of retries this cannot
	// come) would be a new message; the customer writing again opens a new conversation and contact.
	e.whatsappCustomer(t, "5511999990001", "wamid.a3", "voltei")
	cs := e.cards(t, "ana")
	if len(cs) != 2 || cs[0].ConversationID == convID || cs[1].ConversationID == convID || cs[1].Preview != "voltei" {
		t.Errorf("after retention the customer's new message: cards %+v", cs)
	}
}

// TestIdleConversationsCloseThroughTheClosePath: an open conversation silent longer than idle_close
// is closed with reason idle, its agent told on the stream and its slot freed; one where someone
// wrote recently stays open; with idle_close 0 nothing closes.
func TestIdleConversationsCloseThroughTheClosePath(t *testing.T) {
	ctx := context.Background()
	e := retentionEnv(t, time.Hour, 30*time.Minute)
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.whatsappCustomer(t, "5511999990001", "wamid.i1", "oi")
	e.whatsappCustomer(t, "5511999990002", "wamid.j1", "olá")
	cards := e.cards(t, "ana")
	if len(cards) != 2 {
		t.Fatalf("ana has %d cards, want 2", len(cards))
	}
	for _, c := range cards {
		if _, err := e.router.Accept(ctx, c.ID, "ana"); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(20 * time.Minute)
	// The agent answers the second customer: that conversation is not silent.
	var quiet, busy Card
	for _, c := range cards {
		if conv, _ := e.router.Conversation(ctx, c.ConversationID); conv.Contact.Phone == "+5511999990002" {
			busy = c
		} else {
			quiet = c
		}
	}
	if _, err := e.router.RecordOutbound(ctx, busy.ConversationID, "ana", "text", "em que posso ajudar?", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // the first look only schedules; a later one closes
		e.clock.Advance(5 * time.Minute)
		if _, err := e.router.SweepRetention(ctx); err != nil {
			t.Fatal(err)
		}
	}
	q, _ := e.router.Card(ctx, quiet.ID)
	b, _ := e.router.Card(ctx, busy.ID)
	if q.State != CardClosed || q.ClosedBy != ClosedIdle {
		t.Errorf("silent conversation's card: %s by %q, want closed by idle", q.State, q.ClosedBy)
	}
	if conv, _ := e.router.Conversation(ctx, quiet.ConversationID); conv.State != "closed" || conv.ClosedBy != ClosedIdle {
		t.Errorf("silent conversation: %s by %q, want closed by idle", conv.State, conv.ClosedBy)
	}
	if b.State != CardAccepted {
		t.Errorf("conversation answered 15 minutes ago: card %s, want accepted", b.State)
	}
	if n := e.pub.count("ana", EventConversationClosed); n != 1 {
		t.Errorf("ana was told of %d closed conversations, want 1", n)
	}
	if load := e.client.HGet(ctx, "cg:{t}:load:ana", "whatsapp").Val(); load != "1" {
		t.Errorf("ana's load %s, want 1", load)
	}

	off := retentionEnv(t, time.Hour, 0)
	off.whatsappCustomer(t, "5511999990003", "wamid.k1", "oi")
	for i := 0; i < 3; i++ {
		off.clock.Advance(48 * time.Hour)
		if _, err := off.router.SweepRetention(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := off.client.Keys(ctx, "cg:{t}:card:*").Val(); len(n) != 1 {
		t.Fatalf("cards: %v", n)
	}
	for _, k := range off.client.Keys(ctx, "cg:{t}:card:*").Val() {
		if st := off.client.HGet(ctx, k, "state").Val(); st != CardWaiting {
			t.Errorf("with idle_close 0 the card is %s, want still waiting", st)
		}
	}
}
