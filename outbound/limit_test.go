package outbound_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/outbound"
)

// A send refused by the customer's pace spends none of the number's rate, so another customer's
// send right after it goes.
func TestPaceRefusalSpendsNoNumberCapacity(t *testing.T) {
	ctx := context.Background()
	// 2/s with a burst of 1: one send every 500ms.
	limits := outbound.NewLimits(redistest.Client(t), keyspace.New("t"), map[string]int{number: 2}, time.Minute)
	take := func(to string) time.Duration {
		t.Helper()
		wait, err := limits.Take(ctx, number, to)
		if err != nil {
			t.Fatal(err)
		}
		return wait
	}
	if w := take("5511900000001"); w != 0 {
		t.Fatalf("first send waits %v", w)
	}
	time.Sleep(600 * time.Millisecond) // the number's interval under test passes: its rate has room again
	if w := take("5511900000001"); w < 50*time.Second {
		t.Fatalf("a second send to the same customer waits %v; the pace is a minute", w)
	}
	if w := take("5511900000002"); w != 0 {
		t.Fatalf("another customer's send waits %v after a paced refusal", w)
	}
	// Now the number's rate refuses, and spends nothing of the third customer's pace.
	if w := take("5511900000003"); w == 0 || w > 500*time.Millisecond {
		t.Fatalf("a send within the number's interval waits %v", w)
	}
	time.Sleep(600 * time.Millisecond) // the number's interval under test passes (Redis' clock)
	if w := take("5511900000003"); w != 0 {
		t.Fatalf("the third customer waits %v after a refusal by the number's rate", w)
	}
}

// A take queued with a turn spends only while the turn's lease holds its token: a send whose claim
// was refused spends none of the number's rate.
func TestQueuedTakeSpendsOnlyWithTheTurn(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	// 1/s with a burst of 1: after one send, the next waits about a second.
	limits := outbound.NewLimits(client, keyspace.New("t"), map[string]int{number: 1}, 0)
	turn := ordered.Turn{LeaseKey: keyspace.New("t").Key("test", "lease"), Token: "mine"}
	queued := func() (time.Duration, bool) {
		t.Helper()
		pipe := client.Pipeline()
		p := limits.QueueTake(ctx, pipe, number, "5511900000001", turn)
		if _, err := pipe.Exec(ctx); err != nil && !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			t.Fatal(err)
		}
		return p.Result()
	}
	// Not loaded yet: the queued call fails and says so (the worker then takes alone).
	if _, ok := queued(); ok {
		t.Fatal("a queued take on a Redis without the script reported a result")
	}
	if _, err := limits.Take(ctx, "another", "x"); err != nil { // loads the script
		t.Fatal(err)
	}
	client.Set(ctx, turn.LeaseKey, "someone else", time.Minute)
	if _, ok := queued(); ok {
		t.Fatal("a take without the turn reported a result")
	}
	client.Set(ctx, turn.LeaseKey, "mine", time.Minute)
	if w, ok := queued(); !ok || w != 0 {
		t.Fatalf("with the turn: wait %v, ok %v; want the send to go (nothing was spent before)", w, ok)
	}
	if w, ok := queued(); !ok || w == 0 {
		t.Fatalf("the second take with the turn: wait %v, ok %v; want a wait (the first spent the rate)", w, ok)
	}
}
