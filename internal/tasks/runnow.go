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
	switch {
	case err != nil:
		return false, err
	case n == -1:
		return false, ErrTaskActive
	case n == -3:
		return false, ErrTaskGrouped
	}
	return n == 1, nil
}

// runNowScript is asynq's runTaskCmd (v0.26) but for grouped tasks. KEYS[1] the task HASH, KEYS[2]
// pending LIST. ARGV: 1 id, 2 the queue's key prefix (asynq:{<queue>}:). Returns 1 moved, 0 no such
// task, -1 active, -2 pending already, -3 aggregating in a group.
var runNowScript = luascript.New[runNowArgs, int64]("run task now", `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'active' then return -1 end
if state == 'pending' then return -2 end
if state == 'aggregating' then return -3 end
if redis.call('ZREM', ARGV[2] .. state, ARGV[1]) == 0 then
  return redis.error_reply('task ' .. ARGV[1] .. ' not found in ' .. ARGV[2] .. tostring(state))
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'pending')
return 1
`, luascript.Integer)

type runNowArgs struct{ queue, id string }

func (a runNowArgs) KeysAndArgv() ([]string, []any) {
	return []string{asynqTaskPrefix(a.queue) + a.id, asynqPendingKey(a.queue)}, []any{a.id, asynqQueuePrefix(a.queue)}
}
