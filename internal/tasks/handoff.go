package tasks

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// handOffs are the tasks handlers' scripts took for their Server (CompleteLua's hand-out), by
// queue, until one of the server's dequeue loops asks that queue: asynq's dequeue of it is then
// answered here (waitClient), without Redis. Such a task is already active in Redis with a lease,
// as if a loop had dequeued it; one no loop takes (the server stopping, or one left longer than
// handOffFresh) is handed back as asynq hands back an active task at shutdown (requeueCmd: to the
// front of pending). A process that dies holding some leaves them to asynq's recovery of expired
// leases, as it does the tasks its workers were running.
type handOffs struct {
	client redis.UniversalClient // asynq's, to hand tasks back
	logger *slog.Logger
	max    int // held at once per queue

	mu     sync.Mutex
	closed bool
	held   map[string][]handOff
}

type handOff struct {
	id, msg string
	at      time.Time
}

// handOffFresh bounds how long a handed-out task waits for a loop. Its lease in Redis runs from
// the hand-out while asynq counts its own from the dequeue it answers; asynq's heartbeat extends
// it every few seconds, far within the 30 s.
const handOffFresh = 5 * time.Second

// handBackTimeout bounds one hand-back (of a stale task, or all of them at close); a task not
// handed back in time stays active with its lease, for asynq's recovery.
const handBackTimeout = 5 * time.Second

func newHandOffs(client redis.UniversalClient, logger *slog.Logger, max int) *handOffs {
	return &handOffs{client: client, logger: logger, max: max, held: map[string][]handOff{}}
}

// room is whether a script may take one more task of queue for the server.
func (h *handOffs) room(queue string) bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.closed && len(h.held[queue]) < h.max
}

// add holds a task a script took; after close, it is handed back at once.
func (h *handOffs) add(queue, id, msg string) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), handBackTimeout)
		defer cancel()
		h.handBack(ctx, queue, []handOff{{id: id}})
		return
	}
	h.held[queue] = append(h.held[queue], handOff{id: id, msg: msg, at: time.Now()})
	h.mu.Unlock()
}

// take is the oldest fresh task held for queue (its encoded message); stale ones are handed back.
func (h *handOffs) take(queue string) (string, bool) {
	now := time.Now()
	h.mu.Lock()
	q := h.held[queue]
	var stale []handOff
	for len(q) > 0 && now.Sub(q[0].at) > handOffFresh {
		stale = append(stale, q[0])
		q = q[1:]
	}
	var got handOff
	ok := len(q) > 0
	if ok {
		got, q = q[0], q[1:]
	}
	if len(q) == 0 {
		delete(h.held, queue)
	} else {
		h.held[queue] = q
	}
	h.mu.Unlock()
	if len(stale) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), handBackTimeout)
		defer cancel()
		h.handBack(ctx, queue, stale)
	}
	return got.msg, ok
}

// close hands back every task held and lets no script take another: call it once the server's
// loops dequeue no more.
func (h *handOffs) close() {
	h.mu.Lock()
	h.closed = true
	held := h.held
	h.held = map[string][]handOff{}
	h.mu.Unlock()
	// One deadline for all: a Redis that does not answer must not stretch the shutdown per queue.
	ctx, cancel := context.WithTimeout(context.Background(), handBackTimeout)
	defer cancel()
	for queue, q := range held {
		h.handBack(ctx, queue, q)
	}
}

// requeueLua is asynq's requeueCmd (v0.26), by which its server hands an active task back.
var requeueLua = redis.NewScript(`
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  return redis.error_reply("NOT FOUND")
end
if redis.call("ZREM", KEYS[2], ARGV[1]) == 0 then
  return redis.error_reply("NOT FOUND")
end
redis.call("RPUSH", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], "state", "pending")
return redis.status_reply("OK")`)

// handBack returns tasks to the front of the queue's pending list, the newest first so that the
// oldest is taken first again.
func (h *handOffs) handBack(ctx context.Context, queue string, q []handOff) {
	for i := len(q) - 1; i >= 0; i-- {
		keys := []string{asynqActiveKey(queue), asynqLeaseKey(queue), asynqPendingKey(queue), asynqTaskPrefix(queue) + q[i].id}
		if err := requeueLua.Run(ctx, h.client, keys, q[i].id).Err(); err != nil && !strings.Contains(err.Error(), "NOT FOUND") {
			// Still active with its lease: asynq's recovery takes it back once the lease expires.
			h.logger.Warn("could not hand a task back to its queue", "queue", queue, "task_id", q[i].id, "err", err)
		}
	}
}

// answerDequeue answers asynq's dequeue of a queue (dequeueCmd: KEYS pending, paused, active, lease;
// ARGV the lease expiry and task key prefix) with a task held for it; nil when none is held.
func (h *handOffs) answerDequeue(ctx context.Context, keys []string, args []any) *redis.Cmd {
	if h == nil || len(keys) != 4 || len(args) != 2 || !strings.HasSuffix(keys[1], "}:paused") {
		return nil
	}
	rest, ok := strings.CutPrefix(keys[0], "asynq:{")
	queue, isPending := strings.CutSuffix(rest, "}:pending")
	if !ok || !isPending {
		return nil
	}
	msg, ok := h.take(queue)
	if !ok {
		return nil
	}
	cmd := redis.NewCmd(ctx)
	cmd.SetVal(msg)
	return cmd
}
