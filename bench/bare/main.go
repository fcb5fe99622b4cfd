// Command bare serves a bare fiber handler that answers every POST with 200: the baseline the
// webhook intake is measured against (BENCHMARKS.md). With -redis it first stores each request's body
// in that Redis under a key of its own (one SET; with -batch, pipelined with the others in flight): the least any intake that records a
// message before answering must do, to put the intake's ratio in proportion (bench/floor.sh).
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address")
	redisURL := flag.String("redis", "", "redis://… URL on loopback: store each body there before answering")
	batched := flag.Bool("batch", false, "with -redis: the SETs of requests that arrive together go in one pipeline, as the gateway's intake batches its calls")
	flag.Parse()
	app := fiber.New(fiber.Config{DisableStartupMessage: true, BodyLimit: 1 << 20})
	if *redisURL == "" {
		app.Post("/*", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	} else {
		opts, err := redis.ParseURL(*redisURL)
		if err != nil {
			log.Fatal(err)
		}
		if host, _, _ := net.SplitHostPort(opts.Addr); host != "127.0.0.1" && host != "localhost" && host != "::1" {
			log.Fatal("bare: the Redis must be on loopback")
		}
		client := redis.NewClient(opts)
		var seq atomic.Int64
		store := func(key string, body []byte) error { return client.Set(context.Background(), key, body, 0).Err() }
		if *batched {
			store = newBatcher(client).set
		}
		app.Post("/*", func(c *fiber.Ctx) error {
			key := "bare:" + strconv.FormatInt(seq.Add(1), 10)
			if err := store(key, c.Body()); err != nil {
				return c.SendStatus(fiber.StatusServiceUnavailable)
			}
			return c.SendStatus(fiber.StatusOK)
		})
	}
	log.Fatal(app.Listen(*listen))
}

type setCall struct {
	key  string
	body []byte
	done chan error
}

// batcher sends the SETs queued while a pipeline is in flight as the next pipeline, two in flight at
// most (as the gateway's intake batcher does).
type batcher struct {
	client *redis.Client
	calls  chan setCall
}

func newBatcher(client *redis.Client) *batcher {
	b := &batcher{client: client, calls: make(chan setCall, 1024)}
	for range 2 {
		go b.loop()
	}
	return b
}

func (b *batcher) set(key string, body []byte) error {
	done := make(chan error, 1)
	b.calls <- setCall{key, body, done}
	return <-done
}

func (b *batcher) loop() {
	batch := make([]setCall, 0, 128)
	for first := range b.calls {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < cap(batch) {
			select {
			case c := <-b.calls:
				batch = append(batch, c)
			default:
				break drain
			}
		}
		pipe := b.client.Pipeline()
		for _, c := range batch {
			pipe.Set(context.Background(), c.key, c.body, 0)
		}
		cmds, err := pipe.Exec(context.Background())
		for i, c := range batch {
			if err != nil {
				c.done <- err
			} else {
				c.done <- cmds[i].Err()
			}
		}
	}
}
