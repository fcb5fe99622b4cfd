package tasks

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/luascript"
)

// Answers of RunNow.
var (
	// ErrTaskActive: the task is running (it may be about to defer itself); ask again shortly.
	ErrTaskActive = errors.New("tasks: the task is active")
	// ErrTaskGrouped: the task waits in an asynq group, which RunNow leaves to asynq's inspector.
	ErrTaskGrouped = errors.New("tasks: the task is aggregating in a group")
)

// RunNow makes a task pending now, as asynq's Inspector.RunTask does (from scheduled, retry,
// archived or completed), in one round trip: the inspector first asks whether the queue exists,
// which the task's own hash answers. It reports whether the task was moved: false with no error
// when there is no such task or it is pending already.
func RunNow(ctx context.Context, client redis.UniversalClient, queue, id string) (bool, error) {
	n, err := runNowScript.Run(ctx, client, runNowArgs{queue: queue, id: id})
	if err != nil {
		return false, err
	}
	return RunNowAnswer(n)
}

// RunNowAnswer reads asynqRunNow's answer (RunNowLua) as RunNow reports it.
func RunNowAnswer(n int64) (bool, error) {
	switch n {
	case -1:
		return false, ErrTaskActive
	case -3:
		return false, ErrTaskGrouped
	}
	return n == 1, nil
}

// RunNowLua defines asynqRunNow(task key, pending key, id, queue prefix), asynq's runTaskCmd (v0.26)
// but for grouped tasks, and asynqRunNowIn(queue, id), the same with the keys named from the queue,
// for a script that wakes a task itself (its keys are of the queue's hash tag: not on Redis Cluster
// from a script of another tag, see SingleNode). Returns 1 moved, 0 no such task, -1 active, -2
// pending already, -3 aggregating in a group.
const RunNowLua = `
local function asynqRunNow(tk, pending, id, qp)
  if redis.call('EXISTS', tk) == 0 then return 0 end
  local state = redis.call('HGET', tk, 'state')
  if state == 'active' then return -1 end
  if state == 'pending' then return -2 end
  if state == 'aggregating' then return -3 end
  if redis.call('ZREM', qp .. state, id) == 0 then
    return redis.error_reply('task ' .. id .. ' not found in ' .. qp .. tostring(state))
  end
  redis.call('LPUSH', pending, id)
  redis.call('HSET', tk, 'state', 'pending')
  return 1
end
local function asynqRunNowIn(queue, id)
  local qp = 'asynq:{' .. queue .. '}:'
  return asynqRunNow(qp .. 't:' .. id, qp .. 'pending', id, qp)
end
`

// runNowScript runs asynqRunNow. KEYS[1] the task HASH, KEYS[2] pending LIST. ARGV: 1 id, 2 the
// queue's key prefix (asynq:{<queue>}:).
var runNowScript = luascript.New[runNowArgs, int64]("run task now", RunNowLua+`
return asynqRunNow(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
`, luascript.Integer)

type runNowArgs struct{ queue, id string }

func (a runNowArgs) KeysAndArgv() ([]string, []any) {
	return []string{asynqTaskPrefix(a.queue) + a.id, asynqPendingKey(a.queue)}, []any{a.id, asynqQueuePrefix(a.queue)}
}
