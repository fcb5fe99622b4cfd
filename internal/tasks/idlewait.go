package tasks

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// IdleWaitTimeout bounds one wait of an idle pool on Redis. The queues of a pool after its first
// are asked again at least this often, and a wait not cut short by Close ends within it.
const IdleWaitTimeout = time.Second

// IdleWait makes an idle asynq server wait on Redis rather than poll it. asynq (v0.26) asks each
// queue with its dequeue script and, when all are empty, sleeps TaskCheckInterval and asks again:
// every empty ask is a script run on Redis's single thread, taken from the intake. Handed the client
// of Client, asynq's empty ask of its last queue instead blocks, on a connection of its own, until
// a task is pending on the first queue (at most IdleWaitTimeout), and then asks that queue again.
//
// The wait is BLMOVE <pending> <pending> RIGHT RIGHT: it takes the tail and puts it back at the
// tail in one command, so the list, its order and asynq's view of it are unchanged; it only
// returns as soon as the list holds an element. The pending list is under the queue's hash tag, so
// this works on Cluster too. A client that is neither a *redis.Client nor a *redis.ClusterClient,
// or a Redis without BLMOVE (before 6.2), keeps asynq's polling.
type IdleWait struct {
	client   redis.UniversalClient // asynq's, whose dequeue script is run through waitClient
	blocking redis.UniversalClient // one connection, for the blocking command alone; nil: poll
	first    []string              // the dequeue keys of the pool's first queue (asynq's order)
	firstArg string                // the first queue's task key prefix (the script's ARGV[2])
	last     string                // the pending list of the pool's last queue: its empty ask ends asynq's round
	timeout  time.Duration
	hand     *handOffs // tasks handlers' scripts took for this wait's server (nil: none)

	mu     sync.Mutex
	closed bool
}

// NewIdleWait prepares the wait for an asynq server over queues, in the order asynq asks them
// (strict priority: highest first; one queue: that queue).
func NewIdleWait(client redis.UniversalClient, queues []string) *IdleWait {
	w := &IdleWait{client: client, timeout: IdleWaitTimeout}
	if len(queues) == 0 {
		return w
	}
	f := queues[0]
	w.first = []string{asynqPendingKey(f), asynqQueuePrefix(f) + "paused", asynqActiveKey(f), asynqLeaseKey(f)}
	w.firstArg = asynqTaskPrefix(f)
	w.last = asynqPendingKey(queues[len(queues)-1])
	// Its own client of one connection: a wait holds its connection for up to the timeout, which
	// must not come out of the pool the gateway's requests share.
	switch c := client.(type) {
	case *redis.Client:
		o := *c.Options()
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns = 1, 0, 1, 1
		o.PushNotificationProcessor = nil // the client's own, set in its options; a new client makes its own
		w.blocking = redis.NewClient(&o)
	case *redis.ClusterClient:
		o := *c.Options()
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns = 1, 0, 1, 1
		w.blocking = redis.NewClusterClient(&o)
	}
	return w
}

// Client is the client to hand to asynq.NewServerFromRedisClient.
func (w *IdleWait) Client() redis.UniversalClient {
	if w.blocking == nil {
		return w.client
	}
	return waitClient{UniversalClient: w.client, w: w}
}

// Close ends a wait under way at once (its connection is closed) and lets no other begin: call it
// before stopping the asynq server, whose Stop waits for the dequeue under way.
func (w *IdleWait) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	if w.blocking != nil {
		_ = w.blocking.Close()
	}
}

// waitClient is asynq's client with its dequeue script intercepted (asynq runs it with
// Script.Run: EVALSHA, and EVAL when Redis does not have it): answered with a task a handler's
// script took for the server (handOffs), or made to wait when all is empty; and its Done script of
// a task a handler's script completed already (Completion) answered without Redis.
type waitClient struct {
	redis.UniversalClient
	w *IdleWait
}

func (c waitClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if done := answerDone(ctx, keys); done != nil {
		return done
	}
	if next := c.w.hand.answerDequeue(ctx, keys, args); next != nil {
		return next
	}
	cmd := c.UniversalClient.EvalSha(ctx, sha, keys, args...)
	if c.w.idle(cmd, keys, args) && c.w.wait() {
		return c.UniversalClient.EvalSha(ctx, sha, c.w.first, args[0], c.w.firstArg)
	}
	return cmd
}

func (c waitClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	if done := answerDone(ctx, keys); done != nil {
		return done
	}
	if next := c.w.hand.answerDequeue(ctx, keys, args); next != nil {
		return next
	}
	cmd := c.UniversalClient.Eval(ctx, script, keys, args...)
	if c.w.idle(cmd, keys, args) && c.w.wait() {
		return c.UniversalClient.Eval(ctx, script, c.w.first, args[0], c.w.firstArg)
	}
	return cmd
}

// idle is whether cmd was asynq's dequeue of the last queue, finding nothing: its KEYS are the
// queue's pending, paused, active and lease keys, its ARGV the lease expiry and task key prefix.
// Asked again after the wait, the first queue's dequeue reuses that lease expiry, so the lease is
// at most the wait shorter than asynq's 30 s (consistent in Redis and in asynq; the heartbeat
// extends it).
func (w *IdleWait) idle(cmd *redis.Cmd, keys []string, args []any) bool {
	return len(keys) == 4 && keys[0] == w.last && len(args) == 2 &&
		strings.HasSuffix(keys[1], "}:paused") && errors.Is(cmd.Err(), redis.Nil)
}

// wait blocks until the first queue holds a pending task (true), or until the timeout, an error or
// Close (false: asynq sleeps its TaskCheckInterval and asks again). A paused queue with tasks
// pending returns at once and its ask finds nothing again: asynq then sleeps, as before.
func (w *IdleWait) wait() bool {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return false
	}
	err := w.blocking.BLMove(context.Background(), w.first[0], w.first[0], "RIGHT", "RIGHT", w.timeout).Err()
	if err != nil && !errors.Is(err, redis.Nil) && strings.Contains(strings.ToLower(err.Error()), "unknown command") {
		w.Close() // no BLMOVE (Redis before 6.2): poll as asynq does
	}
	return err == nil
}
