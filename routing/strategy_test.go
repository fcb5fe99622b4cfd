package routing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatgate/chatgate/presence"
)

// offeredTo returns who holds the card of a contact, "" when nobody.
func (e *env) offeredTo(t *testing.T, contact string, agents ...string) string {
	t.Helper()
	for _, a := range agents {
		for _, c := range e.cards(t, a) {
			if c.Contact.ID == contact {
				return a
			}
		}
	}
	return ""
}

func (e *env) availOrder(t *testing.T, queue, ch string) string {
	t.Helper()
	return fmt.Sprint(e.client.ZRange(context.Background(), e.router.keys.avail(queue, ch), 0, -1).Val())
}

// TestReconcileKeepsIdleOrder: the sweeper's periodic Reconcile must not rewrite longest-idle scores
// (it used to ZADD score=now for every agent, in map order, every 30 s).
func TestReconcileKeepsIdleOrder(t *testing.T) {
	ctx := context.Background()
	for _, strategy := range []string{"longest_idle", "least_busy", "round_robin"} {
		t.Run(strategy, func(t *testing.T) {
			e := newEnv(t, strategy)
			e.router.entries["webchat:shop2"] = "sales"
			for _, a := range []string{"dan", "bob", "ana"} { // dan idle longest, then bob, then ana
				e.set(t, a, "webchat", presence.Online, "")
				e.clock.Advance(time.Second)
			}
			before := e.availOrder(t, "sales", "webchat")
			if before != "[dan bob ana]" {
				t.Fatalf("order before reconcile: %s", before)
			}
			for i := 0; i < 5; i++ {
				e.clock.Advance(30 * time.Second)
				if err := e.router.Reconcile(ctx); err != nil {
					t.Fatal(err)
				}
				if got := e.availOrder(t, "sales", "webchat"); got != before {
					t.Fatalf("reconcile %d changed the order: %s → %s", i, before, got)
				}
			}
			e.customer(t, "webchat", "shop2", "v1", "hi")
			if got := e.offeredTo(t, "v1", "ana", "bob", "dan"); got != "dan" {
				t.Errorf("after reconciles the first card went to %q, want dan", got)
			}
		})
	}
}

// TestReconcileRepairsSets: what reconcile is for — an eligible agent missing from the set is added
// (and offered waiting cards), an ineligible one left in it is removed.
func TestReconcileRepairsSets(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.set(t, "bob", "whatsapp", presence.Online, "")
	key := e.router.keys.avail("sales", "whatsapp")
	e.client.ZRem(ctx, key, "ana")                                                                       // lost update: ana online but not a candidate
	e.client.HSet(ctx, presence.StateKey(e.router.keys.ks, "bob"), "whatsapp", string(presence.Offline)) // bob gone behind the router's back
	e.customer(t, "whatsapp", "100", "c1", "hi")                                                         // offered to bob (stale candidate) or waits
	if err := e.router.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.availOrder(t, "sales", "whatsapp"); got != "[ana]" {
		t.Fatalf("candidates after reconcile: %s, want [ana]", got)
	}
	if got := e.offeredTo(t, "c1", "ana", "bob"); got != "ana" {
		t.Fatalf("the waiting card went to %q after reconcile, want ana", got)
	}
}

func TestStrategiesDiffer(t *testing.T) {
	agents := []string{"ana", "bob", "dan"}
	// Three agents log in a second apart (ana, bob, dan), each with webchat capacity ≥ 1 in sales.
	start := func(t *testing.T, strategy string) *env {
		e := newEnv(t, strategy)
		e.router.entries["webchat:shop2"] = "sales"
		for _, a := range agents {
			e.set(t, a, "webchat", presence.Online, "")
			e.clock.Advance(time.Second)
		}
		return e
	}
	ctx := context.Background()

	t.Run("round_robin cycles back to the first", func(t *testing.T) {
		e := start(t, "round_robin")
		var got []string
		for i := 0; i < 4; i++ { // ana and bob have capacity 2, dan 1
			e.clock.Advance(time.Second)
			e.customer(t, "webchat", "shop2", fmt.Sprintf("v%d", i), "hi")
			got = append(got, e.offeredTo(t, fmt.Sprintf("v%d", i), agents...))
		}
		if fmt.Sprint(got) != "[ana bob dan ana]" {
			t.Errorf("round robin: %v, want [ana bob dan ana]", got)
		}
	})

	t.Run("round_robin keeps its turn after a close", func(t *testing.T) {
		// ana closes her card: round robin does not put her last (she keeps her place in the cycle),
		// longest idle does (she was busy until just now).
		for _, tc := range []struct{ strategy, want string }{{"round_robin", "ana"}, {"longest_idle", "bob"}} {
			e := start(t, tc.strategy)
			e.customer(t, "webchat", "shop2", "v0", "hi") // → ana
			e.clock.Advance(time.Second)
			c := e.cards(t, "ana")[0]
			if _, err := e.router.Accept(ctx, c.ID, "ana"); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Second)
			e.customer(t, "webchat", "shop2", "v1", "hi") // → bob in both
			e.clock.Advance(time.Second)
			if _, err := e.router.Close(ctx, c.ID, "ana", false); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Second)
			e.customer(t, "webchat", "shop2", "v2", "hi")
			// round robin: dan is next in the cycle either way; check the one after.
			if got := e.offeredTo(t, "v2", agents...); got != "dan" {
				t.Errorf("%s: v2 went to %s, want dan", tc.strategy, got)
			}
			e.clock.Advance(time.Second)
			e.customer(t, "webchat", "shop2", "v3", "hi")
			if got := e.offeredTo(t, "v3", agents...); got != tc.want {
				t.Errorf("%s: v3 went to %s, want %s", tc.strategy, got, tc.want)
			}
		}
	})

	t.Run("longest_idle picks whoever closed longest ago", func(t *testing.T) {
		e := start(t, "longest_idle")
		for i := 0; i < 3; i++ { // v0→ana, v1→bob, v2→dan
			e.customer(t, "webchat", "shop2", fmt.Sprintf("v%d", i), "hi")
			e.clock.Advance(time.Second)
		}
		// dan closes first, then ana, then bob: idle order is dan, ana, bob.
		for _, a := range []string{"dan", "ana", "bob"} {
			c := e.cards(t, a)[0]
			if _, err := e.router.Accept(ctx, c.ID, a); err != nil {
				t.Fatal(err)
			}
			if _, err := e.router.Close(ctx, c.ID, a, false); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Second)
		}
		var got []string
		for i := 3; i < 6; i++ {
			e.customer(t, "webchat", "shop2", fmt.Sprintf("v%d", i), "hi")
			got = append(got, e.offeredTo(t, fmt.Sprintf("v%d", i), agents...))
			e.clock.Advance(time.Second)
		}
		if fmt.Sprint(got) != "[dan ana bob]" {
			t.Errorf("longest idle after closes: %v, want [dan ana bob]", got)
		}
	})

	t.Run("least_busy picks the fewest open cards", func(t *testing.T) {
		// ana holds two cards, bob one, dan none; the next card goes to dan although ana has been
		// idle longest and round robin / longest idle would give it elsewhere.
		e := start(t, "least_busy")
		for i, a := range []string{"ana", "bob", "ana"} {
			contact := fmt.Sprintf("x%d", i)
			// Route by hand: only the intended agent is a candidate at that moment.
			for _, other := range agents {
				if other != a {
					e.set(t, other, "webchat", presence.Paused, "lunch")
				}
			}
			e.set(t, a, "webchat", presence.Online, "")
			e.customer(t, "webchat", "shop2", contact, "hi")
			if got := e.offeredTo(t, contact, agents...); got != a {
				t.Fatalf("setup: %s went to %q, want %s", contact, got, a)
			}
		}
		for _, a := range agents {
			e.set(t, a, "webchat", presence.Online, "")
		}
		e.clock.Advance(time.Second)
		e.customer(t, "webchat", "shop2", "v1", "hi")
		if got := e.offeredTo(t, "v1", agents...); got != "dan" {
			t.Errorf("least busy: v1 went to %s, want dan (0 cards)", got)
		}
		e.clock.Advance(time.Second)
		e.customer(t, "webchat", "shop2", "v2", "hi") // ana is full (2); bob has 1, dan 1: dan's load is equal, bob's offer older
		if got := e.offeredTo(t, "v2", agents...); got != "bob" {
			t.Errorf("least busy: v2 went to %s, want bob", got)
		}
	})
}

// TestOtherQueueExcluded: an agent of another queue, online on the card's channel with free capacity,
// never gets the card — the only reason it is excluded is queue membership.
func TestOtherQueueExcluded(t *testing.T) {
	e := newEnv(t, "longest_idle")
	e.router.entries["webchat:shop2"] = "sales"
	e.set(t, "cat", "webchat", presence.Online, "") // support only, webchat capacity 2
	e.customer(t, "webchat", "shop2", "v1", "hi")
	if n := len(e.cards(t, "cat")); n != 0 {
		t.Fatalf("cat (support) got %d sales cards", n)
	}
	if got := e.waiting(t, "sales", "webchat"); got != 1 {
		t.Fatalf("sales card waiting: %d, want 1", got)
	}
	// The same agent does get a card of her own queue on that channel: she was eligible otherwise.
	e.customer(t, "webchat", "shop", "v2", "hi")
	if cs := e.cards(t, "cat"); len(cs) != 1 || cs[0].Contact.ID != "v2" || cs[0].Queue != "support" {
		t.Fatalf("cat's cards: %+v, want the support card", cs)
	}
	// A sales agent logging in takes the waiting sales card; cat still has only hers.
	e.set(t, "dan", "webchat", presence.Online, "")
	if got := e.offeredTo(t, "v1", "dan", "cat"); got != "dan" {
		t.Fatalf("the sales card went to %q, want dan", got)
	}
}
