package outbound_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/keyspace"
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
