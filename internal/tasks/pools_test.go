package tasks

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestEveryQueueHasOnePool: each queue the gateway names is polled by exactly one pool.
func TestEveryQueueHasOnePool(t *testing.T) {
	seen := map[string]int{}
	for _, p := range pools {
		for _, q := range p.queues {
			seen[q]++
		}
	}
	for q := range Weights {
		if seen[q] != 1 {
			t.Errorf("queue %s is in %d pools, want 1", q, seen[q])
		}
	}
	if len(seen) != len(Weights) {
		t.Errorf("pools poll %v; the gateway's queues are %v", seen, Weights)
	}
}

// TestRepliesRunWhileTemplatesHoldEveryWorker: a campaign that keeps every template worker busy does
// not hold up a reply: replies have workers of their own.
func TestRepliesRunWhileTemplatesHoldEveryWorker(t *testing.T) {
	c := redistest.Client(t)
	const workers = 2
	srv := NewServer(c, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Concurrency: workers, ShutdownTimeout: time.Second})
	release := make(chan struct{})
	busy := make(chan struct{}, 16)
	replied := make(chan struct{}, 1)
	srv.Handle("template", asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		busy <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}))
	srv.Handle("reply", asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		replied <- struct{}{}
		return nil
	}))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	enq := asynq.NewClientFromRedisClient(c)
	for range 2 * workers {
		if _, err := enq.Enqueue(asynq.NewTask("template", nil), asynq.Queue(QueueTemplates)); err != nil {
			t.Fatal(err)
		}
	}
	for range workers {
		select {
		case <-busy:
		case <-time.After(10 * time.Second):
			t.Fatal("the template workers never started")
		}
	}
	if _, err := enq.Enqueue(asynq.NewTask("reply", nil), asynq.Queue(QueueReplies)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-replied:
	case <-time.After(10 * time.Second):
		t.Fatal("the reply waited behind the templates holding every worker")
	}
	if n := len(busy); n != 0 {
		t.Errorf("%d templates started beyond the pool's %d workers", n, workers)
	}
}

// TestPoolsRunTheirLoopsSharingTheirWorkers: each pool dequeues with its loops (asynq servers),
// whose workers add up to the configured concurrency, as asynq's own registry of servers shows.
func TestPoolsRunTheirLoopsSharingTheirWorkers(t *testing.T) {
	rs := redistest.StartServer(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer c.Close()
	const workers = 9
	loopsIn := map[string]int{}
	all := 0
	for _, p := range pools {
		loopsIn[p.queues[0]] = p.loops
		all += p.loops
	}
	srv := NewServer(c, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Concurrency: workers, ShutdownTimeout: time.Second})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ins := asynq.NewInspectorFromRedisClient(c)
	var infos []*asynq.ServerInfo
	testutil.Eventually(t, 10*time.Second, "asynq to list the servers", func() bool {
		infos, _ = ins.Servers()
		return len(infos) == all
	})
	loops, total := map[string]int{}, map[string]int{}
	for _, info := range infos {
		first := ""
		for q, w := range info.Queues {
			if w == len(info.Queues) {
				first = q
			}
		}
		loops[first]++
		total[first] += info.Concurrency
	}
	for _, q := range []string{QueueReplies, QueueTemplates} {
		if loops[q] != loopsIn[q] || loops[q] < 2 || total[q] != workers {
			t.Errorf("pool of %s: %d loops with %d workers in all, want %d with %d", q, loops[q], total[q], loopsIn[q], workers)
		}
	}
	if got := loopWorkers(1, 2); len(got) != 1 || got[0] != 1 {
		t.Errorf("one worker: loops %v, want one loop of 1", got)
	}
}
