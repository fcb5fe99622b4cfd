package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/luascript"
)

// Orphans finds tasks left active without a lease and puts them back to pending.
//
// A worker takes a task by moving it to the active list and giving it a lease in one step, and a
// live worker only extends a lease that exists. When Redis comes back from a restore or a failover
// that lost the lease but kept the active entry, the task is active with no lease: asynq's own
// recoverer (v0.26) looks only at expired leases, so such a task would stay active for ever
// (asynq issue #1144). An id seen without a lease on passes at least Grace apart is re-queued, so a
// worker still running it from before the loss has finished or given up by then (Grace is longer
// than a send's timeout). The re-queue is one script per queue that re-checks both conditions.
type Orphans struct {
	client redis.UniversalClient
	logger *slog.Logger
	grace  time.Duration
	every  time.Duration
	queues []string
	stop   chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	seen map[string]time.Time // queue + "\x00" + id → first pass that saw it without a lease
}

// NewOrphans watches the gateway's queues every interval (Start); grace is how long an orphan must
// stay one before it is re-queued.
func NewOrphans(client redis.UniversalClient, logger *slog.Logger, grace, every time.Duration) *Orphans {
	queues := make([]string, 0, len(Weights))
	for q := range Weights {
		queues = append(queues, q)
	}
	sort.Strings(queues)
	return &Orphans{client: client, logger: logger.With("component", "asynq"), grace: grace, every: every, queues: queues,
		seen: map[string]time.Time{}, stop: make(chan struct{})}
}

// Start runs a pass every interval until Shutdown.
func (o *Orphans) Start() error {
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		t := time.NewTicker(o.every)
		defer t.Stop()
		for {
			select {
			case <-o.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), o.every)
				if _, err := o.Pass(ctx); err != nil {
					o.logger.Debug("orphaned task check failed", "err", err)
				}
				cancel()
			}
		}
	}()
	return nil
}

// Shutdown stops the passes.
func (o *Orphans) Shutdown() {
	close(o.stop)
	o.wg.Wait()
}

// listOrphansScript returns the ids in the active list that have no lease.
// KEYS[1] active LIST, KEYS[2] lease ZSET.
var listOrphansScript = luascript.New[listOrphansArgs, []string]("list orphans", `
local out = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if not redis.call('ZSCORE', KEYS[2], id) then table.insert(out, id) end
end
return out
`, func(v any) ([]string, error) {
	a, err := luascript.AsArray(v)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(a))
	for i := range a {
		ids[i] = a.Str(i)
	}
	return ids, nil
})

// listOrphansArgs names the asynq queue to look at.
type listOrphansArgs struct{ queue string }

func (a listOrphansArgs) KeysAndArgv() ([]string, []any) {
	return []string{asynqActiveKey(a.queue), asynqLeaseKey(a.queue)}, nil
}

// requeueOrphansScript moves each given id that is still active without a lease back to pending,
// at the end workers pop first; an id whose task hash is gone is only dropped from the active list.
// KEYS[1] active LIST, KEYS[2] lease ZSET, KEYS[3] pending LIST. ARGV: 1 task key prefix, 2 now ns,
// 3… ids. Returns the number re-queued.
var requeueOrphansScript = luascript.New[requeueOrphansArgs, int]("requeue orphans", `
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if not redis.call('ZSCORE', KEYS[2], id) and redis.call('LREM', KEYS[1], 1, id) == 1 then
    local key = ARGV[1] .. id
    if redis.call('EXISTS', key) == 1 then
      redis.call('HSET', key, 'state', 'pending', 'pending_since', ARGV[2])
      redis.call('RPUSH', KEYS[3], id)
      n = n + 1
    end
  end
end
return n
`, func(v any) (int, error) {
	n, err := luascript.Integer(v)
	return int(n), err
})

// requeueOrphansArgs names the tasks of queue to re-queue, at now.
type requeueOrphansArgs struct {
	queue string
	now   time.Time
	ids   []string
}

func (a requeueOrphansArgs) KeysAndArgv() ([]string, []any) {
	argv := make([]any, 0, 2+len(a.ids))
	argv = append(argv, asynqTaskPrefix(a.queue), a.now.UnixNano())
	for _, id := range a.ids {
		argv = append(argv, id)
	}
	return []string{asynqActiveKey(a.queue), asynqLeaseKey(a.queue), asynqPendingKey(a.queue)}, argv
}

// Pass looks at every queue once and re-queues the orphans seen for at least the grace. It returns
// how many tasks went back to pending.
func (o *Orphans) Pass(ctx context.Context) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	still := map[string]time.Time{}
	total := 0
	for _, q := range o.queues {
		ids, err := listOrphansScript.Run(ctx, o.client, listOrphansArgs{queue: q})
		if err != nil {
			return total, fmt.Errorf("orphans of %s: %w", q, err)
		}
		var due []string
		for _, id := range ids {
			k := q + "\x00" + id
			first, ok := o.seen[k]
			if !ok {
				first = now
			}
			if now.Sub(first) >= o.grace {
				due = append(due, id)
				continue
			}
			still[k] = first
		}
		if len(due) == 0 {
			continue
		}
		n, err := requeueOrphansScript.Run(ctx, o.client, requeueOrphansArgs{queue: q, now: now, ids: due})
		if err != nil {
			return total, fmt.Errorf("re-queue orphans of %s: %w", q, err)
		}
		if n > 0 {
			o.logger.Warn("re-queued tasks left active without a lease (Redis restored or failed over)", "queue", q, "tasks", n)
		}
		total += n
	}
	o.seen = still
	return total, nil
}
