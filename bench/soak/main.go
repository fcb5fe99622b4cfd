// Command soak opens and closes conversations continuously against a Redis on loopback, with a short
// retention, and samples Redis's used_memory every interval: after the first retention period the
// memory should stay flat (closed conversations leave as fast as new ones close). Each conversation
// is a new WhatsApp customer's three messages, then a supervisor's close; the router's own sweeper
// runs retention. It prints one line per sample and a verdict over the samples after the warm-up.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/routing"
)

func main() {
	addr := flag.String("redis", "", "redis address on loopback (database 0 is flushed)")
	dur := flag.Duration("d", 15*time.Minute, "how long to run (at most 1h)")
	keep := flag.Duration("retention", 2*time.Minute, "retention.closed_conversations")
	rate := flag.Int("rate", 100, "conversations per second")
	every := flag.Duration("sample", time.Minute, "sampling interval")
	flag.Parse()
	if !strings.HasPrefix(*addr, "127.0.0.1:") || *dur > time.Hour {
		fmt.Fprintln(os.Stderr, "soak: -redis must be 127.0.0.1:<port> and -d at most 1h")
		os.Exit(2)
	}
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: *addr, Protocol: 2})
	if err := client.FlushDB(ctx).Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := &configs.Config{
		Queues:   []configs.Queue{{ID: "sales", Channels: []string{"whatsapp"}, Strategy: "longest_idle", OfferTimeout: time.Hour}},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100200300", Queue: "sales"}}},
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r := routing.NewRouter(client, keyspace.New("t"), topology.New(cfg), routing.Options{Clock: clock.Real{}, Logger: quiet,
		Retention: routing.RetentionOptions{ClosedConversations: *keep}})
	sw := routing.NewSweeper(r, time.Second, time.Minute)
	_ = sw.Start()
	defer sw.Shutdown()
	used := func() int64 {
		for _, l := range strings.Split(client.Info(ctx, "memory").Val(), "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				x, _ := strconv.ParseInt(v, 10, 64)
				return x
			}
		}
		return 0
	}
	// Report rows and daily aggregates (rpt:*) are kept reports.detail_retention / summary_retention
	// by design, apart from the conversations: they are measured on their own and left out of the
	// flatness verdict, which is about what retention.closed_conversations governs.
	reportBytes := func() int64 {
		var n int64
		iter := client.Scan(ctx, 0, "cg:{t}:rpt:*", 100).Iterator()
		for iter.Next(ctx) {
			n += client.MemoryUsage(ctx, iter.Val()).Val()
		}
		return n
	}
	base := used()
	var opened atomic.Int64
	stop := time.Now().Add(*dur)
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(*rate))
		defer tick.Stop()
		for i := 0; time.Now().Before(stop); i++ {
			<-tick.C
			phone := fmt.Sprintf("55119%08d", i)
			var card string
			for j := 0; j < 3; j++ {
				res, err := r.Deliver(ctx, []routing.Inbound{{Channel: "whatsapp", EntryPoint: "100200300", ContactName: "Maria",
					Identifiers: []routing.Identifier{{Kind: routing.IdentPhone, Value: phone}}, ProviderMessageID: fmt.Sprintf("wamid.soak.%d.%d", i, j),
					At: time.Now(), Kind: "text", Text: "Olá, gostaria de saber o status do meu pedido",
					Payload: []byte(`{"channel":"whatsapp","kind":"text"}`)}})
				if err != nil || res.Recorded != 1 {
					fmt.Fprintln(os.Stderr, "deliver:", err)
					continue
				}
				if j == 0 {
					m, _ := r.Message(ctx, res.Messages[0])
					conv, _ := r.Conversation(ctx, m.ConversationID)
					card = conv.CardID
				}
			}
			if _, err := r.Close(ctx, card, "sup", true); err != nil {
				fmt.Fprintln(os.Stderr, "close:", err)
			}
			opened.Add(1)
		}
	}()
	start := time.Now()
	var samples []int64
	var at []time.Duration
	for time.Now().Before(stop) {
		time.Sleep(*every)
		raw := used()
		rpt := reportBytes()
		u := raw - rpt
		samples = append(samples, u)
		at = append(at, time.Since(start))
		kept := client.ZCard(ctx, "cg:{t}:retention").Val()
		fmt.Printf("t=%5.1fmin used_memory=%d report_rows=%d without_rows=%d conversations=%d kept=%d keys=%d held=%d bytes/kept=%.0f\n",
			time.Since(start).Minutes(), raw, rpt, u, opened.Load(), kept, client.DBSize(ctx).Val(), client.ZCard(ctx, "cg:{t}:retention:held").Val(), float64(u-base)/float64(max(kept, 1)))
	}
	// Flat: every sample after the first retention period (plus a minute for the sweep to catch up)
	// within ±10 % of their mean.
	var sum, n int64
	var lo, hi int64 = 1 << 62, 0
	for i, s := range samples {
		if at[i] < *keep+time.Minute {
			continue
		}
		sum += s
		n++
		lo, hi = min(lo, s), max(hi, s)
	}
	if n == 0 {
		fmt.Println("no samples after the first retention period")
		return
	}
	mean := float64(sum) / float64(n)
	fmt.Printf("used_memory without report rows, after %v: %d samples, mean %.0f, min %+.1f%%, max %+.1f%% (flat within ±10%%: %v)\n", *keep+time.Minute, n, mean,
		100*(float64(lo)/mean-1), 100*(float64(hi)/mean-1), float64(lo) >= 0.9*mean && float64(hi) <= 1.1*mean)
}
