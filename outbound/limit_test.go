package outbound_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
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

// The claim of a send's turn takes the number's rate in the same script, only when it grants the
// turn: a send whose conversation's lease another execution holds spends none of the number's rate;
// once the lease is free the send's claim takes it, once, also when Redis has forgotten the scripts
// (NOSCRIPT).
func TestClaimTakesTheRateOnlyWithTheTurn(t *testing.T) {
	ctx := context.Background()
	// 1/s with a burst of 1: a take holds the number for a second (its key's TTL), two for two.
	e := newEnv(t, envOptions{noWorker: true, rate: 1})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511900000001")
	id := e.reply(card.ConversationID, "hello")
	items, err := e.client.Keys(ctx, keyspace.New("t").Key("ord", "*", "items")).Result()
	if err != nil || len(items) != 1 {
		t.Fatalf("sequences %v, %v: want the reply's", items, err)
	}
	lease := strings.TrimSuffix(items[0], "items") + "lease"
	if err := e.client.Set(ctx, lease, "another execution", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	e.startWorker(e.client, 0)
	testutil.Eventually(t, 10*time.Second, "the send put back while the turn is held", func() bool {
		info := e.taskInfo(tasks.QueueReplies, id)
		return info.State == asynq.TaskStateRetry && strings.Contains(info.LastErr, "earlier task")
	})
	rate := "rate:" + keyspace.New("t").Key("rate", "number", number)
	if n, _ := e.client.Exists(ctx, rate).Result(); n != 0 {
		t.Fatal("a send refused its turn spent the number's rate")
	}
	if e.message(id).Status != "queued" {
		t.Fatalf("message %s while its turn is held", e.message(id).Status)
	}
	e.client.Del(ctx, lease)
	if err := e.queue.RunTask(tasks.QueueReplies, outbound.TaskID(id)); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(id, "sent")
	if ttl, _ := e.client.PTTL(ctx, rate).Result(); ttl <= 0 || ttl > time.Second {
		t.Fatalf("the number's rate key lives %v: want one take (at most a second)", ttl)
	}
}
