package tasks

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestOrphanedActiveTaskIsRequeuedAndRuns: after a restore that kept a task in the active list but
// lost its lease, the task goes back to pending once it has stayed an orphan for the grace, and a
// worker runs it; a task with a lease (a worker has it) and a pending one are left alone.
func TestOrphanedActiveTaskIsRequeuedAndRuns(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	enq := asynq.NewClientFromRedisClient(c)
	ids := map[string]string{}
	for _, name := range []string{"orphan", "leased", "pending"} {
		info, err := enq.Enqueue(asynq.NewTask("probe", []byte(name)), asynq.Queue(QueueReplies), asynq.TaskID(name))
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = info.ID
	}
	// What a restore leaves: two tasks taken by a worker (active), only one of them still leased.
	for _, name := range []string{"orphan", "leased"} {
		if err := c.LRem(ctx, asynqPendingKey(QueueReplies), 1, name).Err(); err != nil {
			t.Fatal(err)
		}
		c.LPush(ctx, asynqActiveKey(QueueReplies), name)
		c.HSet(ctx, asynqTaskPrefix(QueueReplies)+name, "state", "active")
	}
	c.ZAdd(ctx, asynqLeaseKey(QueueReplies), redis.Z{Score: float64(time.Now().Add(time.Hour).Unix()), Member: "leased"})

	o := NewOrphans(c, slog.New(slog.NewTextHandler(io.Discard, nil)), 300*time.Millisecond, time.Minute)
	if n, err := o.Pass(ctx); err != nil || n != 0 {
		t.Fatalf("first pass: %d %v; want 0 (an orphan waits for the grace)", n, err)
	}
	time.Sleep(350 * time.Millisecond) // the grace under test passes (on the real clock: asynq's leases are)
	if n, err := o.Pass(ctx); err != nil || n != 1 {
		t.Fatalf("second pass: %d %v; want 1", n, err)
	}
	insp := asynq.NewInspectorFromRedisClient(c)
	for name, want := range map[string]asynq.TaskState{"orphan": asynq.TaskStatePending, "leased": asynq.TaskStateActive, "pending": asynq.TaskStatePending} {
		info, err := insp.GetTaskInfo(QueueReplies, ids[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if info.State != want {
			t.Errorf("%s: state %v, want %v", name, info.State, want)
		}
	}
	if n, err := o.Pass(ctx); err != nil || n != 0 {
		t.Errorf("pass after the re-queue: %d %v; want 0 (nothing orphaned is left)", n, err)
	}

	// A worker now runs the re-queued task (and the pending one), not the leased one.
	var mu sync.Mutex
	ran := map[string]int{}
	srv := asynq.NewServerFromRedisClient(c, asynq.Config{Concurrency: 2, Queues: map[string]int{QueueReplies: 1},
		TaskCheckInterval: 50 * time.Millisecond, Logger: newSlogAdapter(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	mux := asynq.NewServeMux()
	mux.HandleFunc("probe", func(_ context.Context, task *asynq.Task) error {
		mu.Lock()
		ran[string(task.Payload())]++
		mu.Unlock()
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	testutil.Within(5*time.Second, func() bool { // the assertion below says what was missing
		mu.Lock()
		defer mu.Unlock()
		return ran["orphan"] == 1 && ran["pending"] == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if ran["orphan"] != 1 || ran["pending"] != 1 || ran["leased"] != 0 {
		t.Errorf("tasks run: %v; want the orphan and the pending one once, the leased one not", ran)
	}
}
