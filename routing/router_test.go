package routing

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// recorder is a Publisher that keeps what each agent was told.
type recorder struct {
	mu     sync.Mutex
	events map[string][]Event
}

func (r *recorder) Publish(_ context.Context, agent string, ev Event) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = map[string][]Event{}
	}
	r.events[agent] = append(r.events[agent], ev)
	return fmt.Sprint(len(r.events[agent])), nil
}

func (r *recorder) count(agent, typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events[agent] {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func testConfig(strategy string) *configs.Config {
	return &configs.Config{
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}, {ID: "no_answer", Label: "No answer"}},
		Queues: []configs.Queue{
			{ID: "sales", Channels: []string{"whatsapp", "webchat"}, Strategy: strategy, OfferTimeout: 30 * time.Second, NoAnswerLimit: 2},
			{ID: "support", Channels: []string{"webchat"}, Strategy: "longest_idle", OfferTimeout: 30 * time.Second},
		},
		Agents: []configs.Agent{
			{ID: "ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 2}, "webchat": {Capacity: 2}}},
			{ID: "bob", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 2}, "webchat": {Capacity: 2}}},
			{ID: "cat", Queues: []string{"support"}, Channels: map[string]configs.AgentChannel{"webchat": {Capacity: 2}}},
			{ID: "dan", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"webchat": {Capacity: 1}}},
		},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100", Queue: "sales"}}},
		WebChat:  configs.WebChat{Sites: []configs.Site{{ID: "shop", Queue: "support"}}},
		Presence: configs.Presence{HistoryRetention: 24 * time.Hour},
		Events:   configs.Events{MaxLen: 100},
	}
}

type env struct {
	router   *Router
	presence *presence.Store
	pub      *recorder
	clock    *clock.Fake
	client   *redis.Client
}

func newEnv(t testing.TB, strategy string) *env {
	t.Helper()
	client := redistest.Client(t)
	return newEnvOn(t, client, strategy, clock.NewFake(t0))
}

func newEnvOn(t testing.TB, client *redis.Client, strategy string, clk *clock.Fake) *env {
	t.Helper()
	return newEnvWith(t, client, testConfig(strategy), clk)
}

func newEnvWith(t testing.TB, client *redis.Client, cfg *configs.Config, clk *clock.Fake) *env {
	t.Helper()
	ks := keyspace.New("t")
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clk})
	pub := &recorder{}
	r := NewRouter(client, ks, topology.New(cfg), Options{Clock: clk, Publisher: pub, Pauser: ps, Audit: true})
	ps.AddListener(r)
	t.Cleanup(r.Shutdown)
	if err := r.SyncCapacity(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &env{router: r, presence: ps, pub: pub, clock: clk, client: client}
}

func (e *env) set(t testing.TB, agent, ch string, want presence.State, reason string) {
	t.Helper()
	if _, err := e.presence.Set(context.Background(), agent, ch, want, reason, agent, presence.CauseToggle); err != nil {
		t.Fatalf("presence %s %s %s: %v", agent, ch, want, err)
	}
}

var msgSeq int

func (e *env) customer(t testing.TB, ch, entry, contact, text string) DeliverResult {
	t.Helper()
	msgSeq++
	res, err := e.router.Deliver(context.Background(), []Inbound{{Channel: ch, EntryPoint: entry, ContactID: contact,
		ContactName: contact, ProviderMessageID: fmt.Sprintf("p-%s-%d", contact, msgSeq), At: e.clock.Now(), Kind: "text", Text: text}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (e *env) cards(t testing.TB, agent string) []Card {
	t.Helper()
	cs, err := e.router.Cards(context.Background(), agent)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func (e *env) waiting(t testing.TB, queue, ch string) int64 {
	t.Helper()
	return e.client.ZCard(context.Background(), e.router.keys.waiting(queue, ch)).Val()
}

func TestOnlyEligibleAgentsGetCards(t *testing.T) {
	e := newEnv(t, "longest_idle")
	// Nobody online: the card waits.
	e.customer(t, "whatsapp", "100", "c1", "hello")
	if got := e.waiting(t, "sales", "whatsapp"); got != 1 {
		t.Fatalf("waiting with nobody online: got %d, want 1", got)
	}
	// cat is online on webchat but not in sales; dan is in sales but has no whatsapp.
	e.set(t, "cat", "webchat", presence.Online, "")
	e.set(t, "dan", "webchat", presence.Online, "")
	// bob is logged in but paused on whatsapp (and webchat, one group).
	// bob pauses webchat, then logs into whatsapp: one group, so whatsapp lands paused.
	e.set(t, "bob", "webchat", presence.Online, "")
	e.set(t, "bob", "webchat", presence.Paused, "lunch")
	e.set(t, "bob", "whatsapp", presence.Online, "")
	if got := e.waiting(t, "sales", "whatsapp"); got != 1 {
		t.Fatalf("waiting with only ineligible agents online: got %d, want 1", got)
	}
	for _, a := range []string{"bob", "cat", "dan"} {
		if n := len(e.cards(t, a)); n != 0 {
			t.Errorf("%s got %d cards, want none", a, n)
		}
	}
	// ana logs in on whatsapp: the waiting card is offered to her at once.
	e.set(t, "ana", "whatsapp", presence.Online, "")
	if cs := e.cards(t, "ana"); len(cs) != 1 || cs[0].State != CardOffered || cs[0].Contact.ID != "c1" {
		t.Fatalf("ana's cards after login: %+v", cs)
	}
	// Capacity 2: a second and third customer → one more card for ana, the third waits.
	e.customer(t, "whatsapp", "100", "c2", "hi")
	e.customer(t, "whatsapp", "100", "c3", "hey")
	if n := len(e.cards(t, "ana")); n != 2 {
		t.Errorf("ana at capacity 2 holds %d cards", n)
	}
	if got := e.waiting(t, "sales", "whatsapp"); got != 1 {
		t.Errorf("over capacity: %d waiting, want 1", got)
	}
	if e.pub.count("ana", EventCardOffered) != 2 {
		t.Errorf("ana was told of %d offers, want 2", e.pub.count("ana", EventCardOffered))
	}
}

func TestStrategies(t *testing.T) {
	t.Run("longest_idle", func(t *testing.T) {
		e := newEnv(t, "longest_idle")
		e.set(t, "ana", "whatsapp", presence.Online, "")
		e.clock.Advance(time.Second)
		e.set(t, "bob", "whatsapp", presence.Online, "")
		e.clock.Advance(time.Second)
		e.customer(t, "whatsapp", "100", "c1", "1") // ana idle longest
		e.clock.Advance(time.Second)
		e.customer(t, "whatsapp", "100", "c2", "2") // then bob
		e.clock.Advance(time.Second)
		e.customer(t, "whatsapp", "100", "c3", "3") // ana again (her last offer is older)
		if a, b := len(e.cards(t, "ana")), len(e.cards(t, "bob")); a != 2 || b != 1 {
			t.Errorf("got ana=%d bob=%d, want 2 and 1", a, b)
		}
		if first := e.cards(t, "ana")[0]; first.Contact.ID != "c1" {
			t.Errorf("the first card went to %+v", first)
		}
	})
	t.Run("least_busy", func(t *testing.T) {
		e := newEnv(t, "least_busy")
		e.set(t, "ana", "whatsapp", presence.Online, "")
		e.customer(t, "whatsapp", "100", "c1", "1") // ana (alone)
		e.clock.Advance(time.Second)
		e.set(t, "bob", "whatsapp", presence.Online, "")
		e.clock.Advance(time.Second)
		e.customer(t, "whatsapp", "100", "c2", "2") // bob: ana is busier
		e.clock.Advance(time.Second)
		e.customer(t, "whatsapp", "100", "c3", "3") // tie 1–1: the one offered longest ago, ana
		if a, b := len(e.cards(t, "ana")), len(e.cards(t, "bob")); a != 2 || b != 1 {
			t.Errorf("got ana=%d bob=%d, want 2 and 1", a, b)
		}
		if c := e.cards(t, "bob"); c[0].Contact.ID != "c2" {
			t.Errorf("bob's card is %s, want c2", c[0].Contact.ID)
		}
	})
	t.Run("round_robin", func(t *testing.T) {
		e := newEnv(t, "round_robin")
		e.set(t, "ana", "webchat", presence.Online, "")
		e.clock.Advance(time.Second)
		e.set(t, "bob", "webchat", presence.Online, "")
		e.clock.Advance(time.Second)
		e.set(t, "dan", "webchat", presence.Online, "")
		e.router.entries["webchat:shop2"] = "sales" // a site feeding sales
		var got []string
		for i := 0; i < 3; i++ {
			e.clock.Advance(time.Second)
			e.customer(t, "webchat", "shop2", fmt.Sprintf("v%d", i), "hi")
			for _, a := range []string{"ana", "bob", "dan"} {
				for _, c := range e.cards(t, a) {
					if c.Contact.ID == fmt.Sprintf("v%d", i) {
						got = append(got, a)
					}
				}
			}
		}
		if fmt.Sprint(got) != "[ana bob dan]" {
			t.Errorf("round robin order: got %v, want [ana bob dan]", got)
		}
	})
}

func TestStickyDeliveryEvenWhenPaused(t *testing.T) {
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "c1", "first")
	card := e.cards(t, "ana")[0]
	if _, err := e.router.Accept(context.Background(), card.ID, "ana"); err != nil {
		t.Fatal(err)
	}
	// The accept is on ana's own stream, so her other tabs stop offering the card.
	if got := e.pub.count("ana", EventCardAccepted); got != 1 {
		t.Errorf("ana got %d card.accepted, want 1", got)
	}
	if _, err := e.router.Accept(context.Background(), card.ID, "ana"); err == nil || e.pub.count("ana", EventCardAccepted) != 1 {
		t.Errorf("a second accept: err %v, card.accepted %d; want refused and no event", err, e.pub.count("ana", EventCardAccepted))
	}
	e.set(t, "ana", "whatsapp", presence.Paused, "lunch")
	e.set(t, "bob", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "c1", "second")
	if got := e.pub.count("ana", EventMessageReceived); got != 1 {
		t.Errorf("paused ana got %d message.received for her open conversation, want 1", got)
	}
	if n := len(e.cards(t, "bob")); n != 0 {
		t.Errorf("bob got %d cards for ana's conversation", n)
	}
	msgs, _ := e.router.Messages(context.Background(), card.ConversationID, 10)
	if len(msgs) != 2 || msgs[1].Text != "second" {
		t.Errorf("conversation messages: %+v", msgs)
	}
	// A new customer while ana is paused goes to bob.
	e.customer(t, "whatsapp", "100", "c2", "new")
	if n := len(e.cards(t, "bob")); n != 1 {
		t.Errorf("bob got %d cards, want the new conversation", n)
	}
}

func TestLogoutRequeuesFirstInLine(t *testing.T) {
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "c1", "one")
	e.clock.Advance(time.Second)
	e.customer(t, "whatsapp", "100", "c2", "two")
	e.clock.Advance(time.Second)
	for _, c := range e.cards(t, "ana") {
		if _, err := e.router.Accept(context.Background(), c.ID, "ana"); err != nil {
			t.Fatal(err)
		}
	}
	e.customer(t, "whatsapp", "100", "c3", "three") // waits: ana is full
	e.set(t, "ana", "whatsapp", presence.Offline, "")
	if n := len(e.cards(t, "ana")); n != 0 {
		t.Fatalf("ana holds %d cards after logout", n)
	}
	if got := e.pub.count("ana", EventCardRevoked); got != 2 {
		t.Errorf("ana told of %d revoked cards, want 2", got)
	}
	e.set(t, "bob", "whatsapp", presence.Online, "")
	got := []string{}
	for _, c := range e.cards(t, "bob") {
		got = append(got, c.Contact.ID)
	}
	if fmt.Sprint(got) != "[c1 c2]" {
		t.Errorf("bob (capacity 2) got %v, want the requeued c1 and c2 before c3", got)
	}
}

func TestWaitingCardsMoveOnResumeAndClose(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "longest_idle")
	e.set(t, "dan", "webchat", presence.Online, "")
	e.set(t, "dan", "webchat", presence.Paused, "lunch")
	e.router.entries["webchat:shop2"] = "sales"
	e.customer(t, "webchat", "shop2", "v1", "a")
	e.customer(t, "webchat", "shop2", "v2", "b")
	e.set(t, "dan", "webchat", presence.Online, "") // resume
	cs := e.cards(t, "dan")
	if len(cs) != 1 {
		t.Fatalf("after resume dan (capacity 1) holds %d cards", len(cs))
	}
	if _, err := e.router.Accept(ctx, cs[0].ID, "dan"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.router.Close(ctx, cs[0].ID, "dan", false); err != nil {
		t.Fatal(err)
	}
	cs = e.cards(t, "dan")
	if len(cs) != 1 || cs[0].Contact.ID != "v2" {
		t.Fatalf("after close dan holds %+v, want v2", cs)
	}
	if e.pub.count("dan", EventConversationClosed) != 1 {
		t.Error("no conversation.closed event")
	}
	// A closed conversation's customer starts a new conversation.
	e.customer(t, "webchat", "shop2", "v1", "again")
	if got := e.waiting(t, "sales", "webchat"); got != 1 {
		t.Errorf("new conversation after close: %d waiting, want 1", got)
	}
}

func TestDeclineAndTimeoutMoveTheCardOn(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.clock.Advance(time.Second)
	e.set(t, "bob", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "c1", "hello")
	card := e.cards(t, "ana")[0]
	if _, err := e.router.Decline(ctx, card.ID, "ana"); err != nil {
		t.Fatal(err)
	}
	if cs := e.cards(t, "bob"); len(cs) != 1 || cs[0].ID != card.ID {
		t.Fatalf("after ana declined, bob holds %+v", cs)
	}
	// bob lets it time out: nobody else may take it but ana, who declined it; it waits.
	e.clock.Advance(31 * time.Second)
	if n, err := e.router.SweepTimeouts(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if e.pub.count("bob", EventCardRevoked) != 1 {
		t.Error("bob was not told the offer was revoked")
	}
	if got := e.waiting(t, "sales", "whatsapp"); got != 1 {
		t.Errorf("a card refused by everyone: %d waiting, want 1", got)
	}
	// A new agent takes it.
	e.set(t, "dan", "webchat", presence.Online, "") // dan has no whatsapp: still waiting
	if got := e.waiting(t, "sales", "whatsapp"); got != 1 {
		t.Errorf("%d waiting, want 1", got)
	}
}

func TestUnansweredOffersPauseTheAgent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.set(t, "ana", "webchat", presence.Online, "")
	for i := 0; i < 2; i++ {
		e.customer(t, "whatsapp", "100", fmt.Sprintf("c%d", i), "hi")
		e.clock.Advance(31 * time.Second)
		if _, err := e.router.SweepTimeouts(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := e.presence.Get(ctx, "ana")
	for _, c := range p.Channels {
		if c.State != presence.Paused || c.Reason != "no_answer" {
			t.Errorf("after 2 unanswered offers ana's %s is %s/%s, want paused/no_answer (whole group)", c.Channel, c.State, c.Reason)
		}
	}
}

func TestRedeliveredMessageIsRecordedOnce(t *testing.T) {
	e := newEnv(t, "longest_idle")
	in := []Inbound{{Channel: "whatsapp", EntryPoint: "100", ContactID: "c1", ProviderMessageID: "wamid.SAME", Kind: "text", Text: "once"}}
	var wg sync.WaitGroup
	results := make([]DeliverResult, 3)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := e.router.Deliver(context.Background(), in)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}(i)
	}
	wg.Wait()
	recorded := 0
	for _, r := range results {
		recorded += r.Recorded
	}
	if recorded != 1 {
		t.Fatalf("recorded %d times, want once: %+v", recorded, results)
	}
	if got := e.waiting(t, "sales", "whatsapp"); got != 1 {
		t.Errorf("%d cards, want one", got)
	}
	res, _ := e.router.Deliver(context.Background(), []Inbound{{Channel: "whatsapp", EntryPoint: "999", ContactID: "c1", ProviderMessageID: "x"}})
	if res.Unrouted != 1 || res.Recorded != 0 {
		t.Errorf("unknown entry point: %+v, want unrouted", res)
	}
}

func TestStatusStateMachine(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "c1", "hi")
	card := e.cards(t, "ana")[0]
	e.router.Accept(ctx, card.ID, "ana")
	m, err := e.router.RecordOutbound(ctx, card.ConversationID, "ana", "text", "hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, changed, _ := e.router.UpdateStatus(ctx, m.ID, StatusUpdate{State: "sent", ProviderMessageID: "wamid.OUT"}); !changed {
		t.Fatal("sent did not apply")
	}
	for _, step := range []struct {
		state   string
		changed bool
		want    string
	}{
		{"read", true, "read"},
		{"delivered", false, "read"}, // late delivered never overwrites read
		{"sent", false, "read"},
		{"failed", false, "read"}, // read proves delivery
	} {
		got, outcome, err := e.router.ApplyProviderStatus(ctx, "whatsapp", "wamid.OUT", StatusUpdate{State: step.state})
		if changed := outcome == StatusApplied; err != nil || changed != step.changed || got.Status != step.want {
			t.Errorf("%s: got %s %s %v, want %s changed=%v", step.state, got.Status, outcome, err, step.want, step.changed)
		}
	}
	m2, _ := e.router.RecordOutbound(ctx, card.ConversationID, "ana", "text", "again", nil)
	e.router.UpdateStatus(ctx, m2.ID, StatusUpdate{State: "sent", ProviderMessageID: "wamid.OUT2"})
	got, _, _ := e.router.ApplyProviderStatus(ctx, "whatsapp", "wamid.OUT2", StatusUpdate{State: "failed", Error: &MessageError{Code: 131047, Title: "Re-engagement message"}})
	if got.Status != "failed" || got.Error == nil || got.Error.Code != 131047 {
		t.Errorf("failed: got %+v", got)
	}
	if got, changed, _ := e.router.ApplyProviderStatus(ctx, "whatsapp", "wamid.OUT2", StatusUpdate{State: "delivered"}); changed != StatusStale || got.Status != "failed" {
		t.Errorf("delivered after failed: got %s changed=%v, want failed is final", got.Status, changed)
	}
	if _, changed, err := e.router.ApplyProviderStatus(ctx, "whatsapp", "wamid.UNKNOWN", StatusUpdate{State: "read"}); changed != StatusPending || err != nil {
		t.Errorf("unknown provider id (kept for its send): got %s err=%v", changed, err)
	}
	if e.pub.count("ana", EventMessageStatus) != 4 {
		t.Errorf("ana got %d message.status events, want 4 (sent, read; sent, failed)", e.pub.count("ana", EventMessageStatus))
	}
}

type closedRecorder struct {
	mu    sync.Mutex
	convs []Conversation
}

func (c *closedRecorder) ConversationClosed(_ context.Context, conv Conversation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.convs = append(c.convs, conv)
}

func TestConversationListenersHearOfCloses(t *testing.T) {
	e := newEnv(t, "longest_idle")
	heard := &closedRecorder{}
	e.router.AddConversationListener(heard)
	e.set(t, "cat", "webchat", presence.Online, "")
	e.customer(t, "webchat", "shop", "v-1", "hello")
	card := e.cards(t, "cat")[0]
	ctx := context.Background()
	if _, err := e.router.Accept(ctx, card.ID, "cat"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.router.Close(ctx, card.ID, "bob", false); err == nil {
		t.Fatal("a stranger closed the card")
	}
	if len(heard.convs) != 0 {
		t.Fatalf("a refused close was announced: %+v", heard.convs)
	}
	if _, err := e.router.Close(ctx, card.ID, "cat", false); err != nil {
		t.Fatal(err)
	}
	if len(heard.convs) != 1 || heard.convs[0].ID != card.ConversationID || heard.convs[0].State != "closed" ||
		heard.convs[0].Contact.ID != "v-1" || heard.convs[0].EntryPoint != "shop" {
		t.Fatalf("listener heard %+v", heard.convs)
	}
}

type autoReplies struct {
	mu   sync.Mutex
	sent []string // conversation id + ": " + text
}

func (a *autoReplies) AutoReply(_ context.Context, conv Conversation, text string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sent = append(a.sent, conv.ID+": "+text)
	return nil
}

func (a *autoReplies) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.sent...)
}

func TestNoAgentsMessageWhenNobodyIsLoggedIn(t *testing.T) {
	e := newEnv(t, "longest_idle")
	q := e.router.queues["sales"]
	q.NoAgentsMessage = "We are offline"
	e.router.queues["sales"] = q
	replies := &autoReplies{}
	e.router.SetAutoReplier(replies)

	res := e.customer(t, "whatsapp", "100", "5511000000001", "hello?")
	conv := e.client.HGet(context.Background(), e.router.keys.msg(res.Messages[0]), "conversation_id").Val()
	if got := replies.list(); len(got) != 1 || got[0] != conv+": We are offline" {
		t.Fatalf("auto replies: %v", got)
	}
	if e.waiting(t, "sales", "whatsapp") != 1 {
		t.Fatal("the card does not wait")
	}
	// A second message of the same conversation is not answered again.
	e.customer(t, "whatsapp", "100", "5511000000001", "anyone?")
	if got := replies.list(); len(got) != 1 {
		t.Fatalf("auto replies: %v", got)
	}
	// A paused agent is logged in: a new customer gets no automatic message, and waits.
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.set(t, "ana", "whatsapp", presence.Paused, "lunch")
	e.customer(t, "whatsapp", "100", "5511000000002", "hi")
	if got := replies.list(); len(got) != 1 {
		t.Fatalf("answered although ana is logged in: %v", got)
	}
	// Agents of another queue or channel do not count: cat is online on webchat only, in support.
	e.set(t, "ana", "whatsapp", presence.Offline, "")
	e.set(t, "cat", "webchat", presence.Online, "")
	e.customer(t, "whatsapp", "100", "5511000000003", "hi")
	if got := replies.list(); len(got) != 2 {
		t.Fatalf("auto replies: %v", got)
	}
}

func TestMaxWait(t *testing.T) {
	for _, action := range []string{"keep", "close"} {
		t.Run(action, func(t *testing.T) {
			e := newEnv(t, "longest_idle")
			q := e.router.queues["support"]
			q.MaxWait, q.MaxWaitAction, q.MaxWaitMessage = 5*time.Minute, action, "Sorry, nobody could answer; write again later"
			e.router.queues["support"] = q
			replies := &autoReplies{}
			e.router.SetAutoReplier(replies)
			closed := &closedRecorder{}
			e.router.AddConversationListener(closed)

			e.customer(t, "webchat", "shop", "v-old", "hello")
			e.clock.Advance(3 * time.Minute)
			e.customer(t, "webchat", "shop", "v-new", "hello")
			e.clock.Advance(2*time.Minute + time.Second) // v-old waited 5:01, v-new 2:01
			ctx := context.Background()
			n, err := e.router.SweepMaxWait(ctx)
			if err != nil || n != 1 {
				t.Fatalf("sweep: %d %v", n, err)
			}
			if n, _ := e.router.SweepMaxWait(ctx); n != 0 {
				t.Fatalf("a second sweep handled %d cards again", n)
			}
			switch action {
			case "keep":
				if e.waiting(t, "support", "webchat") != 2 || len(replies.list()) != 0 || len(closed.convs) != 0 {
					t.Fatalf("keep: waiting %d, replies %v, closed %d", e.waiting(t, "support", "webchat"), replies.list(), len(closed.convs))
				}
			case "close":
				if e.waiting(t, "support", "webchat") != 1 || len(closed.convs) != 1 || closed.convs[0].Contact.ID != "v-old" {
					t.Fatalf("close: waiting %d, closed %+v", e.waiting(t, "support", "webchat"), closed.convs)
				}
				if got := replies.list(); len(got) != 1 || got[0] != closed.convs[0].ID+": Sorry, nobody could answer; write again later" {
					t.Fatalf("replies: %v", got)
				}
				// The customer writing again opens a new conversation.
				res := e.customer(t, "webchat", "shop", "v-old", "back")
				conv := e.client.HGet(ctx, e.router.keys.msg(res.Messages[0]), "conversation_id").Val()
				if conv == closed.convs[0].ID {
					t.Fatal("a closed conversation was reopened")
				}
			}
			// Cards an agent took are never touched, however long ago they arrived.
			e.set(t, "cat", "webchat", presence.Online, "")
			offered := len(e.cards(t, "cat"))
			if offered == 0 || e.waiting(t, "support", "webchat") != 0 {
				t.Fatalf("cat was offered %d cards, %d still wait", offered, e.waiting(t, "support", "webchat"))
			}
			e.clock.Advance(time.Hour)
			if n, err := e.router.SweepMaxWait(ctx); n != 0 || err != nil {
				t.Fatalf("the sweep handled %d offered cards (%v)", n, err)
			}
			for _, c := range e.cards(t, "cat") {
				if c.State != CardOffered {
					t.Fatalf("an offered card was changed by the sweep: %+v", c)
				}
			}
		})
	}
}

func TestStartWritesCapacitiesBeforeTraffic(t *testing.T) {
	client := redistest.Client(t)
	cfg := testConfig("longest_idle")
	r := NewRouter(client, keyspace.New("t"), topology.New(cfg), Options{Clock: clock.NewFake(t0), Publisher: &recorder{}})
	t.Cleanup(r.Shutdown)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if got := client.HGet(context.Background(), r.keys.capacity("ana"), "whatsapp").Val(); got != "2" {
		t.Fatalf("ana's WhatsApp capacity in Redis after Start: %q, want 2", got)
	}
}
