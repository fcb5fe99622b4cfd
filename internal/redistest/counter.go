package redistest

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// CommandCounter is a client hook counting the commands, piped or not, that Match accepts: how a
// test sees that a path made (or no longer makes) a given call.
type CommandCounter struct {
	Match func(redis.Cmder) bool
	// AfterReply asks Match once the command has its reply (to count, say, the calls that found
	// something), instead of before it is sent.
	AfterReply bool
	n          atomic.Int32
}

// N is the number of matching commands so far.
func (h *CommandCounter) N() int32 { return h.n.Load() }

func (h *CommandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *CommandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.AfterReply {
			h.count(cmd)
			return next(ctx, cmd)
		}
		err := next(ctx, cmd)
		h.count(cmd)
		return err
	}
}

func (h *CommandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !h.AfterReply {
			for _, c := range cmds {
				h.count(c)
			}
			return next(ctx, cmds)
		}
		err := next(ctx, cmds)
		for _, c := range cmds {
			h.count(c)
		}
		return err
	}
}

func (h *CommandCounter) count(cmd redis.Cmder) {
	if h.Match(cmd) {
		h.n.Add(1)
	}
}
