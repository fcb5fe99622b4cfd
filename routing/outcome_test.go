package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

func TestLastOutcomeIsRecorded(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.clock.Advance(time.Second)
	e.set(t, "bob", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "c1", "hi")
	card := e.cards(t, "ana")[0]
	if card.LastOutcome != "" {
		t.Fatalf("a fresh offer has last_outcome %q", card.LastOutcome)
	}
	if b, _ := json.Marshal(card); strings.Contains(string(b), "last_outcome") {
		t.Fatalf("a fresh card's JSON carries last_outcome: %s", b)
	}
	// ana lets it time out: it moves to bob, marked timed_out, and says so over HTTP.
	e.clock.Advance(31 * time.Second)
	if _, err := e.router.SweepTimeouts(ctx); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Cards []map[string]any `json:"cards"`
	}
	if code := e.call(t, "GET", "/v1/agents/bob/cards", "bob", auth.RoleAgent, &raw); code != http.StatusOK || len(raw.Cards) != 1 {
		t.Fatalf("bob's cards: %d %+v", code, raw)
	}
	if c := raw.Cards[0]; c["id"] != card.ID || c["state"] != CardOffered || c["last_outcome"] != "timed_out" {
		t.Fatalf("after the timeout bob's card is %v, want offered with last_outcome timed_out", c)
	}
	// bob accepts, then logs out: the card goes back to the queue, marked requeued.
	if _, err := e.router.Accept(ctx, card.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	e.set(t, "bob", "whatsapp", presence.Offline, "")
	got, err := e.router.Card(ctx, card.ID)
	if err != nil || got.State != CardWaiting || got.LastOutcome != "requeued" {
		t.Fatalf("after bob's logout: %+v %v, want waiting, last_outcome requeued", got, err)
	}
	// A decline is recorded as declined (TestDeclineOverHTTP checks the HTTP answer).
	e.set(t, "dan", "webchat", presence.Online, "")
	e.router.entries["webchat:shop2"] = "sales"
	e.customer(t, "webchat", "shop2", "v1", "hi")
	dc := e.cards(t, "dan")[0]
	if got, err := e.router.Decline(ctx, dc.ID, "dan"); err != nil || got.State != CardWaiting || got.LastOutcome != "declined" {
		t.Fatalf("after dan declined: %+v %v", got, err)
	}
}

// TestCapacityRaiseOffersWaitingCards: capacities come from configuration; a router started with a
// larger capacity (a restart with a new config) offers the agent the cards that were waiting for it.
func TestCapacityRaiseOffersWaitingCards(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	clk := clock.NewFake(t0)
	e := newEnvWith(t, client, testConfig("longest_idle"), clk)
	e.router.entries["webchat:shop2"] = "sales"
	e.set(t, "dan", "webchat", presence.Online, "") // capacity 1
	for i := 0; i < 3; i++ {
		e.customer(t, "webchat", "shop2", fmt.Sprintf("v%d", i), "hi")
	}
	if n, w := len(e.cards(t, "dan")), e.waiting(t, "sales", "webchat"); n != 1 || w != 2 {
		t.Fatalf("dan holds %d, %d waiting; want 1 and 2", n, w)
	}
	cfg := testConfig("longest_idle")
	for i, a := range cfg.Agents {
		if a.ID == "dan" {
			cfg.Agents[i].Channels = map[string]configs.AgentChannel{"webchat": {Capacity: 3}}
		}
	}
	pub := &recorder{}
	r2 := NewRouter(client, keyspace.New("t"), topology.New(cfg), Options{Clock: clk, Publisher: pub, Audit: true})
	t.Cleanup(r2.Shutdown)
	if err := r2.SyncCapacity(ctx); err != nil {
		t.Fatal(err)
	}
	cs, err := r2.Cards(ctx, "dan")
	if err != nil || len(cs) != 3 || e.waiting(t, "sales", "webchat") != 0 {
		t.Fatalf("after the raise dan holds %d cards (%v), %d waiting; want 3 and 0", len(cs), err, e.waiting(t, "sales", "webchat"))
	}
	if n := pub.count("dan", EventCardOffered); n != 2 {
		t.Errorf("dan was told of %d offers, want 2", n)
	}
	// A second sync changes nothing: dan is at his new capacity.
	if err := r2.SyncCapacity(ctx); err != nil {
		t.Fatal(err)
	}
	if n := pub.count("dan", EventCardOffered); n != 2 {
		t.Errorf("a repeated sync offered more: %d", n)
	}
}

// bigConfig: one queue "big" on webchat (entry site "big") with n agents a00… of the given capacity.
func bigConfig(n, capacity int) *configs.Config {
	cfg := testConfig("longest_idle")
	cfg.Queues = append(cfg.Queues, configs.Queue{ID: "big", Channels: []string{"webchat"}, Strategy: "longest_idle", OfferTimeout: 30 * time.Second})
	for i := 0; i < n; i++ {
		cfg.Agents = append(cfg.Agents, configs.Agent{ID: fmt.Sprintf("a%02d", i), Queues: []string{"big"},
			Channels: map[string]configs.AgentChannel{"webchat": {Capacity: capacity}}})
	}
	cfg.WebChat.Sites = append(cfg.WebChat.Sites, configs.Site{ID: "big", Queue: "big"})
	return cfg
}

// TestOfferScanBoundFallsBack: the offer script looks at 16 waiting cards and 32 candidates first;
// a card refused by every candidate in that window, or a card behind 16 refused ones, still reaches
// an eligible agent further down.
func TestOfferScanBoundFallsBack(t *testing.T) {
	ctx := context.Background()
	t.Run("candidates", func(t *testing.T) {
		e := newEnvWith(t, redistest.Client(t), bigConfig(agentsToScan+1, 2), clock.NewFake(t0))
		last := fmt.Sprintf("a%02d", agentsToScan)
		e.set(t, last, "webchat", presence.Online, "")
		e.set(t, last, "webchat", presence.Paused, "lunch")
		for i := 0; i < agentsToScan; i++ {
			e.set(t, fmt.Sprintf("a%02d", i), "webchat", presence.Online, "")
			e.clock.Advance(time.Second)
		}
		e.customer(t, "webchat", "big", "v1", "hi")
		// Every online agent declines it in turn; each goes to the back of the idle order.
		for i := 0; i < agentsToScan; i++ {
			a := fmt.Sprintf("a%02d", i)
			cs := e.cards(t, a)
			if len(cs) != 1 {
				t.Fatalf("decline %d: %s holds %d cards", i, a, len(cs))
			}
			if _, err := e.router.Decline(ctx, cs[0].ID, a); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Second)
		}
		if w := e.waiting(t, "big", "webchat"); w != 1 {
			t.Fatalf("refused by all: %d waiting, want 1", w)
		}
		// The last agent resumes: she is the 33rd candidate, behind 32 who refused the card.
		e.set(t, last, "webchat", presence.Online, "")
		if cs := e.cards(t, last); len(cs) != 1 || cs[0].Contact.ID != "v1" {
			t.Fatalf("%s after resuming holds %+v, want v1", last, cs)
		}
	})
	t.Run("cards", func(t *testing.T) {
		e := newEnvWith(t, redistest.Client(t), bigConfig(1, 100), clock.NewFake(t0))
		e.set(t, "a00", "webchat", presence.Online, "")
		for i := 0; i < cardsToScan; i++ {
			e.customer(t, "webchat", "big", fmt.Sprintf("old%d", i), "hi")
			c := e.cards(t, "a00")
			if len(c) != 1 {
				t.Fatalf("a00 holds %d cards", len(c))
			}
			if _, err := e.router.Decline(ctx, c[0].ID, "a00"); err != nil {
				t.Fatal(err)
			}
		}
		if w := e.waiting(t, "big", "webchat"); w != int64(cardsToScan) {
			t.Fatalf("%d waiting, want %d", w, cardsToScan)
		}
		// A new card behind the 16 refused ones goes to a00 at once.
		e.customer(t, "webchat", "big", "new", "hi")
		if cs := e.cards(t, "a00"); len(cs) != 1 || cs[0].Contact.ID != "new" {
			t.Fatalf("a00 holds %+v, want the new card", cs)
		}
	})
}

// TestBacklogOfRefusedCardsCostsLinearScans: with a long head of cards every candidate has refused,
// offering the cards behind it scans the head once per dispatch, not once per offer (which was
// quadratic in the backlog and stalled the timeout sweep under load).
func TestBacklogOfRefusedCardsCostsLinearScans(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = client.Close() })
	e := newEnvWith(t, client, bigConfig(1, 500), clock.NewFake(t0))
	e.set(t, "a00", "webchat", presence.Online, "")
	const refused, fresh = 10 * cardsToScan, 40
	for i := 0; i < refused; i++ {
		e.customer(t, "webchat", "big", fmt.Sprintf("old%d", i), "hi")
		c := e.cards(t, "a00")
		if len(c) != 1 {
			t.Fatalf("a00 holds %d cards", len(c))
		}
		if _, err := e.router.Decline(ctx, c[0].ID, "a00"); err != nil {
			t.Fatal(err)
		}
	}
	e.set(t, "a00", "webchat", presence.Paused, "lunch")
	for i := 0; i < fresh; i++ {
		e.customer(t, "webchat", "big", fmt.Sprintf("new%d", i), "hi")
	}
	before := scriptCalls(t, client)
	e.set(t, "a00", "webchat", presence.Online, "") // one dispatch offers every fresh card
	calls := scriptCalls(t, client) - before
	if got := len(e.cards(t, "a00")); got != fresh {
		t.Fatalf("a00 holds %d cards after resuming, want the %d fresh ones", got, fresh)
	}
	// One scan over the refused head plus about one call per offer; per-offer rescans would be
	// fresh × refused/cardsToScan = 400 calls more.
	if limit := int64(refused/cardsToScan + 2*fresh + 20); calls > limit {
		t.Errorf("resuming ran %d scripts, want at most %d", calls, limit)
	}
	t.Logf("%d scripts to offer %d cards behind %d refused ones", calls, fresh, refused)
}

// scriptCalls is how many EVALSHA/EVAL the server has run.
func scriptCalls(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd); ok {
				n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
				total += n
			}
		}
	}
	return total
}

// The card.offered event carries the card as GET /v1/agents/{id}/cards shows it, whether the offer was
// the intake script's first decision (an agent was free when the message came) or a later dispatch
// (the card waited for a login): both read the card and its conversation in the offering script.
func TestOfferedEventCarriesTheWholeCard(t *testing.T) {
	e := newEnv(t, "longest_idle")
	ctx := context.Background()
	lastOffer := func(agent string) Card {
		t.Helper()
		e.pub.mu.Lock()
		defer e.pub.mu.Unlock()
		for i := len(e.pub.events[agent]) - 1; i >= 0; i-- {
			if ev := e.pub.events[agent][i]; ev.Type == EventCardOffered {
				c, ok := ev.Card.(Card)
				if !ok {
					t.Fatalf("card.offered carries %T, want a Card", ev.Card)
				}
				return c
			}
		}
		t.Fatalf("no card.offered for %s", agent)
		return Card{}
	}
	same := func(how string, got Card) {
		t.Helper()
		want, err := e.router.Card(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != CardOffered || got.Agent == "" || got.Contact == nil || got.WindowExpiresAt == nil || got.ExpiresAt == nil {
			t.Fatalf("%s: the event's card lacks its offer, contact or window: %+v", how, got)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Fatalf("%s: event card\n%s\nwant (as read back)\n%s", how, g, w)
		}
		if len(got.Preview) != previewLength {
			t.Fatalf("%s: preview of %d bytes, want it cut to %d", how, len(got.Preview), previewLength)
		}
	}
	long := strings.Repeat("é", previewLength) // two bytes each: the cut must fall at previewLength bytes

	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "at-intake", long)
	same("offered by the intake script", lastOffer("ana"))

	// Ana's logout puts her card back in line; a second customer waits behind it.
	e.set(t, "ana", "whatsapp", presence.Offline, "")
	e.customer(t, "whatsapp", "100", "after-login", long)
	if n := e.waiting(t, "sales", "whatsapp"); n != 2 {
		t.Fatalf("%d cards waiting with nobody online, want 2", n)
	}
	e.set(t, "bob", "whatsapp", presence.Online, "")
	if n := e.pub.count("bob", EventCardOffered); n != 2 {
		t.Fatalf("bob was offered %d cards at login, want both", n)
	}
	same("offered at login", lastOffer("bob"))
}
