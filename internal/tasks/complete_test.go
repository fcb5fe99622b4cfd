package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// completeInScript is a handler's own script completing its task (CompleteLua).
var completeInScript = redis.NewScript(CompleteLua + `return asynqCompleteAt(ARGV, 1)`)

// asynqCompletions counts the scripts by which asynq completes a task of queue (Done, its unique
// variant, MarkAsComplete: KEYS[1] the queue's active list, the processed counter among them).
func asynqCompletions(queue string) *redistest.CommandCounter {
	qp := asynqQueuePrefix(queue)
	return &redistest.CommandCounter{Match: func(cmd redis.Cmder) bool {
		a := cmd.Args()
		name := cmd.Name()
		return (name == "evalsha" || name == "eval") && len(a) > 3 && a[3] == qp+"active" && slices.Contains(a, any(qp+"processed"))
	}}
}

// queueContents is Contents of one queue's keys, named without the queue.
func queueContents(t *testing.T, c *redis.Client, queue string) string {
	var out []string
	for _, line := range strings.Split(redistest.Contents(t, c), "\n") {
		if rest, ok := strings.CutPrefix(line, asynqQueuePrefix(queue)); ok {
			out = append(out, rest)
		}
	}
	return strings.Join(out, "\n")
}

// A handler's script that completes its task (Completion) leaves Redis exactly as asynq's Done would
// (the task gone from active, the lease and its hash; the day's processed counter with its expiry;
// the total, wrapping at the largest int64 as asynq's does), and asynq's Done of it then never
// reaches Redis. Asked again, the script does nothing. A task asynq completes otherwise (a unique
// one, one kept with a retention) is left to asynq.
func TestCompletionIsAsynqsDone(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	folded, plain := asynqCompletions(QueueReplies), asynqCompletions(QueueTemplates)
	client.AddHook(folded)
	client.AddHook(plain)
	srv := NewServer(client, slog.New(slog.DiscardHandler), Options{Concurrency: 2, ShutdownTimeout: time.Second})
	var mu sync.Mutex
	answers := map[string][]int64{}
	srv.Handle("fold", asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		c := CompletionOf(ctx)
		id, _ := asynq.GetTaskID(ctx)
		var got []int64
		for range 2 {
			reply, err := completeInScript.Run(ctx, client, nil, c.Args()...).Result()
			if err != nil {
				return err
			}
			if len(got) == 0 {
				if _, err := c.Completed(reply); err != nil {
					return err
				}
			}
			n, _ := reply.(int64) // one task pending at a time here: none is handed out
			got = append(got, n)
		}
		mu.Lock()
		answers[id] = got
		mu.Unlock()
		return nil
	}))
	srv.Handle("plain", asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	for _, q := range []string{QueueReplies, QueueTemplates} {
		if err := client.Set(ctx, asynqQueuePrefix(q)+"processed", int64(math.MaxInt64), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	enqueuer := asynq.NewClientFromRedisClient(client)
	enqueue := func(typ, queue, id string, opts ...asynq.Option) {
		t.Helper()
		if _, err := enqueuer.Enqueue(asynq.NewTask(typ, []byte(id)), append(opts, asynq.Queue(queue), asynq.TaskID(id))...); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("fold", QueueReplies, "a")
	enqueue("plain", QueueTemplates, "a")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	finished := func(queue string, ids ...string) {
		t.Helper()
		ins := asynq.NewInspectorFromRedisClient(client)
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("tasks %v of %s finished", ids, queue), func() bool {
			for _, id := range ids {
				info, err := ins.GetTaskInfo(queue, id)
				if err == nil && info.State != asynq.TaskStateCompleted {
					return false
				}
			}
			return true
		})
	}
	finished(QueueReplies, "a")
	finished(QueueTemplates, "a")
	time.Sleep(100 * time.Millisecond) // asynq's Done runs just after the handler returns
	if got, want := queueContents(t, client, QueueReplies), queueContents(t, client, QueueTemplates); got != want {
		t.Errorf("completed by the script:\n%s\nby asynq:\n%s", got, want)
	}
	if n := client.Get(ctx, asynqQueuePrefix(QueueReplies)+"processed").Val(); n != "1" {
		t.Errorf("processed total %s, want 1 (wrapped)", n)
	}
	mu.Lock()
	if got := answers["a"]; !slices.Equal(got, []int64{1, 0}) {
		t.Errorf("the script answered %v, want 1 then 0", got)
	}
	mu.Unlock()
	// (EVALSHA, then EVAL when Redis does not have the script yet)
	if folded.N() != 0 || plain.N() == 0 {
		t.Errorf("asynq's completions reached Redis: %d for the script's task (want 0), %d for asynq's (want some)", folded.N(), plain.N())
	}

	// Tasks asynq completes with another script: left to it.
	enqueue("fold", QueueReplies, "unique", asynq.Unique(time.Hour))
	enqueue("fold", QueueReplies, "kept", asynq.Retention(time.Hour))
	finished(QueueReplies, "unique", "kept")
	testutil.Eventually(t, 5*time.Second, "asynq's completions of the tasks it completes", func() bool {
		return folded.N() > 0 && client.Get(ctx, asynqQueuePrefix(QueueReplies)+"processed").Val() == "3"
	})
	mu.Lock()
	for _, id := range []string{"unique", "kept"} {
		if got := answers[id]; !slices.Equal(got, []int64{0, 0}) {
			t.Errorf("the script answered %v for %s, want 0 (left to asynq)", got, id)
		}
	}
	mu.Unlock()
	info, err := asynq.NewInspectorFromRedisClient(client).GetTaskInfo(QueueReplies, "kept")
	if err != nil || info.State != asynq.TaskStateCompleted {
		t.Errorf("the task with a retention: %v %v, want kept completed", info, err)
	}
	if keys := client.Keys(ctx, "asynq:{"+QueueReplies+"}:unique:*").Val(); len(keys) != 0 {
		t.Errorf("uniqueness locks left: %v", keys)
	}
}
