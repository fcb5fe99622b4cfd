package routing

import (
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
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

// reofferEnv is the test configuration with reoffer_after on every queue.
func reofferEnv(t *testing.T, reofferAfter time.Duration, edit func(*configs.Config)) *env {
	t.Helper()
	cfg := testConfig("longest_idle")
	for i := range cfg.Queues {
		cfg.Queues[i].ReofferAfter = reofferAfter
	}
	if edit != nil {
		edit(cfg)
	}
	return newEnvWith(t, redistest.Client(t), cfg, clock.NewFake(t0))
}

// holder is the agent the card is offered to or accepted by ("" while it waits).
func (e *env) holder(t *testing.T, card string) string {
	t.Helper()
	c, err := e.router.Card(context.Background(), card)
	if err != nil {
		t.Fatal(err)
	}
	if c.State == CardWaiting {
		return ""
	}
	return c.Agent
}

func (e *env) sweep(t *testing.T) {
	t.Helper()
	if _, err := e.router.SweepTimeouts(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestReofferGoesToTheLongestAgoRefuserFirst: bob refuses the card, then ana; nobody gets it before
// reoffer_after; once both refusals are old enough, bob — who refused it longest ago — gets it,
// although ana comes first by the queue's strategy; when bob declines again, ana gets it at once.
func TestReofferGoesToTheLongestAgoRefuserFirst(t *testing.T) {
	ctx := context.Background()
	e := reofferEnv(t, time.Minute, nil)
	e.set(t, "bob", "whatsapp", presence.Online, "")
	e.clock.Advance(time.Second)
	e.set(t, "ana", "whatsapp", presence.Online, "")
	card := e.customer(t, "whatsapp", "100", "c1", "hello").Messages[0]
	card = e.client.HGet(ctx, e.router.keys.conv(e.client.HGet(ctx, e.router.keys.msg(card), "conversation_id").Val()), "card").Val()
	if h := e.holder(t, card); h != "bob" {
		t.Fatalf("first offer to %q, want bob (longest idle)", h)
	}
	if _, err := e.router.Decline(ctx, card, "bob"); err != nil { // bob refuses at 0:01
		t.Fatal(err)
	}
	if h := e.holder(t, card); h != "ana" {
		t.Fatalf("after bob declined: %q, want ana", h)
	}
	e.clock.Advance(20 * time.Second)
	if _, err := e.router.Decline(ctx, card, "ana"); err != nil { // ana refuses at 0:21
		t.Fatal(err)
	}
	// bob takes another customer and accepts: ana is now first by the strategy (idle longest).
	e.clock.Advance(9 * time.Second)
	e.customer(t, "whatsapp", "100", "c2", "hi")
	var other string
	for _, c := range e.cards(t, "bob") {
		if c.ID != card {
			other = c.ID
		}
	}
	if other == "" {
		t.Fatalf("c2 was not offered to bob: %+v", e.cards(t, "bob"))
	}
	if _, err := e.router.Accept(ctx, other, "bob"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * time.Second) // 1:00: bob's refusal is 59 s old
	e.sweep(t)
	if h := e.holder(t, card); h != "" {
		t.Fatalf("offered to %q before reoffer_after", h)
	}
	e.clock.Advance(30 * time.Second) // 1:30: both refusals are past reoffer_after
	e.sweep(t)
	if h := e.holder(t, card); h != "bob" {
		t.Fatalf("re-offered to %q; want bob, who refused it longest ago", h)
	}
	if _, err := e.router.Decline(ctx, card, "bob"); err != nil {
		t.Fatal(err)
	}
	if h := e.holder(t, card); h != "ana" {
		t.Fatalf("after bob declined again: %q, want ana (her refusal is due)", h)
	}
	if _, err := e.router.Accept(ctx, card, "ana"); err != nil {
		t.Fatal(err)
	}
}

// TestSingleAgentQueueGetsTheRefusedCardAgain: support has one agent, cat. A card she declines, or
// lets time out, waits reoffer_after, then goes to her again: with one agent, nobody is stranded.
func TestSingleAgentQueueGetsTheRefusedCardAgain(t *testing.T) {
	for _, how := range []string{"decline", "timeout"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			e := reofferEnv(t, time.Minute, nil)
			e.set(t, "cat", "webchat", presence.Online, "")
			e.customer(t, "webchat", "shop", "v1", "hello")
			cs := e.cards(t, "cat")
			if len(cs) != 1 {
				t.Fatalf("cat holds %+v", cs)
			}
			card := cs[0].ID
			if how == "decline" {
				if _, err := e.router.Decline(ctx, card, "cat"); err != nil {
					t.Fatal(err)
				}
			} else {
				e.clock.Advance(30 * time.Second) // the offer timeout
				e.sweep(t)
				if e.pub.count("cat", EventCardRevoked) != 1 {
					t.Fatal("the offer did not time out")
				}
			}
			if e.holder(t, card) != "" || e.waiting(t, "support", "webchat") != 1 {
				t.Fatal("the refused card does not wait")
			}
			e.clock.Advance(59 * time.Second)
			e.sweep(t)
			if h := e.holder(t, card); h != "" {
				t.Fatalf("offered to %q before reoffer_after", h)
			}
			e.clock.Advance(time.Second)
			e.sweep(t)
			if h := e.holder(t, card); h != "cat" {
				t.Fatalf("after reoffer_after the card is with %q, want cat", h)
			}
			if e.pub.count("cat", EventCardOffered) != 2 {
				t.Errorf("cat was told of %d offers, want 2", e.pub.count("cat", EventCardOffered))
			}
			if _, err := e.router.Accept(ctx, card, "cat"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReofferWaitsForTheAgentToBeEligible: a refusal that comes due while its agent is paused is
// acted on when the agent resumes, with no sweep.
func TestReofferWaitsForTheAgentToBeEligible(t *testing.T) {
	ctx := context.Background()
	e := reofferEnv(t, time.Minute, nil)
	e.set(t, "cat", "webchat", presence.Online, "")
	e.customer(t, "webchat", "shop", "v1", "hello")
	card := e.cards(t, "cat")[0].ID
	if _, err := e.router.Decline(ctx, card, "cat"); err != nil {
		t.Fatal(err)
	}
	e.set(t, "cat", "webchat", presence.Paused, "lunch")
	e.clock.Advance(2 * time.Minute)
	e.sweep(t)
	if h := e.holder(t, card); h != "" {
		t.Fatalf("offered to %q while paused", h)
	}
	if n := e.client.ZCard(ctx, e.router.keys.reoffers()).Val(); n != 0 {
		t.Errorf("%d refusals still listed after they came due", n)
	}
	e.set(t, "cat", "webchat", presence.Online, "")
	if h := e.holder(t, card); h != "cat" {
		t.Fatalf("after cat resumed the card is with %q, want cat", h)
	}
}

// TestMaxWaitOverflowsToAnotherQueue: support's max_wait moves a waiting card to sales, whose
// agents then get it; the conversation follows, and its wait is not handled twice.
func TestMaxWaitOverflowsToAnotherQueue(t *testing.T) {
	ctx := context.Background()
	e := reofferEnv(t, time.Minute, func(cfg *configs.Config) {
		q := &cfg.Queues[1] // support (webchat)
		q.MaxWait, q.MaxWaitAction, q.OverflowQueue = 5*time.Minute, "overflow", "sales"
	})
	e.set(t, "ana", "webchat", presence.Online, "")
	e.set(t, "ana", "webchat", presence.Paused, "lunch")
	res := e.customer(t, "webchat", "shop", "v1", "hello")
	convID := e.client.HGet(ctx, e.router.keys.msg(res.Messages[0]), "conversation_id").Val()
	card := e.client.HGet(ctx, e.router.keys.conv(convID), "card").Val()
	e.clock.Advance(5*time.Minute - time.Second)
	if n, err := e.router.SweepMaxWait(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before max_wait: %d %v", n, err)
	}
	e.clock.Advance(time.Second)
	if n, err := e.router.SweepMaxWait(ctx); err != nil || n != 1 {
		t.Fatalf("sweep at max_wait: %d %v", n, err)
	}
	if e.waiting(t, "support", "webchat") != 0 || e.waiting(t, "sales", "webchat") != 1 {
		t.Fatalf("waiting: support %d, sales %d", e.waiting(t, "support", "webchat"), e.waiting(t, "sales", "webchat"))
	}
	c, err := e.router.Card(ctx, card)
	if err != nil || c.Queue != "sales" || c.State != CardWaiting {
		t.Fatalf("card after overflow: %+v %v", c, err)
	}
	if q := e.client.HGet(ctx, e.router.keys.conv(convID), "queue").Val(); q != "sales" {
		t.Errorf("conversation queue %q, want sales", q)
	}
	e.clock.Advance(time.Hour)
	if n, _ := e.router.SweepMaxWait(ctx); n != 0 {
		t.Errorf("the overflowed card's wait was handled again (%d)", n)
	}
	e.set(t, "ana", "webchat", presence.Online, "") // a sales agent
	if h := e.holder(t, card); h != "ana" {
		t.Fatalf("overflowed card with %q, want ana", h)
	}
}

// TestRandomizedNoStrandedCustomer drives two replicas with a fake clock through random messages,
// presence changes, accepts, declines, closes (each starting a wrap-up), transfers to agents and to
// queues, early ends of wrap-ups, first responses left to time out (q2 requeues them) and offers
// left to time out, sweeping every 5 s of simulated time. After every step: a waiting card and an
// agent eligible for it (member of the queue, online on the channel, below capacity, not wrapping
// up there) never coexist longer than reoffer_after plus the longest gap between sweeps; and, as
// ever, no offer goes to an ineligible agent. Every 50 steps and at the end: no agent above
// capacity, no card held by two agents, no card lost (checkCards).
func TestRandomizedNoStrandedCustomer(t *testing.T) {
	const reofferAfter, sweepEvery, maxStep = 40 * time.Second, 5 * time.Second, 2 * time.Second
	cfg := &configs.Config{
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}},
		Queues: []configs.Queue{
			{ID: "q1", Channels: []string{"whatsapp", "webchat"}, Strategy: "longest_idle", OfferTimeout: 15 * time.Second, ReofferAfter: reofferAfter,
				WrapUp: 10 * time.Second},
			{ID: "q2", Channels: []string{"webchat"}, Strategy: "least_busy", OfferTimeout: 15 * time.Second, ReofferAfter: reofferAfter,
				WrapUp: 6 * time.Second, FirstResponseTimeout: 20 * time.Second, FirstResponseAction: "requeue"},
		},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100", Queue: "q1"}}},
		WebChat:  configs.WebChat{Sites: []configs.Site{{ID: "s1", Queue: "q1"}, {ID: "s2", Queue: "q2"}}},
		Presence: configs.Presence{HistoryRetention: time.Hour},
	}
	for i := 0; i < 6; i++ {
		a := configs.Agent{ID: fmt.Sprintf("a%d", i), Channels: map[string]configs.AgentChannel{"webchat": {Capacity: 1 + i%2}}}
		switch i % 3 {
		case 0:
			a.Queues = []string{"q1"}
			a.Channels["whatsapp"] = configs.AgentChannel{Capacity: 1}
		case 1:
			a.Queues = []string{"q2"}
		default:
			a.Queues = []string{"q1", "q2"}
		}
		cfg.Agents = append(cfg.Agents, a)
	}
	client := redistest.Client(t)
	ks := keyspace.New("t")
	clk := clock.NewFake(t0)
	var routers []*Router
	var stores []*presence.Store
	for i := 0; i < 2; i++ {
		ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: time.Hour, Clock: clk})
		r := NewRouter(client, ks, topology.New(cfg), Options{Clock: clk, Publisher: &recorder{}, Pauser: ps, Audit: true})
		ps.AddListener(r)
		t.Cleanup(r.Shutdown)
		if err := r.SyncCapacity(context.Background()); err != nil {
			t.Fatal(err)
		}
		routers, stores = append(routers, r), append(stores, ps)
	}
	ctx := context.Background()
	k := routers[0].keys
	rnd := rand.New(rand.NewSource(17))
	since := map[[2]string]time.Time{} // (card, agent) → first seen coexisting
	lastSweep := clk.Now()
	refusals, reoffered := 0, 0
	transfers, wrapUps := 0, 0
	bound := reofferAfter + sweepEvery + maxStep
	for step := 0; step < 1500; step++ {
		r, ps := routers[step%2], stores[step%2]
		a := cfg.Agents[rnd.Intn(len(cfg.Agents))]
		chans := []string{"webchat"}
		if _, ok := a.Channels["whatsapp"]; ok {
			chans = append(chans, "whatsapp")
		}
		ch := chans[rnd.Intn(len(chans))]
		switch op := rnd.Intn(24); {
		case op < 4:
			entries := [][2]string{{"whatsapp", "100"}, {"webchat", "s1"}, {"webchat", "s2"}}
			en := entries[rnd.Intn(len(entries))]
			in := Inbound{Channel: en[0], EntryPoint: en[1], ContactID: fmt.Sprintf("c%d", rnd.Intn(60)),
				ProviderMessageID: fmt.Sprintf("m%d", step), Kind: "text", Text: "hi", At: clk.Now()}
			if _, err := r.Deliver(ctx, []Inbound{in}); err != nil {
				t.Fatal(err)
			}
		case op < 6:
			_, _ = ps.Set(ctx, a.ID, ch, presence.Online, "", a.ID, presence.CauseToggle)
		case op < 7:
			_, _ = ps.Set(ctx, a.ID, ch, presence.Paused, "lunch", a.ID, presence.CauseToggle)
		case op < 8:
			_, _ = ps.Set(ctx, a.ID, ch, presence.Offline, "", a.ID, presence.CauseToggle)
		case op < 14:
			cards, _ := r.Cards(ctx, a.ID)
			for _, c := range cards {
				switch {
				case c.State == CardOffered && op < 10:
					_, _ = r.Accept(ctx, c.ID, a.ID)
				case c.State == CardOffered && op < 12:
					if _, err := r.Decline(ctx, c.ID, a.ID); err == nil {
						refusals++
					}
				case c.State == CardAccepted && op >= 12:
					if _, err := r.Close(ctx, c.ID, a.ID, false); err == nil {
						wrapUps++
					}
				}
			}
		case op < 17: // a transfer, by the holder or (one in three) a supervisor
			var cards []Card
			for i := 0; i < len(cfg.Agents) && len(cards) == 0; i++ { // the first agent from a with an accepted card
				a = cfg.Agents[(rnd.Intn(len(cfg.Agents))+i)%len(cfg.Agents)]
				cards, _ = r.Cards(ctx, a.ID)
			}
			for _, c := range cards {
				if c.State != CardAccepted {
					continue
				}
				req := TransferRequest{By: a.ID}
				if rnd.Intn(3) == 0 {
					req = TransferRequest{By: "sup", Supervisor: true}
				}
				for try := 0; try < 4; try++ { // targets are often unavailable (a refusal changes nothing)
					req.ToAgent, req.ToQueue = "", ""
					if rnd.Intn(2) == 0 {
						req.ToAgent = cfg.Agents[rnd.Intn(len(cfg.Agents))].ID
					} else {
						req.ToQueue = cfg.Queues[rnd.Intn(len(cfg.Queues))].ID
					}
					if _, err := r.Transfer(ctx, c.ConversationID, req); err == nil {
						transfers++
						break
					}
				}
				break
			}
		case op < 18:
			_ = r.EndWrapUp(ctx, a.ID, ch, a.ID)
		default: // nobody answers: offers run toward their timeout
		}
		clk.Advance(time.Duration(rnd.Int63n(int64(maxStep))))
		if clk.Now().Sub(lastSweep) >= sweepEvery {
			lastSweep = clk.Now()
			n, err := routers[step%2].SweepTimeouts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			refusals += n
		}
		// The invariant, read from Redis.
		now := clk.Now()
		seen := map[[2]string]bool{}
		for _, q := range cfg.Queues {
			for _, qch := range q.Channels {
				waiting := client.ZRange(ctx, k.waiting(q.ID, qch), 0, -1).Val()
				if len(waiting) == 0 {
					continue
				}
				for _, ag := range cfg.Agents {
					capacity, ok := ag.Channels[qch]
					if !ok || !containsString(ag.Queues, q.ID) {
						continue
					}
					st := client.HGet(ctx, presence.StateKey(ks, ag.ID), qch).Val()
					load, _ := client.HGet(ctx, k.load(ag.ID), qch).Int()
					wrapUntil, _ := client.HGet(ctx, presence.StateKey(ks, ag.ID), qch+":wrap_up_until").Int64()
					if st != string(presence.Online) || load >= capacity.Capacity || wrapUntil > now.UnixMilli() {
						continue
					}
					for _, card := range waiting {
						pair := [2]string{card, ag.ID}
						seen[pair] = true
						first, ok := since[pair]
						if !ok {
							since[pair] = now
							continue
						}
						if now.Sub(first) > bound {
							t.Fatalf("step %d: card %s waited %v in %s/%s beside %s, online with load %d of %d (bound %v)",
								step, card, now.Sub(first), q.ID, qch, ag.ID, load, capacity.Capacity, bound)
						}
					}
				}
			}
		}
		for pair := range since {
			if !seen[pair] {
				delete(since, pair)
			}
		}
		if step%50 == 0 {
			checkCards(t, client, k, cfg)
		}
	}
	checkCards(t, client, k, cfg)
	if transfers < 20 || wrapUps < 20 {
		t.Fatalf("only %d transfers and %d wrap-ups: the test exercised too little", transfers, wrapUps)
	}
	audit := client.LRange(ctx, k.audit(), 0, -1).Val()
	offeredBefore := map[string]map[string]bool{}
	for _, rec := range audit {
		f := strings.Split(rec, "|") // card|agent|state|load after|capacity
		load, _ := strconv.Atoi(f[3])
		capacity, _ := strconv.Atoi(f[4])
		if f[2] != "online" || load > capacity {
			t.Errorf("offer %s: agent %s was %s with load %d of %d", f[0], f[1], f[2], load, capacity)
		}
		if offeredBefore[f[0]] == nil {
			offeredBefore[f[0]] = map[string]bool{}
		}
		if offeredBefore[f[0]][f[1]] {
			reoffered++
		}
		offeredBefore[f[0]][f[1]] = true
	}
	if refusals < 50 || reoffered < 10 {
		t.Fatalf("only %d refusals and %d re-offers: the test exercised too little", refusals, reoffered)
	}
	t.Logf("%d offers, %d refusals (declines and timeouts), %d re-offers to an agent that had refused, %d transfers, %d wrap-ups",
		len(audit), refusals, reoffered, transfers, wrapUps)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkCards: no agent above capacity and every load equal to the cards held; no card held by two
// agents; no card lost — a waiting card is in its own queue's waiting ZSET and in no other, an
// offered or accepted one is held by the agent it names, and the offers ZSET holds only offers.
func checkCards(t *testing.T, client redis.UniversalClient, k keys, cfg *configs.Config) {
	t.Helper()
	ctx := context.Background()
	holders := map[string]string{}
	for _, a := range cfg.Agents {
		held := map[string]int{}
		for _, card := range client.SMembers(ctx, k.agentCards(a.ID)).Val() {
			if prev, ok := holders[card]; ok {
				t.Fatalf("card %s is held by %s and %s", card, prev, a.ID)
			}
			holders[card] = a.ID
			h := client.HGetAll(ctx, k.card(card)).Val()
			if h["agent"] != a.ID || (h["state"] != CardOffered && h["state"] != CardAccepted) {
				t.Fatalf("card %s in %s's set is %s/%s", card, a.ID, h["state"], h["agent"])
			}
			held[h["channel"]]++
		}
		for ch, c := range a.Channels {
			load, _ := client.HGet(ctx, k.load(a.ID), ch).Int()
			if load != held[ch] || load > c.Capacity {
				t.Fatalf("%s on %s: load %d, holds %d cards, capacity %d", a.ID, ch, load, held[ch], c.Capacity)
			}
		}
	}
	inLine := map[string]string{} // card → the waiting ZSET it is in
	for _, q := range cfg.Queues {
		for _, ch := range q.Channels {
			key := k.waiting(q.ID, ch)
			for _, card := range client.ZRange(ctx, key, 0, -1).Val() {
				if prev, ok := inLine[card]; ok {
					t.Fatalf("card %s waits in %s and %s", card, prev, key)
				}
				inLine[card] = key
			}
		}
	}
	for _, card := range client.ZRange(ctx, k.offers(), 0, -1).Val() {
		if st := client.HGet(ctx, k.card(card), "state").Val(); st != CardOffered {
			t.Fatalf("card %s is in the offers but %s", card, st)
		}
	}
	iter := client.Scan(ctx, 0, k.ks.Prefix()+"card:*", 1000).Iterator()
	for iter.Next(ctx) {
		h := client.HGetAll(ctx, iter.Val()).Val()
		switch h["state"] {
		case CardWaiting:
			if inLine[h["id"]] != k.waiting(h["queue"], h["channel"]) {
				t.Fatalf("waiting card %s of %s/%s is in %q", h["id"], h["queue"], h["channel"], inLine[h["id"]])
			}
		case CardOffered, CardAccepted:
			if holders[h["id"]] != h["agent"] || inLine[h["id"]] != "" {
				t.Fatalf("card %s (%s) names %s but is held by %q, in line %q", h["id"], h["state"], h["agent"], holders[h["id"]], inLine[h["id"]])
			}
		case CardClosed:
			if inLine[h["id"]] != "" || holders[h["id"]] != "" {
				t.Fatalf("closed card %s is still in line or held", h["id"])
			}
		}
	}
}
