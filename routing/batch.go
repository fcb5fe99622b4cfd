package routing

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/luascript"
)

// batcher runs one Lua script for many concurrent callers: calls queued while a pipeline is in flight
// go out together in the next one (one write and one read for all of them), so under load the
// gateway pays a fraction of a network round trip per message; an idle gateway sends each call at
// once, alone. Every caller still gets its own script result: atomicity is per call, as before.
// With a multi script, the calls of one group go out as one script call (see multiScript).
type batcher[A luascript.Args, R any] struct {
	client  redis.UniversalClient
	script  *luascript.Script[A, R]
	multi   *multiScript[A]
	calls   chan *scriptCall[A, R]
	stop    chan struct{}
	wg      sync.WaitGroup
	maxSize int
}

type scriptCall[A luascript.Args, R any] struct {
	args A
	done chan scriptResult[R]
}

type scriptResult[R any] struct {
	reply R
	err   error
}

const (
	// Two pipelines in flight: at 32 concurrent webhooks a batch averages 8 calls (4 with four
	// workers, measured), so Redis and the gateway make half the read and write syscalls.
	batchWorkers = 2
	batchMax     = 128
	batchTimeout = 5 * time.Second
)

// multiScript runs several calls of a script in one: KEYS are the calls' KEYS one after the other,
// ARGV the number of calls then, for each, its number of KEYS, of ARGV and its ARGV; the reply is an
// array of the calls' replies, a failed call's an error reply. Calls share one only when group says
// they may (one tenant: one hash slot on Redis Cluster).
type multiScript[A luascript.Args] struct {
	lua   *redis.Script
	group func(A) string
}

// newBatcher batches the script's calls; with multi (nil: none), the calls of one group queued
// together go out as one call of the multi script.
func newBatcher[A luascript.Args, R any](client redis.UniversalClient, script *luascript.Script[A, R], multi *multiScript[A]) *batcher[A, R] {
	b := &batcher[A, R]{client: client, script: script, multi: multi, calls: make(chan *scriptCall[A, R], batchMax*batchWorkers),
		stop: make(chan struct{}), maxSize: batchMax}
	for i := 0; i < batchWorkers; i++ {
		b.wg.Add(1)
		go b.loop()
	}
	return b
}

// run queues one script call and waits for its result (or ctx).
func (b *batcher[A, R]) run(ctx context.Context, args A) (R, error) {
	var zero R
	call := &scriptCall[A, R]{args: args, done: make(chan scriptResult[R], 1)}
	select {
	case b.calls <- call:
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-b.stop:
		return zero, redis.ErrClosed
	}
	select {
	case r := <-call.done:
		return r.reply, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-b.stop:
		return zero, redis.ErrClosed
	}
}

func (b *batcher[A, R]) loop() {
	defer b.wg.Done()
	batch := make([]*scriptCall[A, R], 0, b.maxSize)
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

// part is the calls that go out as one script call: one alone by the script, several by the multi script.
type part[A luascript.Args, R any] struct {
	group string
	calls []*scriptCall[A, R]
	keys  []string
	argv  []any
	cmd   *redis.Cmd
}

func (b *batcher[A, R]) exec(batch []*scriptCall[A, R]) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	parts := b.split(batch)
	pipe := b.client.Pipeline()
	for i := range parts {
		p := &parts[i]
		if len(p.calls) == 1 {
			p.cmd = b.script.EvalSha(ctx, pipe, p.calls[0].args)
			continue
		}
		p.keys, p.argv = layOut(p.calls)
		p.cmd = b.multi.lua.EvalSha(ctx, pipe, p.keys, p.argv...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	for i := range parts {
		p := &parts[i]
		if len(p.calls) == 1 {
			c := p.calls[0]
			var res scriptResult[R]
			if err := p.cmd.Err(); luascript.IsNoScript(err) {
				// Redis restarted and forgot the script: load it by running it whole.
				res.reply, res.err = b.script.Run(ctx, b.client, c.args)
			} else {
				res.reply, res.err = b.script.Reply(p.cmd.Result())
			}
			c.done <- res
			continue
		}
		v, err := p.cmd.Result()
		if luascript.IsNoScript(err) {
			v, err = b.multi.lua.Run(ctx, b.client, p.keys, p.argv...).Result()
		}
		replies, ok := v.([]any)
		if err == nil && (!ok || len(replies) != len(p.calls)) {
			err = fmt.Errorf("%w: %T for %d calls", luascript.ErrReply, v, len(p.calls))
		}
		for j, c := range p.calls {
			var res scriptResult[R]
			switch {
			case err != nil:
				res.reply, res.err = b.script.Reply(nil, err)
			default:
				if e, ok := replies[j].(error); ok {
					res.reply, res.err = b.script.Reply(nil, e)
				} else {
					res.reply, res.err = b.script.Reply(replies[j], nil)
				}
			}
			c.done <- res
		}
	}
}

// split groups the batch's calls for the multi script, each group in the order of its calls; without
// one, every call is a part of its own.
func (b *batcher[A, R]) split(batch []*scriptCall[A, R]) []part[A, R] {
	if b.multi == nil || len(batch) == 1 {
		parts := make([]part[A, R], len(batch))
		for i := range batch {
			parts[i].calls = batch[i : i+1 : i+1]
		}
		return parts
	}
	var parts []part[A, R]
next:
	for _, c := range batch {
		g := b.multi.group(c.args)
		for i := range parts {
			if parts[i].group == g {
				parts[i].calls = append(parts[i].calls, c)
				continue next
			}
		}
		parts = append(parts, part[A, R]{group: g, calls: []*scriptCall[A, R]{c}})
	}
	return parts
}

// layOut is the multi script's KEYS and ARGV for calls.
func layOut[A luascript.Args, R any](calls []*scriptCall[A, R]) ([]string, []any) {
	var keys []string
	argv := make([]any, 1, 1+20*len(calls))
	argv[0] = len(calls)
	for _, c := range calls {
		k, a := c.args.KeysAndArgv()
		keys = append(keys, k...)
		argv = append(argv, len(k), len(a))
		argv = append(argv, a...)
	}
	return keys, argv
}

// close stops the workers; calls still queued get redis.ErrClosed from run's select on stop.
func (b *batcher[A, R]) close() {
	close(b.stop)
	b.wg.Wait()
}
