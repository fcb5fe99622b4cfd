package tasks

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
)

// TestRunNowMovesAWaitingTaskToPending: a scheduled task and a deferred one (retry) become pending
// as asynq's inspector would make them, in asynq's own view; a pending one, a missing one and an
// active one are reported as such and left alone.
func TestRunNowMovesAWaitingTaskToPending(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	enq := asynq.NewClientFromRedisClient(c)
	ins := asynq.NewInspectorFromRedisClient(c)
	state := func(id string) asynq.TaskState {
		t.Helper()
		info, err := ins.GetTaskInfo(QueueReplies, id)
		if err != nil {
			t.Fatal(err)
		}
		return info.State
	}
	for _, id := range []string{"later", "deferred", "now", "busy"} {
		opts := []asynq.Option{asynq.Queue(QueueReplies), asynq.TaskID(id)}
		if id != "now" {
			opts = append(opts, asynq.ProcessIn(time.Hour))
		}
		if _, err := enq.Enqueue(asynq.NewTask("probe", nil), opts...); err != nil {
			t.Fatal(err)
		}
	}
	// What a deferral leaves: the task in the retry set.
	c.ZRem(ctx, asynqQueuePrefix(QueueReplies)+"scheduled", "deferred")
	c.ZAdd(ctx, asynqQueuePrefix(QueueReplies)+"retry", redis.Z{Score: float64(time.Now().Add(time.Hour).Unix()), Member: "deferred"})
	c.HSet(ctx, asynqTaskPrefix(QueueReplies)+"deferred", "state", "retry")
	if state("deferred") != asynq.TaskStateRetry {
		t.Fatal("the deferred task is not in retry")
	}
	c.HSet(ctx, asynqTaskPrefix(QueueReplies)+"busy", "state", "active")

	for _, id := range []string{"later", "deferred"} {
		if moved, err := RunNow(ctx, c, QueueReplies, id); err != nil || !moved {
			t.Fatalf("%s: moved %v, %v", id, moved, err)
		}
		if s := state(id); s != asynq.TaskStatePending {
			t.Errorf("%s is %v, want pending", id, s)
		}
	}
	if n := c.ZCard(ctx, asynqQueuePrefix(QueueReplies)+"scheduled").Val() + c.ZCard(ctx, asynqQueuePrefix(QueueReplies)+"retry").Val(); n != 1 {
		t.Errorf("%d tasks left waiting, want only the active one's entry", n)
	}
	for _, id := range []string{"now", "missing"} {
		if moved, err := RunNow(ctx, c, QueueReplies, id); err != nil || moved {
			t.Errorf("%s: moved %v, %v; want nothing to do", id, moved, err)
		}
	}
	if _, err := RunNow(ctx, c, QueueReplies, "busy"); !errors.Is(err, ErrTaskActive) {
		t.Errorf("active task: %v, want ErrTaskActive", err)
	}
	if n := c.LLen(ctx, asynqPendingKey(QueueReplies)).Val(); n != 3 {
		t.Errorf("%d pending, want 3", n)
	}
}
