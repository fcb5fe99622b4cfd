package tasks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// keyedScript enqueues the Keyed task of ARGV[3…] with key ARGV[1], pending when ARGV[2] is "1".
var keyedScript = redis.NewScript(KeyedLua + `
return asynqEnqueueKeyed(ARGV, 3, ARGV[1], ARGV[2] == '1')
`)

func enqueueKeyed(t *testing.T, c redis.UniversalClient, k Keyed, key string, pending bool, later time.Duration) int64 {
	t.Helper()
	argv := append([]any{key, map[bool]string{true: "1", false: "0"}[pending]}, k.Args(time.Now(), later)...)
	n, err := keyedScript.Run(context.Background(), c, nil, argv...).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const keyedHeader = "the-key"

// What a script writes is what asynq's client writes, byte for byte: the same task enqueued both
// ways (pending, and scheduled) leaves the same message, state and queue entries; asynq's inspector
// lists it, and a worker runs it with its payload and header, through a failed attempt and a retry.
func TestKeyedTaskIsAsynqsOwn(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	enq := asynq.NewClientFromRedisClient(c)
	ins := asynq.NewInspectorFromRedisClient(c)
	payload := func(key string) []byte {
		return []byte(`{"message_id":"m1","conversation_id":"` + key + `","to":"55"}`)
	}
	opts := func(id string) []asynq.Option {
		return []asynq.Option{asynq.Queue(QueueTemplates), asynq.TaskID(id), asynq.MaxRetry(3), asynq.Retention(time.Hour),
			asynq.Timeout(90 * time.Second)}
	}
	const key = "01JAAAAAAAAAAAAAAAAAAAAAAA"
	for _, pending := range []bool{true, false} {
		id := "msg:" + strings.Repeat(map[bool]string{true: "p", false: "s"}[pending], 4)
		aopts := opts(id)
		if !pending {
			aopts = append(aopts, asynq.ProcessIn(time.Hour))
		}
		if _, err := enq.Enqueue(asynq.NewTaskWithHeaders("test:keyed", payload(key), map[string]string{keyedHeader: key}), aopts...); err != nil {
			t.Fatal(err)
		}
		byAsynq := c.HGetAll(ctx, asynqTaskPrefix(QueueTemplates)+id).Val()
		score := c.ZScore(ctx, asynqQueuePrefix(QueueTemplates)+"scheduled", id).Val()
		if err := ins.DeleteTask(QueueTemplates, id); err != nil {
			t.Fatal(err)
		}
		c.Del(ctx, "asynq:queues")

		k, err := NewKeyed("test:keyed", payload("(key)"), "(key)", keyedHeader, opts(id)...)
		if err != nil {
			t.Fatal(err)
		}
		if n := enqueueKeyed(t, c, k, key, pending, time.Hour); n != 1 {
			t.Fatalf("the script answered %d, want 1 (written)", n)
		}
		byScript := c.HGetAll(ctx, asynqTaskPrefix(QueueTemplates)+id).Val()
		if byScript["msg"] != byAsynq["msg"] || byScript["state"] != byAsynq["state"] || len(byScript) != len(byAsynq) {
			t.Fatalf("pending %v: the script wrote %q, asynq %q", pending, byScript, byAsynq)
		}
		if pending {
			// asynq's time of the enqueue (ns): the script's came after
			a, _ := strconv.ParseInt(byAsynq["pending_since"], 10, 64)
			b, _ := strconv.ParseInt(byScript["pending_since"], 10, 64)
			if a == 0 || b < a || b > a+int64(10*time.Second) {
				t.Errorf("pending_since %q, asynq's %q", byScript["pending_since"], byAsynq["pending_since"])
			}
		} else if s := c.ZScore(ctx, asynqQueuePrefix(QueueTemplates)+"scheduled", id).Val(); s < score || s > score+2 {
			t.Errorf("scheduled at %v, asynq at %v", s, score)
		}
		if qs, _ := ins.Queues(); !slices.Contains(qs, QueueTemplates) {
			t.Errorf("the inspector's queues %v miss the script's", qs)
		}
		info, err := ins.GetTaskInfo(QueueTemplates, id)
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]asynq.TaskState{true: asynq.TaskStatePending, false: asynq.TaskStateScheduled}[pending]
		if info.State != want || info.Type != "test:keyed" || !bytes.Equal(info.Payload, payload(key)) || info.MaxRetry != 3 ||
			info.Timeout != 90*time.Second || info.Retention != time.Hour {
			t.Errorf("the inspector sees %+v", info)
		}
	}
	listed, err := ins.ListScheduledTasks(QueueTemplates)
	if err != nil || len(listed) != 1 || listed[0].ID != "msg:ssss" {
		t.Fatalf("scheduled tasks listed: %v %v", listed, err)
	}

	// A worker runs both (the scheduled one once run now), the first attempt failing.
	if _, err := RunNow(ctx, c, QueueTemplates, "msg:ssss"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	var seen []string
	srv := NewServer(c, slog.New(slog.DiscardHandler), Options{Concurrency: 2, ShutdownTimeout: time.Second,
		RetryDelay: func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond }})
	srv.Handle("test:keyed", asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		mu.Lock()
		defer mu.Unlock()
		attempts[id]++
		if attempts[id] == 1 {
			return errors.New("the first attempt fails")
		}
		seen = append(seen, id+" "+task.Headers()[keyedHeader]+" "+string(task.Payload()))
		return nil
	}))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	testutil.Eventually(t, 20*time.Second, "both tasks run", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 2 })
	mu.Lock()
	slices.Sort(seen)
	for i, id := range []string{"msg:pppp", "msg:ssss"} {
		if want := id + " " + key + " " + string(payload(key)); seen[i] != want || attempts[id] != 2 {
			t.Errorf("ran %q after %d attempts, want %q after 2", seen[i], attempts[id], want)
		}
	}
	mu.Unlock()
	testutil.Eventually(t, 10*time.Second, "both completed", func() bool {
		info, err := ins.GetTaskInfo(QueueTemplates, "msg:pppp")
		return err == nil && info.State == asynq.TaskStateCompleted && info.Retried == 1
	})
}

// A taken id is left alone (asynq's ErrTaskIDConflict); a key the payload's JSON could not hold as
// it is is refused (-1) with nothing written; options a script cannot express are refused up front.
func TestKeyedRefusals(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	k, err := NewKeyed("test:keyed", []byte(`{"k":"(key)"}`), "(key)", keyedHeader, asynq.Queue(QueueTemplates), asynq.TaskID("x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`a"b`, `a\b`, "é", "a b", ""} {
		if n := enqueueKeyed(t, c, k, bad, true, 0); n != -1 {
			t.Errorf("key %q: %d, want -1", bad, n)
		}
	}
	if n := c.Exists(ctx, asynqTaskPrefix(QueueTemplates)+"x", asynqPendingKey(QueueTemplates)).Val(); n != 0 {
		t.Fatalf("a refused key wrote %d keys", n)
	}
	if n := enqueueKeyed(t, c, k, "k1", true, 0); n != 1 {
		t.Fatalf("first: %d", n)
	}
	before := c.HGet(ctx, asynqTaskPrefix(QueueTemplates)+"x", "msg").Val()
	if n := enqueueKeyed(t, c, k, "k2", true, 0); n != 0 {
		t.Fatalf("the same id again: %d, want 0", n)
	}
	if after := c.HGet(ctx, asynqTaskPrefix(QueueTemplates)+"x", "msg").Val(); after != before || c.LLen(ctx, asynqPendingKey(QueueTemplates)).Val() != 1 {
		t.Fatal("the same id again changed the task")
	}
	for name, o := range map[string]asynq.Option{"process in": asynq.ProcessIn(time.Second), "unique": asynq.Unique(time.Minute),
		"group": asynq.Group("g"), "process at": asynq.ProcessAt(time.Now())} {
		if _, err := NewKeyed("t", []byte("(key)"), "(key)", "h", asynq.Queue("q"), asynq.TaskID("i"), o); !errors.Is(err, ErrNotKeyable) {
			t.Errorf("%s: %v, want ErrNotKeyable", name, err)
		}
	}
	if _, err := NewKeyed("t", []byte("no placeholder"), "(key)", "h", asynq.Queue("q"), asynq.TaskID("i")); !errors.Is(err, ErrNotKeyable) {
		t.Errorf("no placeholder: %v", err)
	}
	if _, err := NewKeyed("t", []byte("(key)"), "(key)", "h", asynq.Queue("q")); !errors.Is(err, ErrNotKeyable) {
		t.Errorf("no task id: %v", err)
	}
}
