package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// takenDequeues counts asynq's dequeue scripts of queue that reached Redis and took a task (KEYS
// pending, paused, active, lease; a reply).
func takenDequeues(queue string) *redistest.CommandCounter {
	return &redistest.CommandCounter{AfterReply: true, Match: func(cmd redis.Cmder) bool {
		a := cmd.Args()
		c, ok := cmd.(*redis.Cmd)
		return ok && (cmd.Name() == "evalsha" || cmd.Name() == "eval") && len(a) == 9 && a[3] == asynqPendingKey(queue) &&
			a[4] == asynqQueuePrefix(queue)+"paused" && cmd.Err() == nil && c.Val() != nil
	}}
}

// A busy queue's next task is taken by the script that completes the one before and handed to the
// server's next dequeue without Redis: every task still runs exactly once, in asynq's order within a
// loop, and the queue ends as asynq leaves it (nothing active, leased or pending; every task counted
// processed); the dequeues that reach Redis are fewer than the tasks.
func TestHandOffServesTheNextDequeue(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	dequeues := takenDequeues(QueueReplies)
	client.AddHook(dequeues)
	srv := NewServer(client, slog.New(slog.DiscardHandler), Options{Concurrency: 2, ShutdownTimeout: time.Second})
	var mu sync.Mutex
	runs := map[string]int{}
	handed := 0
	srv.Handle("fold", asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		c := CompletionOf(ctx)
		reply, err := completeInScript.Run(ctx, client, nil, c.Args()...).Result()
		if err != nil {
			return err
		}
		done, err := c.Completed(reply)
		if err != nil || !done {
			return fmt.Errorf("not completed by the script: %v %v", reply, err)
		}
		mu.Lock()
		defer mu.Unlock()
		runs[string(task.Payload())]++
		if _, ok := reply.([]any); ok {
			handed++
		}
		return nil
	}))
	enqueuer := asynq.NewClientFromRedisClient(client)
	const n = 60
	for i := range n {
		id := fmt.Sprintf("t%02d", i)
		if _, err := enqueuer.Enqueue(asynq.NewTask("fold", []byte(id)), asynq.Queue(QueueReplies), asynq.TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	qp := asynqQueuePrefix(QueueReplies)
	testutil.Eventually(t, 20*time.Second, "every task processed", func() bool {
		return client.Get(ctx, qp+"processed").Val() == fmt.Sprint(n)
	})
	mu.Lock()
	for i := range n {
		if id := fmt.Sprintf("t%02d", i); runs[id] != 1 {
			t.Errorf("task %s ran %d times, want once", id, runs[id])
		}
	}
	if handed == 0 {
		t.Error("no completion handed out the next task")
	}
	got := handed
	mu.Unlock()
	for _, k := range []string{"active", "lease", "pending"} {
		if n := client.Exists(ctx, qp+k).Val(); n != 0 {
			t.Errorf("%s left: %v", k, client.Do(ctx, "TYPE", qp+k).Val())
		}
	}
	if keys := client.Keys(ctx, qp+"t:*").Val(); len(keys) != 0 {
		t.Errorf("task hashes left: %v", keys)
	}
	if d := int(dequeues.N()); d+got != n {
		t.Errorf("%d dequeues reached Redis and took a task, %d tasks handed out: want %d in all", d, got, n)
	}
}

// asynqDequeueLua is asynq's dequeue (dequeueCmd, v0.26), to make a task active as a loop would.
var asynqDequeueLua = redis.NewScript(`
if redis.call("EXISTS", KEYS[2]) == 0 then
	local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
	if id then
		local key = ARGV[2] .. id
		redis.call("HSET", key, "state", "active")
		redis.call("HDEL", key, "pending_since")
		redis.call("ZADD", KEYS[4], ARGV[1], id)
		return redis.call("HGET", key, "msg")
	end
end
return nil`)

// A task handed out is in Redis exactly as asynq's dequeue leaves it; one the loops never take
// (the server stops, or it waited too long) goes back to the front of its queue as asynq hands
// back an active task, and a server then runs it. A paused queue hands out nothing, and a server
// holding its most hands out no more.
func TestHandOffHandedBack(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	q := QueueTemplates
	qp := asynqQueuePrefix(q)
	enqueuer := asynq.NewClientFromRedisClient(client)
	for _, id := range []string{"a", "b", "c", "d"} {
		if _, err := enqueuer.Enqueue(asynq.NewTask("plain", []byte(id)), asynq.Queue(q), asynq.TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	lease := time.Now().Add(leaseDuration).Unix()
	dequeue := func() {
		t.Helper()
		keys := []string{asynqPendingKey(q), qp + "paused", asynqActiveKey(q), asynqLeaseKey(q)}
		if err := asynqDequeueLua.Run(ctx, client, keys, lease, asynqTaskPrefix(q)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	dequeue() // "a", as a loop would
	hand := newHandOffs(client, slog.New(slog.DiscardHandler), 1)
	complete := func(id string) any {
		t.Helper()
		c := Completion{queue: q, id: id, hand: hand}
		reply, err := completeInScript.Run(ctx, client, nil, c.Args()...).Result()
		if err != nil {
			t.Fatal(err)
		}
		if done, err := c.Completed(reply); !done || err != nil {
			t.Fatalf("%s not completed: %v %v", id, reply, err)
		}
		return reply
	}
	// Completing "a" hands out "b": active, leased as asynq's dequeue leases it, its pending_since gone.
	reply := complete("a")
	r, ok := reply.([]any)
	if !ok || len(r) != 3 || r[1] != "b" {
		t.Fatalf("completing a answered %v, want b handed out", reply)
	}
	wantMsg := client.HGet(ctx, asynqTaskPrefix(q)+"b", "msg").Val()
	if r[2] != wantMsg {
		t.Error("the handed-out message is not the task's")
	}
	if st := client.HGet(ctx, asynqTaskPrefix(q)+"b", "state").Val(); st != "active" {
		t.Errorf("b is %s, want active", st)
	}
	if ok := client.HExists(ctx, asynqTaskPrefix(q)+"b", "pending_since").Val(); ok {
		t.Error("b keeps pending_since")
	}
	if s := client.ZScore(ctx, asynqLeaseKey(q), "b").Val(); int64(s) != lease {
		t.Errorf("b leased until %v, want %d", s, lease)
	}
	// Its most held (one): completing "b" hands out nothing.
	if args := (Completion{queue: q, id: "b", hand: hand}).Args(); args[5] != "" {
		t.Errorf("a full hand still asks for a task: %v", args)
	}
	// The server's dequeue of the queue takes it without Redis; of another queue, not.
	keys := []string{asynqPendingKey(QueueReplies), asynqQueuePrefix(QueueReplies) + "paused", asynqActiveKey(QueueReplies), asynqLeaseKey(QueueReplies)}
	if cmd := hand.answerDequeue(ctx, keys, []any{lease, asynqTaskPrefix(QueueReplies)}); cmd != nil {
		t.Errorf("another queue's dequeue answered: %v", cmd.Val())
	}
	keys = []string{asynqPendingKey(q), qp + "paused", asynqActiveKey(q), asynqLeaseKey(q)}
	cmd := hand.answerDequeue(ctx, keys, []any{lease, asynqTaskPrefix(q)})
	if cmd == nil || cmd.Val() != wantMsg {
		t.Fatalf("the queue's dequeue answered %v, want b's message", cmd)
	}
	if cmd := hand.answerDequeue(ctx, keys, []any{lease, asynqTaskPrefix(q)}); cmd != nil {
		t.Error("b handed out twice")
	}

	// Completing "b" hands out "c"; left too long, the next dequeue hands it back and answers nothing.
	complete("b")
	hand.mu.Lock()
	hand.held[q][0].at = time.Now().Add(-2 * handOffFresh)
	hand.mu.Unlock()
	if cmd := hand.answerDequeue(ctx, keys, []any{lease, asynqTaskPrefix(q)}); cmd != nil {
		t.Errorf("a stale hand-out answered: %v", cmd.Val())
	}
	pendingBack := func(id string) {
		t.Helper()
		if got := client.LIndex(ctx, asynqPendingKey(q), -1).Val(); got != id {
			t.Errorf("the front of pending is %q, want %s handed back", got, id)
		}
		if st := client.HGet(ctx, asynqTaskPrefix(q)+id, "state").Val(); st != "pending" {
			t.Errorf("%s is %s, want pending", id, st)
		}
		if client.LPos(ctx, asynqActiveKey(q), id, redis.LPosArgs{}).Err() != redis.Nil || client.ZScore(ctx, asynqLeaseKey(q), id).Err() != redis.Nil {
			t.Errorf("%s still active or leased", id)
		}
	}
	pendingBack("c")

	// Paused, the queue hands out nothing.
	dequeue() // "c" again
	if err := asynq.NewInspectorFromRedisClient(client).PauseQueue(q); err != nil {
		t.Fatal(err)
	}
	if reply := complete("c"); reply != int64(1) {
		t.Errorf("a paused queue answered %v, want 1 (nothing handed out)", reply)
	}
	if err := asynq.NewInspectorFromRedisClient(client).UnpauseQueue(q); err != nil {
		t.Fatal(err)
	}

	// Closed (the server stopping), what is held goes back, and what a script hands out later too.
	dequeue()            // "d"
	hand.add(q, "d", "") // as if a script took it after the loops stopped, before close
	hand.close()
	pendingBack("d")
	if args := (Completion{queue: q, id: "x", hand: hand}).Args(); args[5] != "" {
		t.Errorf("a closed hand still asks for a task: %v", args)
	}
	dequeue() // "d" once more
	hand.add(q, "d", "")
	pendingBack("d")

	// A server runs it.
	srv := NewServer(client, slog.New(slog.DiscardHandler), Options{Concurrency: 1, ShutdownTimeout: time.Second})
	ran := make(chan string, 4)
	srv.Handle("plain", asynq.HandlerFunc(func(_ context.Context, task *asynq.Task) error {
		ran <- string(task.Payload())
		return nil
	}))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	select {
	case id := <-ran:
		if id != "d" {
			t.Errorf("ran %s, want d", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the task handed back never ran")
	}
}
