package routing

import (
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

// TestRandomizedRoutingAcrossTwoReplicas runs two routers (two gateway replicas) on one Redis while
// 50 agents toggle presence, accept, decline and close at random and customers write thousands of
// messages. The offer script records the agent's state, load and capacity at each offer; afterwards
// no offer went to an agent that was not online or was at capacity, every card is either waiting in
// its queue or held by exactly one agent, and every agent's load matches the cards it holds.
func TestRandomizedRoutingAcrossTwoReplicas(t *testing.T) {
	const agents, messages = 50, 2000
	cfg := &configs.Config{
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}, {ID: "no_answer", Label: "No answer"}},
		Queues: []configs.Queue{
			{ID: "q1", Channels: []string{"whatsapp", "webchat"}, Strategy: "longest_idle", OfferTimeout: time.Minute},
			{ID: "q2", Channels: []string{"webchat"}, Strategy: "least_busy", OfferTimeout: time.Minute},
		},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100", Queue: "q1"}}},
		WebChat:  configs.WebChat{Sites: []configs.Site{{ID: "s1", Queue: "q1"}, {ID: "s2", Queue: "q2"}}},
		Presence: configs.Presence{HistoryRetention: time.Hour},
	}
	for i := 0; i < agents; i++ {
		a := configs.Agent{ID: fmt.Sprintf("a%02d", i), Channels: map[string]configs.AgentChannel{}}
		switch i % 3 {
		case 0:
			a.Queues = []string{"q1"}
			a.Channels["whatsapp"] = configs.AgentChannel{Capacity: 1 + i%3}
			a.Channels["webchat"] = configs.AgentChannel{Capacity: 2}
		case 1:
			a.Queues = []string{"q2"}
			a.Channels["webchat"] = configs.AgentChannel{Capacity: 3}
		default:
			a.Queues = []string{"q1", "q2"}
			a.Channels["webchat"] = configs.AgentChannel{Capacity: 1}
		}
		cfg.Agents = append(cfg.Agents, a)
	}
	client := redistest.Client(t)
	ks := keyspace.New("t")
	var routers []*Router
	var stores []*presence.Store
	for i := 0; i < 2; i++ {
		ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clock.Real{}})
		r := NewRouter(client, ks, topology.New(cfg), Options{Clock: clock.Real{}, Publisher: &recorder{}, Pauser: ps, Audit: true})
		ps.AddListener(r)
		t.Cleanup(r.Shutdown)
		if err := r.SyncCapacity(context.Background()); err != nil {
			t.Fatal(err)
		}
		routers, stores = append(routers, r), append(stores, ps)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	// Customers.
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(w)))
			entries := [][2]string{{"whatsapp", "100"}, {"webchat", "s1"}, {"webchat", "s2"}}
			for i := 0; i < messages/4; i++ {
				e := entries[rnd.Intn(len(entries))]
				in := Inbound{Channel: e[0], EntryPoint: e[1], ContactID: fmt.Sprintf("c%d", rnd.Intn(300)),
					ProviderMessageID: fmt.Sprintf("w%d-%d", w, i), Kind: "text", Text: "hi"}
				if _, err := routers[i%2].Deliver(ctx, []Inbound{in}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	// Agents.
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(100 + w)))
			for i := 0; i < 400; i++ {
				r, ps := routers[i%2], stores[i%2]
				a := cfg.Agents[rnd.Intn(agents)]
				chans := []string{}
				for ch := range a.Channels {
					chans = append(chans, ch)
				}
				ch := chans[rnd.Intn(len(chans))]
				switch op := rnd.Intn(10); {
				case op < 4:
					_, _ = ps.Set(ctx, a.ID, ch, presence.Online, "", a.ID, presence.CauseToggle)
				case op < 5:
					_, _ = ps.Set(ctx, a.ID, ch, presence.Offline, "", a.ID, presence.CauseToggle)
				case op < 6:
					_, _ = ps.Set(ctx, a.ID, ch, presence.Paused, "lunch", a.ID, presence.CauseToggle)
				default:
					cards, _ := r.Cards(ctx, a.ID)
					for _, c := range cards {
						switch {
						case c.State == CardOffered && op < 8:
							_, _ = r.Accept(ctx, c.ID, a.ID)
						case c.State == CardOffered:
							_, _ = r.Decline(ctx, c.ID, a.ID)
						case c.State == CardAccepted && rnd.Intn(2) == 0:
							_, _ = r.Close(ctx, c.ID, a.ID, false)
						}
					}
				}
			}
		}(w)
	}
	wg.Wait()

	// Every offer went to an agent online on the channel and below capacity at that moment.
	audit := client.LRange(ctx, routers[0].keys.audit(), 0, -1).Val()
	if len(audit) < 100 {
		t.Fatalf("only %d offers were made; the test exercised too little", len(audit))
	}
	for _, rec := range audit {
		f := strings.Split(rec, "|") // card|agent|state|load after|capacity
		load, _ := strconv.Atoi(f[3])
		capacity, _ := strconv.Atoi(f[4])
		if f[2] != "online" || load > capacity {
			t.Errorf("offer %s: agent %s was %s with load %d of %d", f[0], f[1], f[2], load, capacity)
		}
	}
	// Every card is waiting in its queue or held by exactly one agent; loads match holdings.
	holders := map[string]string{}
	held := map[string]map[string]int{}
	for _, a := range cfg.Agents {
		held[a.ID] = map[string]int{}
		for _, card := range client.SMembers(ctx, routers[0].keys.agentCards(a.ID)).Val() {
			if prev, ok := holders[card]; ok {
				t.Errorf("card %s is held by %s and %s", card, prev, a.ID)
			}
			holders[card] = a.ID
			h := client.HGetAll(ctx, routers[0].keys.card(card)).Val()
			if h["agent"] != a.ID || (h["state"] != CardOffered && h["state"] != CardAccepted) {
				t.Errorf("card %s in %s's set is %s/%s", card, a.ID, h["state"], h["agent"])
			}
			held[a.ID][h["channel"]]++
		}
		for ch, c := range a.Channels {
			load, _ := client.HGet(ctx, routers[0].keys.load(a.ID), ch).Int()
			if load != held[a.ID][ch] {
				t.Errorf("%s on %s: load %d, holds %d cards", a.ID, ch, load, held[a.ID][ch])
			}
			if load > c.Capacity {
				t.Errorf("%s on %s: load %d above capacity %d", a.ID, ch, load, c.Capacity)
			}
		}
	}
	cardKeys := client.Keys(ctx, ks.Prefix()+"card:*").Val()
	waiting := 0
	for _, key := range cardKeys {
		h := client.HGetAll(ctx, key).Val()
		switch h["state"] {
		case CardWaiting:
			waiting++
			if _, err := client.ZScore(ctx, routers[0].keys.waiting(h["queue"], h["channel"]), h["id"]).Result(); err != nil {
				t.Errorf("waiting card %s is not in its queue", h["id"])
			}
		case CardOffered, CardAccepted:
			if holders[h["id"]] != h["agent"] {
				t.Errorf("card %s (%s) names %s but is held by %q", h["id"], h["state"], h["agent"], holders[h["id"]])
			}
		}
	}
	t.Logf("%d cards, %d offers, %d waiting at the end", len(cardKeys), len(audit), waiting)
}
