package integrations

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/outbox"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
)

// A conversation's life reaches the receiver as signed events, in order, each with its whole data:
// the contact with every identifier, a media link that the gateway's signer accepts, the card's
// offer and acceptance, the agent's reply and the closing with its transcript. Both signatures of
// a secret rotation verify.
func TestConversationEventsAreSignedOrderedAndWhole(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, secretB, nil)
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) { w.Secret, w.PreviousSecret = secretA, secretB }))
	s := e.start(t, nil)
	if _, err := e.presence.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	e.customer(t, "5511999990001", "text", "Oi! Meu pedido atrasou.")
	e.customer(t, "5511999990001", "image", "")
	card := e.mustCard(t, "ana")
	if _, err := e.router.Accept(ctx, card.ID, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.router.Reply(ctx, card.ConversationID, "ana", routing.Outbound{Kind: "text", Text: "Vou verificar."}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.router.Close(ctx, card.ID, "ana", false); err != nil {
		t.Fatal(err)
	}
	want := []string{"conversation.opened", "message.received", "card.offered", "message.received", "card.accepted", "message.sent", "conversation.closed"}
	// presence.changed (ana's login) arrives too, in its own order: count the conversation's events only
	testutil.Eventually(t, 20*time.Second, "the conversation's events at the receiver", func() bool {
		n := 0
		for _, r := range rc.acked() {
			if r.typ != "presence.changed" {
				n++
			}
		}
		return n >= len(want)
	})
	got := rc.acked()
	var types []string
	for _, r := range got {
		if r.typ != "presence.changed" {
			types = append(types, r.typ)
		}
	}
	if !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	byType := map[string]received{}
	for _, r := range got {
		if _, seen := byType[r.typ]; !seen {
			byType[r.typ] = r
		}
		if r.id == "" || r.event["id"] != r.id {
			t.Fatalf("event id %v, webhook-id %q", r.event["id"], r.id)
		}
	}
	// the contact, with every identifier
	data := byType["message.received"].event["data"].(map[string]any)
	contact := data["contact"].(map[string]any)
	if contact["phone"] != "+5511999990001" || contact["user_id"] != "BR.5511999990001" {
		t.Fatalf("contact %v", contact)
	}
	ids := fmt.Sprint(contact["identifiers"])
	if !strings.Contains(ids, "kind:phone value:5511999990001") || !strings.Contains(ids, "kind:bsuid value:BR.5511999990001") {
		t.Fatalf("identifiers %s", ids)
	}
	// the media link is signed and valid
	var media string
	for _, r := range got {
		if m, ok := r.event["data"].(map[string]any)["message"].(map[string]any); ok && m["kind"] == "image" {
			media, _ = m["media_url"].(string)
		}
	}
	u, err := url.Parse(media)
	if err != nil || !strings.HasPrefix(media, "https://gw.example/v1/messages/") {
		t.Fatalf("media url %q", media)
	}
	msgID := strings.TrimSuffix(strings.TrimPrefix(u.Path, "/v1/messages/"), "/media")
	if err := testMediaLinks.Verify(msgID, u.Query().Get("exp"), u.Query().Get("sig")); err != nil {
		t.Fatalf("media link: %v", err)
	}
	// closed: the closing data and the transcript inline
	closed := byType["conversation.closed"].event["data"].(map[string]any)
	if closed["conversation"].(map[string]any)["closed_by"] != "ana" || len(closed["transcript"].([]any)) != 3 {
		t.Fatalf("conversation.closed data %v", closed)
	}
	// every request passed the independent check with the receiver's secret (the previous one)
	rc.mu.Lock()
	bad := rc.badSig
	rc.mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d requests failed the independent signature check", bad)
	}
	testutil.Eventually(t, 5*time.Second, "holds released", func() bool { return e.held(t, card.ConversationID) == 0 })
	st, err := s.Status(ctx)
	if err != nil || st.Subscriptions[0].State != "healthy" || st.Held.Conversations != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
}

// A transfer reaches the receiver as conversation.transferred, written by the transfer's own
// script (durable like every other event), after the events that came before it.
func TestTransferIsAnEvent(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, secretA, nil)
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) {
		w.Secret = secretA
		w.Events = []string{"card.accepted", "conversation.transferred"}
	}))
	e.start(t, nil)
	if _, err := e.presence.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	e.customer(t, "5511999990002", "text", "Quero falar com o gerente.")
	card := e.mustCard(t, "ana")
	if _, err := e.router.Accept(ctx, card.ID, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.router.Transfer(ctx, card.ConversationID, routing.TransferRequest{ToQueue: "vip", Note: "cliente VIP", By: "ana"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "the transfer at the receiver", func() bool { return len(rc.acked()) >= 2 })
	got := rc.acked()
	if got[0].typ != "card.accepted" || got[1].typ != "conversation.transferred" {
		t.Fatalf("events %v", rc.ackedTypes())
	}
	data := got[1].event["data"].(map[string]any)
	tr, _ := data["transfer"].(map[string]any)
	if data["conversation_id"] != card.ConversationID || tr["to_queue"] != "vip" || tr["from"] != "ana" || tr["by"] != "ana" ||
		tr["note"] != "cliente VIP" || tr["from_queue"] != "sales" {
		t.Fatalf("transferred data %v", data)
	}
}

func (e *env) mustCard(t testing.TB, agent string) routing.Card {
	t.Helper()
	var cards []routing.Card
	testutil.Eventually(t, 5*time.Second, "a card offered to "+agent, func() bool {
		cards, _ = e.router.Cards(context.Background(), agent)
		return len(cards) > 0
	})
	return cards[0]
}

// Both secrets of a rotation sign each request: a receiver knowing only the old one accepts it.
func TestRotationSignsWithBothSecrets(t *testing.T) {
	old := newReceiver(t, secretA, nil)
	e := newEnv(t, nil, hook("crm", old.srv.URL, func(w *configs.Webhook) { w.Secret, w.PreviousSecret = secretB, secretA }))
	e.start(t, nil)
	e.customer(t, "5511999990002", "text", "oi")
	testutil.Eventually(t, 10*time.Second, "delivery to a receiver with the old secret", func() bool { return len(old.acked()) >= 2 })
	for _, r := range old.all() {
		if r.status != 200 {
			t.Fatalf("answered %d", r.status)
		}
	}
}

// Under a receiver that fails a quarter of the requests and answers slowly now and then, with two
// gateway instances of four workers each, every conversation's events arrive in order — a later
// event only after the one before was acknowledged — and none is lost.
func TestOrderPerConversationUnderFailuresTwoInstances(t *testing.T) {
	const convs, msgs = 12, 12
	var mu sync.Mutex
	lastAcked := map[string]int{}
	violations := []string{}
	rnd := rand.New(rand.NewPCG(1, 2))
	rc := newReceiver(t, secretA, func(r received, _ int) int {
		if r.typ != "message.received" {
			return 200
		}
		c, j := parseText(r.text)
		mu.Lock()
		defer mu.Unlock()
		prev, ok := lastAcked[c]
		if !ok {
			prev = -1
		}
		if j > prev+1 {
			violations = append(violations, fmt.Sprintf("%s: got %d before %d was acknowledged", c, j, prev+1))
		}
		fail := rnd.IntN(4) == 0
		slow := rnd.IntN(10) == 0
		if slow {
			mu.Unlock()
			time.Sleep(30 * time.Millisecond)
			mu.Lock()
		}
		if fail {
			return http.StatusServiceUnavailable
		}
		if j > prev {
			lastAcked[c] = j
		}
		return 200
	})
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) { w.Workers = 4 }))
	e.start(t, nil)
	e.start(t, nil)
	var wg sync.WaitGroup
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range msgs {
				e.customer(t, fmt.Sprintf("55119%08d", c), "text", fmt.Sprintf("c%d-m%d", c, j))
			}
		}()
	}
	wg.Wait()
	testutil.Eventually(t, 60*time.Second, "every message acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(lastAcked) < convs {
			return false
		}
		for _, j := range lastAcked {
			if j != msgs-1 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("order violated: %v", violations)
	}
	testutil.Eventually(t, 10*time.Second, "no conversation held", func() bool {
		h, _ := HeldTotal(context.Background(), e.client, e.ks)
		return h.Conversations == 0
	})
}

func parseText(s string) (string, int) {
	c, m, _ := strings.Cut(s, "-m")
	j, err := strconv.Atoi(m)
	if err != nil {
		return s, -1
	}
	return c, j
}

// A timeout and a 429 with Retry-After are retried with the same webhook-id; the retry after a
// Retry-After comes no sooner than it asked.
func TestTimeoutsAndRetryAfterAreRetriedWithTheSameID(t *testing.T) {
	rc := newReceiver(t, secretA, func(r received, n int) int {
		switch n {
		case 0:
			time.Sleep(700 * time.Millisecond) // past the subscription's timeout
			return 200
		case 1:
			return http.StatusTooManyRequests // Retry-After: 1
		}
		return 200
	})
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) {
		w.Timeout = 300 * time.Millisecond
		w.Events = []string{"conversation.opened"}
	}))
	e.start(t, nil)
	e.customer(t, "5511999990003", "text", "oi")
	testutil.Eventually(t, 15*time.Second, "the third attempt", func() bool { return len(rc.all()) >= 3 })
	got := rc.all()
	if got[0].id != got[1].id || got[1].id != got[2].id {
		t.Fatalf("webhook-ids %q %q %q", got[0].id, got[1].id, got[2].id)
	}
	if gap := got[2].at.Sub(got[1].at); gap < time.Second {
		t.Fatalf("retried %v after a Retry-After of 1 s", gap)
	}
	if len(rc.acked()) != 1 && len(rc.acked()) != 2 { // the timed-out one may have been answered 200 late
		t.Fatalf("acked %d", len(rc.acked()))
	}
}

// A 410 Gone disables the subscription: what it was owed is dropped and its holds released, nothing
// more is sent to it; an operator enables it again and events flow.
func TestGoneDisablesTheSubscription(t *testing.T) {
	ctx := context.Background()
	var gone sync.Mutex
	answer410 := true
	rc := newReceiver(t, secretA, func(received, int) int {
		gone.Lock()
		defer gone.Unlock()
		if answer410 {
			return http.StatusGone
		}
		return 200
	})
	e := newEnv(t, nil, hook("crm", rc.srv.URL))
	s := e.start(t, nil)
	res := e.customer(t, "5511999990004", "text", "oi")
	conv := e.convOf(t, res)
	testutil.Eventually(t, 10*time.Second, "the subscription disabled", func() bool {
		st, _ := s.Status(ctx)
		return st.Subscriptions[0].State == "disabled"
	})
	if n := e.held(t, conv); n != 0 {
		t.Fatalf("held %d after the subscription was disabled", n)
	}
	before := len(rc.all())
	e.customer(t, "5511999990004", "text", "alguém?")
	testutil.Eventually(t, 5*time.Second, "the outbox dispatched", func() bool {
		st, _ := s.Status(ctx)
		return st.Outbox == 0
	})
	if e.held(t, conv) != 0 || len(rc.all()) != before {
		t.Fatalf("a disabled subscription was sent %d more, held %d", len(rc.all())-before, e.held(t, conv))
	}
	gone.Lock()
	answer410 = false
	gone.Unlock()
	if err := s.Enable(ctx, "crm"); err != nil {
		t.Fatal(err)
	}
	e.customer(t, "5511999990004", "text", "voltei")
	testutil.Eventually(t, 10*time.Second, "delivery after enabling", func() bool { return len(rc.acked()) >= 1 })
}

func (e *env) convOf(t testing.TB, res routing.DeliverResult) string {
	t.Helper()
	m, err := e.router.Message(context.Background(), res.Messages[0])
	if err != nil {
		t.Fatal(err)
	}
	return m.ConversationID
}

// An event never acknowledged within max_age is dead-lettered (the clock is moved past it): it keeps
// its hold on the conversation, the next event goes on, and an operator retries it (same
// webhook-id) or deletes it (releasing the hold).
func TestDeadLetterAfterMaxAgeRetryAndDelete(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Now())
	var mu sync.Mutex
	down := true
	rc := newReceiver(t, secretA, func(received, int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusInternalServerError
		}
		return 200
	})
	e := newEnv(t, clk, hook("crm", rc.srv.URL, func(w *configs.Webhook) {
		w.MaxAge = time.Minute
		w.Events = []string{"message.received"}
	}))
	s := e.start(t, nil)
	res := e.customer(t, "5511999990005", "text", "primeira")
	conv := e.convOf(t, res)
	testutil.Eventually(t, 10*time.Second, "failed attempts", func() bool { return len(rc.all()) >= 5 })
	clk.Advance(2 * time.Minute)
	testutil.Eventually(t, 10*time.Second, "a dead letter", func() bool {
		d, _ := s.DeadLetters(ctx, "crm", 10)
		return len(d) == 1
	})
	dead, _ := s.DeadLetters(ctx, "crm", 10)
	if dead[0].ConversationID != conv || dead[0].Type != "message.received" || dead[0].ID != rc.all()[0].id {
		t.Fatalf("dead letter %+v", dead[0])
	}
	if e.held(t, conv) != 1 {
		t.Fatalf("a dead letter must keep its hold, held %d", e.held(t, conv))
	}
	st, _ := s.Status(ctx)
	if st.Subscriptions[0].State != "unhealthy" {
		t.Fatalf("state %q after failing continuously", st.Subscriptions[0].State)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	if err := s.RetryDeadLetter(ctx, "crm", dead[0].ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the retried dead letter delivered", func() bool {
		a := rc.acked()
		return len(a) == 1 && a[0].id == dead[0].ID
	})
	testutil.Eventually(t, 5*time.Second, "the hold released", func() bool { return e.held(t, conv) == 0 })
	st, _ = s.Status(ctx)
	if st.Subscriptions[0].State != "healthy" {
		t.Fatalf("state %q after a success", st.Subscriptions[0].State)
	}
	// another one dead, then deleted
	mu.Lock()
	down = true
	mu.Unlock()
	e.customer(t, "5511999990005", "text", "segunda")
	n := len(rc.all())
	testutil.Eventually(t, 10*time.Second, "failed attempts", func() bool { return len(rc.all()) >= n+1 })
	clk.Advance(2 * time.Minute)
	testutil.Eventually(t, 10*time.Second, "a dead letter", func() bool {
		d, _ := s.DeadLetters(ctx, "crm", 10)
		return len(d) == 1
	})
	dead, _ = s.DeadLetters(ctx, "crm", 10)
	if err := s.DeleteDeadLetter(ctx, "crm", dead[0].ID); err != nil {
		t.Fatal(err)
	}
	if e.held(t, conv) != 0 {
		t.Fatalf("held %d after the dead letter was deleted", e.held(t, conv))
	}
	if err := s.DeleteDeadLetter(ctx, "crm", dead[0].ID); !errors.Is(err, ErrNoDeadLetter) {
		t.Fatalf("deleting twice: %v", err)
	}
}

// A replay sends the retained events again from a time on, with their original webhook-ids and in
// order per conversation.
func TestReplaySendsRetainedEventsWithTheirIDs(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, secretA, nil)
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) { w.Events = []string{"message.*"} }))
	s := e.start(t, nil)
	since := time.Now().Add(-time.Second)
	for j := range 5 {
		e.customer(t, "5511999990006", "text", fmt.Sprintf("c6-m%d", j))
	}
	testutil.Eventually(t, 10*time.Second, "first delivery", func() bool { return len(rc.acked()) == 5 })
	first := rc.acked()
	n, err := s.Replay(ctx, "crm", since)
	if err != nil || n != 5 {
		t.Fatalf("replayed %d, %v", n, err)
	}
	testutil.Eventually(t, 10*time.Second, "the replay", func() bool { return len(rc.acked()) == 10 })
	again := rc.acked()[5:]
	for i := range first {
		if again[i].id != first[i].id || again[i].text != first[i].text {
			t.Fatalf("replay %d: %q %q, first %q %q", i, again[i].id, again[i].text, first[i].id, first[i].text)
		}
	}
	if n, _ := s.Replay(ctx, "crm", time.Now().Add(time.Hour)); n != 0 {
		t.Fatalf("a replay from the future sent %d", n)
	}
}

// While the receiver is down under a load of conversations, nothing is lost: once it is up, every
// event arrives, per conversation in order, and no conversation stays held.
func TestReceiverDownThenUpLosesNothing(t *testing.T) {
	const convs, msgs = 20, 10
	var mu sync.Mutex
	down := true
	seen := map[string][]int{}
	rc := newReceiver(t, secretA, func(r received, _ int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusBadGateway
		}
		if r.typ == "message.received" {
			c, j := parseText(r.text)
			seen[c] = append(seen[c], j)
		}
		return 200
	})
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) { w.Events = []string{"message.received"} }))
	s := e.start(t, func(o *Options) { o.RetryMax = time.Second })
	e.start(t, func(o *Options) { o.RetryMax = time.Second })
	for j := range msgs {
		for c := range convs {
			e.customer(t, fmt.Sprintf("55118%08d", c), "text", fmt.Sprintf("c%d-m%d", c, j))
		}
	}
	testutil.Eventually(t, 10*time.Second, "every event dispatched and held", func() bool {
		h, _ := s.HeldTotal(context.Background())
		st, _ := s.Status(context.Background())
		return h.Conversations == convs && st.Outbox == 0
	})
	mu.Lock()
	down = false
	mu.Unlock()
	testutil.Eventually(t, 60*time.Second, "every event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, js := range seen {
			n += len(js)
		}
		return n >= convs*msgs
	})
	mu.Lock()
	defer mu.Unlock()
	for c, js := range seen {
		for i, j := range js {
			if j != i {
				t.Fatalf("%s arrived in the order %v", c, js)
			}
		}
	}
	testutil.Eventually(t, 10*time.Second, "no conversation held", func() bool {
		h, _ := s.HeldTotal(context.Background())
		return h.Conversations == 0
	})
}

// A chain delivers its heads a batch at a time: an event dead-lettered between two acknowledged
// ones of the same batch keeps its hold alone, and the events after it go on in order.
func TestDeadLetterInsideABatch(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, secretA, nil)
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) { w.Events = []string{"message.received"} }))
	e.client.Set(ctx, outbox.OnKey(e.ks), "1", 0)
	var conv string
	for _, text := range []string{"a", "b", "c"} {
		conv = e.convOf(t, e.customer(t, "5511999990009", "text", text))
	}
	// a dispatcher alone puts the three on the chain's list; the second's body is then lost
	e.start(t, func(o *Options) { o.NoWorkers = true })
	list := e.ks.Key("integ", "q", "crm", conv)
	testutil.Eventually(t, 10*time.Second, "three events on the list", func() bool { return e.client.LLen(ctx, list).Val() == 3 })
	lost := e.client.LIndex(ctx, list, 1).Val()
	e.client.Del(ctx, e.ks.Key("integ", "ev", lost))
	s := e.start(t, nil)
	testutil.Eventually(t, 10*time.Second, "the first and third delivered", func() bool { return len(rc.acked()) == 2 })
	if a := rc.acked(); a[0].text != "a" || a[1].text != "c" {
		t.Fatalf("delivered %q, %q", a[0].text, a[1].text)
	}
	testutil.Eventually(t, 5*time.Second, "the list done", func() bool { return e.client.Exists(ctx, list).Val() == 0 })
	dead, _ := s.DeadLetters(ctx, "crm", 10)
	if len(dead) != 1 || dead[0].ID != lost {
		t.Fatalf("dead letters %+v, want %s", dead, lost)
	}
	if n := e.held(t, conv); n != 1 {
		t.Fatalf("held %d, want the dead letter's 1", n)
	}
}
