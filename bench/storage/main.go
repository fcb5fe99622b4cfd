// Command storage measures the Redis memory one stored inbound WhatsApp text message costs: it
// delivers N signed-notification-shaped messages (parsed by the real WhatsApp parser, recorded by
// the real intake script) from a set of customers to a Redis on loopback that it flushes first, and
// prints the `INFO memory` used_memory delta per message. Optionally it fills first (-fill) without
// measuring, to see whether the cost per message changes as Redis fills.
package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/webhooks/whatsapp"
)

func main() {
	addr := flag.String("redis", "", "redis address on loopback (its database 0 is flushed)")
	n := flag.Int("n", 100000, "messages to measure")
	customers := flag.Int("customers", 1000, "distinct customers the messages come from")
	conc := flag.Int("c", 32, "concurrent deliveries")
	text := flag.String("text", "Olá, gostaria de saber o status do meu pedido", "the messages' text")
	flag.Parse()
	if !strings.HasPrefix(*addr, "127.0.0.1:") {
		fmt.Fprintln(os.Stderr, "storage: -redis must be 127.0.0.1:<port>")
		os.Exit(2)
	}
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: *addr, PoolSize: *conc + 4, Protocol: 2})
	if err := client.FlushDB(ctx).Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := &configs.Config{
		Queues:   []configs.Queue{{ID: "sales", Channels: []string{"whatsapp"}, Strategy: "longest_idle", OfferTimeout: time.Hour}},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100200300", Queue: "sales"}}},
	}
	r := routing.NewRouter(client, keyspace.New("t"), topology.New(cfg), routing.Options{Clock: clock.Real{}})
	defer r.Shutdown()
	p := whatsapp.New("s", "", "")

	var seq atomic.Int64
	deliver := func(count int) {
		var wg sync.WaitGroup
		for w := 0; w < *conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := seq.Add(1)
					if i > int64(count) {
						return
					}
					// A wamid as long as Meta's (≈ 60 characters).
					id := "wamid.HBgM" + base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%035d", i)))
					body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", DisplayNumber: "5511400000000",
						From: "+55119" + fmt.Sprintf("%08d", i%int64(*customers)), Name: "Maria da Silva", ID: id,
						Text: *text, At: time.Now()})
					notif, err := p.Parse(body)
					if err != nil {
						panic(err)
					}
					for _, m := range notif.Messages {
						if res, err := r.Deliver(ctx, []routing.Inbound{m.Inbound()}); err != nil || res.Recorded != 1 {
							panic(fmt.Sprint(err, res))
						}
					}
				}
			}()
		}
		wg.Wait()
	}
	used := func() int64 {
		s := client.Info(ctx, "memory").Val()
		for _, l := range strings.Split(s, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				x, _ := strconv.ParseInt(v, 10, 64)
				return x
			}
		}
		return 0
	}
	cpu := func() float64 { // redis-server's CPU seconds (user + system)
		var t float64
		for _, l := range strings.Split(client.Info(ctx, "cpu").Val(), "\r\n") {
			for _, f := range []string{"used_cpu_user:", "used_cpu_sys:"} {
				if v, ok := strings.CutPrefix(l, f); ok {
					x, _ := strconv.ParseFloat(v, 64)
					t += x
				}
			}
		}
		return t
	}
	// The customers' conversations first, so the figure is the messages' own cost.
	deliver(*customers)
	before, keysBefore, cpuBefore := used(), client.DBSize(ctx).Val(), cpu()
	start := time.Now()
	deliver(*customers + *n)
	after, keysAfter, cpuAfter := used(), client.DBSize(ctx).Val(), cpu()
	fmt.Printf("messages=%d customers=%d used_memory %d -> %d bytes, per message %.0f bytes, keys per message %.2f, %.0f msg/s, redis CPU per message %.1f µs\n",
		*n, *customers, before, after, float64(after-before)/float64(*n), float64(keysAfter-keysBefore)/float64(*n),
		float64(*n)/time.Since(start).Seconds(), (cpuAfter-cpuBefore)*1e6/float64(*n))
}
