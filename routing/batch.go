package routing

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher runs one Lua script for many concurrent callers: calls queued while a pipeline is in flight
// go out together in the next one (one write and one read for all of them), so under load the
// gateway pays a fraction of a network round trip per message; an idle gateway sends each call at
// once, alone. Every caller still gets its own script result: atomicity is per call, as before.
type batcher struct {
	client  redis.UniversalClient
	script  *redis.Script
	calls   chan *scriptCall
	stop    chan struct{}
	wg      sync.WaitGroup
	maxSize int
}

type scriptCall struct {
	keys []string
	args []any
	done chan scriptResult
}

type scriptResult struct {
	val any
	err error
}

const (
	// Two pipelines in flight: at 32 concurrent webhooks a batch averages 8 calls (4 with four
	// workers, measured), so Redis and the gateway make half the read and write syscalls.
	batchWorkers = 2
	batchMax     = 128
	batchTimeout = 5 * time.Second
)

func newBatcher(client redis.UniversalClient, script *redis.Script) *batcher {
	b := &batcher{client: client, script: script, calls: make(chan *scriptCall, batchMax*batchWorkers),
		stop: make(chan struct{}), maxSize: batchMax}
	for i := 0; i < batchWorkers; i++ {
		b.wg.Add(1)
		go b.loop()
	}
	return b
}

// run queues one script call and waits for its result (or ctx).
func (b *batcher) run(ctx context.Context, keys []string, args ...any) (any, error) {
	call := &scriptCall{keys: keys, args: args, done: make(chan scriptResult, 1)}
	select {
	case b.calls <- call:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop:
		return nil, redis.ErrClosed
	}
	select {
	case r := <-call.done:
		return r.val, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop:
		return nil, redis.ErrClosed
	}
}

func (b *batcher) loop() {
	defer b.wg.Done()
	batch := make([]*scriptCall, 0, b.maxSize)
	for {
		select {
		case <-b.stop:
			return
		case first := <-b.calls:
			batch = append(batch[:0], first)
		drain:
			for len(batch) < b.maxSize {
				select {
				case c := <-b.calls:
					batch = append(batch, c)
				default:
					break drain
				}
			}
			b.exec(batch)
		}
	}
}

func (b *batcher) exec(batch []*scriptCall) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	pipe := b.client.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = b.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	for i, c := range batch {
		val, err := cmds[i].Result()
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			// Redis restarted and forgot the script: load it by running it whole.
			val, err = b.script.Run(ctx, b.client, c.keys, c.args...).Result()
		}
		c.done <- scriptResult{val: val, err: err}
	}
}

// close stops the workers; calls still queued get redis.ErrClosed from run's select on stop.
func (b *batcher) close() {
	close(b.stop)
	b.wg.Wait()
}
