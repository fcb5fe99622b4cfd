package tasks

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
)

// commandCalls reads INFO commandstats: calls per command name (lower case).
func commandCalls(t *testing.T, c *redis.Client) map[string]int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				calls[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.Atoi(v)
			}
		}
	}
	return calls
}

// TestIdlePoolsDoNotPollRedis: the gateway's worker pools, idle, wait on Redis instead of asking
// it every few milliseconds. Polling, the replies pool alone runs its dequeue script every ½–1½ of
// 5 ms (≥ 130 a second) and the templates pool two every 20 ms; waiting, a loop asks about once per
// IdleWaitTimeout. The Redis is the test's own, so no other test's commands are counted.
func TestIdlePoolsDoNotPollRedis(t *testing.T) {
	rs := redistest.StartServer(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer c.Close()
	srv := NewServer(c, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Concurrency: 2, ShutdownTimeout: time.Second})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	time.Sleep(300 * time.Millisecond) // past asynq's start-up writes
	before := commandCalls(t, c)
	const over = 2 * time.Second
	time.Sleep(over)
	after := commandCalls(t, c)
	scripts := after["evalsha"] + after["eval"] - before["evalsha"] - before["eval"]
	waits := after["blmove"] - before["blmove"]
	t.Logf("idle for %v: %d scripts, %d BLMOVE", over, scripts, waits)
	// asynq's own loops (forwarding scheduled tasks each second per queue, heartbeats…) run a few
	// scripts a second; polling would run hundreds.
	if scripts > 100 {
		t.Errorf("idle pools ran %d scripts in %v; waiting, they ask about once a second", scripts, over)
	}
	loops := 0
	for _, p := range pools {
		loops += len(loopWorkers(2, p.loops)) // the server's two workers allow two loops a pool
	}
	if want := loops * int(over/IdleWaitTimeout); waits == 0 || waits > want+want/2 {
		t.Errorf("idle pools waited %d times in %v; want about one per loop per %v (%d)", waits, over, IdleWaitTimeout, want)
	}
}

// TestIdlePoolsTakeTasksAtOnce: a task enqueued while a pool waits is taken at once, though the pool
// would look again only seconds later (TaskCheckInterval 3 s), on its first queue whether the pool
// has one queue or two, on one Redis and on a Cluster.
func TestIdlePoolsTakeTasksAtOnce(t *testing.T) {
	run := func(t *testing.T, client redis.UniversalClient, queues []string) {
		w := NewIdleWait(client, queues)
		qs := map[string]int{}
		for i, q := range queues {
			qs[q] = len(queues) - i
		}
		srv := asynq.NewServerFromRedisClient(w.Client(), asynq.Config{Concurrency: 2, Queues: qs, StrictPriority: true,
			TaskCheckInterval: 3 * time.Second, Logger: newSlogAdapter(slog.New(slog.NewTextHandler(io.Discard, nil)))})
		taken := make(chan time.Time, 4)
		mux := asynq.NewServeMux()
		mux.HandleFunc("probe", func(context.Context, *asynq.Task) error { taken <- time.Now(); return nil })
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()
		defer w.Close()
		enq := asynq.NewClientFromRedisClient(client)
		for round := range 3 {
			time.Sleep(300 * time.Millisecond) // the pool is idle: its first ask found nothing
			at := time.Now()
			if _, err := enq.Enqueue(asynq.NewTask("probe", nil), asynq.Queue(queues[0])); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-taken:
				if d := got.Sub(at); d > 500*time.Millisecond {
					t.Errorf("round %d: the task was taken after %v; an idle pool takes it at once", round, d)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("round %d: the task was never taken", round)
			}
		}
	}
	t.Run("one queue", func(t *testing.T) { run(t, redistest.Client(t), []string{QueueReplies}) })
	t.Run("two queues", func(t *testing.T) { run(t, redistest.Client(t), []string{QueueTemplates, QueueDefault}) })
	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a Redis Cluster")
		}
		run(t, redistest.StartCluster(t).Client(t), []string{QueueTemplates, QueueDefault})
	})
}

// TestStopWhileIdleIsPrompt: stopping idle workers does not wait for their wait on Redis to time out.
func TestStopWhileIdleIsPrompt(t *testing.T) {
	c := redistest.Client(t)
	srv := NewServer(c, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Concurrency: 2, ShutdownTimeout: time.Second})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // both pools are waiting
	at := time.Now()
	srv.Stop()
	stopped := time.Since(at)
	srv.Shutdown()
	t.Logf("stop %v, shutdown %v", stopped, time.Since(at)-stopped)
	if stopped > IdleWaitTimeout/2 {
		t.Errorf("Stop took %v; a pool waiting on Redis stops at once", stopped)
	}
}

// TestIdleWaitLeavesThePendingListAsItWas: the wait's BLMOVE on a list holding tasks returns at
// once and leaves their order as it was (asynq pops the right end: the oldest task).
func TestIdleWaitLeavesThePendingListAsItWas(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	key := asynqPendingKey(QueueReplies)
	c.LPush(ctx, key, "a", "b", "c") // c b a: a is next
	w := NewIdleWait(c, []string{QueueReplies})
	defer w.Close()
	at := time.Now()
	if !w.wait() {
		t.Fatal("the wait on a list holding tasks did not report them")
	}
	if d := time.Since(at); d > IdleWaitTimeout/2 {
		t.Errorf("the wait on a list holding tasks took %v", d)
	}
	got, err := c.LRange(ctx, key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"c", "b", "a"}; !slices.Equal(got, want) {
		t.Errorf("pending list after the wait %v, want %v", got, want)
	}
}
