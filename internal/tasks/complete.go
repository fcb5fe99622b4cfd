package tasks

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/luascript"
)

// Completion is asynq's completion of the task a handler runs (its Done, v0.26: the task leaves
// active and the lease and is deleted, and the queue's processed counters count it), which a
// handler's own last script may write itself, one round trip fewer per task: the script includes
// CompleteLua and calls asynqCompleteAt(ARGV, i) with Args at ARGV[i…], and the handler, which must
// then return nil, gives Completed the answer. asynq's own Done for that task is then answered by
// the server's client (IdleWait's) without reaching Redis.
//
// The same script may also take the queue's next pending task for the server (asynq's dequeue of
// it, as BullMQ hands out the next job with the finished one's completion): the server's next
// dequeue of that queue is then answered in the process (handOffs), a second round trip saved.
//
// Only tasks of a Server on a standalone Redis get one (the script touches the queue's keys beside
// its own, and the server's client must be the one that answers Done); elsewhere it is zero and
// its Args ask for nothing.
type Completion struct {
	queue, id string
	hand      *handOffs
}

type completionKey struct{}

// CompletionOf is the completion of the task ctx runs (zero: asynq completes it, as ever).
func CompletionOf(ctx context.Context) Completion {
	hand, _ := ctx.Value(completionKey{}).(*handOffs)
	if hand == nil {
		return Completion{}
	}
	q, _ := asynq.GetQueueName(ctx)
	id, _ := asynq.GetTaskID(ctx)
	if q == "" || id == "" {
		return Completion{}
	}
	return Completion{queue: q, id: id, hand: hand}
}

// CompletionArgs is how many ARGV Args takes.
const CompletionArgs = 6

// statsTTL is how long asynq keeps a day's processed counter (its rdb.statsTTL).
const statsTTL = 90 * 24 * time.Hour

// leaseDuration is the lease asynq's dequeue gives a task (its rdb.LeaseDuration).
const leaseDuration = 30 * time.Second

// Args are asynqCompleteAt's ARGV: the queue, the id, the day's processed counter as asynq names it
// now, its expiry, the total's wrap (as asynq's Done takes them), and the lease expiry of the next
// task to hand out ("" for none: the server holds as many as it may). A zero Completion's ask for
// nothing.
func (c Completion) Args() []any {
	if c.queue == "" {
		return []any{"", "", "", "", "", ""}
	}
	now := time.Now()
	lease := ""
	if c.hand.room(c.queue) {
		lease = strconv.FormatInt(now.Add(leaseDuration).Unix(), 10)
	}
	return []any{c.queue, c.id, now.UTC().Format("2006-01-02"), now.Add(statsTTL).Unix(), "9223372036854775807", lease}
}

// Completed records asynqCompleteAt's answer; true when the script completed the task (asynq's Done
// of it is then answered here, once, and a task it took for the server is handed out).
func (c Completion) Completed(reply any) (bool, error) {
	n, next, msg, err := completeReply(reply)
	if err != nil || n != 1 || c.queue == "" {
		return false, err
	}
	completedHere.add(asynqTaskPrefix(c.queue) + c.id)
	if next != "" {
		c.hand.add(c.queue, next, msg)
	}
	return true, nil
}

// completeReply reads asynqCompleteAt's answer: 0, 1, or {1, id, msg} with the task it took.
func completeReply(v any) (n int64, id, msg string, err error) {
	switch r := v.(type) {
	case int64:
		return r, "", "", nil
	case []any:
		if len(r) == 3 {
			n, _ = r[0].(int64)
			id, _ = r[1].(string)
			msg, _ = r[2].(string)
			if n == 1 && id != "" {
				return n, id, msg, nil
			}
		}
	}
	return 0, "", "", fmt.Errorf("%w: %v, want a completion", luascript.ErrReply, v)
}

// CompleteLua defines asynqCompleteAt(a, i): asynq's Done (doneCmd) of the task of Args at a[i…],
// with its effects exactly. Returns 1 completed; 0 when asked for nothing, or when it leaves the
// task to asynq's own Done: a task asynq would complete otherwise (a uniqueness lock, a retention:
// doneUniqueCmd, markAsCompleteCmd), or one not active and leased (recovered meanwhile: asynq's
// script decides then, and nothing is half done here). Once completed, with a lease expiry asked,
// it takes the queue's next pending task exactly as asynq's dequeue (dequeueCmd) would, unless the
// queue is paused, and answers {1, id, msg}.
const CompleteLua = `
local function asynqVarintAt(s, p)
  local n, m = 0, 1
  while true do
    local b = string.byte(s, p)
    if not b then return nil, p end
    n, p = n + (b % 128) * m, p + 1
    if b < 128 then return n, p end
    m = m * 128
  end
end
-- the TaskMessage has neither a unique key (10) nor a retention (12)
local function asynqPlainDone(msg)
  local p = 1
  while p <= #msg do
    local tag, v
    tag, p = asynqVarintAt(msg, p)
    if not tag then return false end
    local f, wt = math.floor(tag / 8), tag % 8
    v, p = asynqVarintAt(msg, p)
    if not v then return false end
    if wt == 2 then
      if f == 10 and v > 0 then return false end
      p = p + v
    elseif wt ~= 0 or (f == 12 and v ~= 0) then
      return false
    end
  end
  return true
end
local function asynqCompleteAt(a, i)
  if a[i] == '' then return 0 end
  local qp, id = 'asynq:{' .. a[i] .. '}:', a[i + 1]
  local tk = qp .. 't:' .. id
  if not redis.call('ZSCORE', qp .. 'lease', id) then return 0 end
  local msg = redis.call('HGET', tk, 'msg')
  if not msg or not asynqPlainDone(msg) then return 0 end
  if redis.call('LREM', qp .. 'active', 0, id) == 0 then return 0 end
  redis.call('ZREM', qp .. 'lease', id)
  redis.call('DEL', tk)
  local day = qp .. 'processed:' .. a[i + 2]
  if tonumber(redis.call('INCR', day)) == 1 then redis.call('EXPIREAT', day, a[i + 3]) end
  local total = redis.call('GET', qp .. 'processed')
  if tonumber(total) == tonumber(a[i + 4]) then
    redis.call('SET', qp .. 'processed', 1)
  else
    redis.call('INCR', qp .. 'processed')
  end
  if a[i + 5] ~= '' and redis.call('EXISTS', qp .. 'paused') == 0 then
    local next = redis.call('RPOPLPUSH', qp .. 'pending', qp .. 'active')
    if next then
      local nk = qp .. 't:' .. next
      redis.call('HSET', nk, 'state', 'active')
      redis.call('HDEL', nk, 'pending_since')
      redis.call('ZADD', qp .. 'lease', a[i + 5], next)
      local nmsg = redis.call('HGET', nk, 'msg')
      if nmsg then return {1, next, nmsg} end
    end
  end
  return 1
end
`

// completedHere are the tasks a script of this process completed (task keys), whose Done asynq is
// about to ask for. An entry asynq never asks for (its lease lapsed meanwhile) is dropped after a
// while.
var completedHere = completedTasks{at: map[string]time.Time{}}

type completedTasks struct {
	mu sync.Mutex
	at map[string]time.Time
}

const completedKeep = time.Minute

func (r *completedTasks) add(key string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.at) >= 1024 {
		for k, t := range r.at {
			if now.Sub(t) > completedKeep {
				delete(r.at, k)
			}
		}
	}
	r.at[key] = now
}

func (r *completedTasks) take(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.at[key]; !ok {
		return false
	}
	delete(r.at, key)
	return true
}

// answerDone answers asynq's Done script (doneCmd: KEYS active, lease, t:<id>, processed:<day>,
// processed, all of one queue) for a task a script of this process completed already; nil
// otherwise. The unique-key variant (six keys) is never answered: CompleteLua leaves those tasks.
func answerDone(ctx context.Context, keys []string) *redis.Cmd {
	if len(keys) != 5 {
		return nil
	}
	qp, ok := strings.CutSuffix(keys[0], "active")
	if !ok || !strings.HasSuffix(qp, "}:") || keys[1] != qp+"lease" || keys[4] != qp+"processed" ||
		!strings.HasPrefix(keys[2], qp+"t:") || !strings.HasPrefix(keys[3], qp+"processed:") || !completedHere.take(keys[2]) {
		return nil
	}
	cmd := redis.NewCmd(ctx)
	cmd.SetVal("OK")
	return cmd
}
