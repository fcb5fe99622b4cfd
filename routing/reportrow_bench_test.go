package routing

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
)

// BenchmarkReportAggregates closes a day of a 100-agent center (2,000 conversations, two queues, two
// channels, six dispositions, every outcome) through closeScript and measures the day's aggregates
// (MEMORY USAGE) and what writing them adds to a close: rounds alternate with and without them.
//
//	CHATGATE_TEST_REDIS_ADDR=… go test -run '^$' -bench ReportAggregates -benchtime 3x ./routing/
func BenchmarkReportAggregates(b *testing.B) {
	const agents, convs = 100, 2000
	ctx := context.Background()
	client := redistest.Client(b)
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		b.Fatal(err)
	}
	r := &Router{reportLocation: sp, reportSummaryRetention: 400 * 24 * time.Hour}
	dispositions := []string{"", "venda", "duvida", "reclamacao", "troca", "cancelamento"}
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, sp)
	closeDay := func(tenant string, agg bool) (time.Duration, string) {
		k := keys{keyspace.New(tenant)}
		rng := rand.New(rand.NewPCG(1, 2))
		var spent time.Duration
		for i := range convs {
			created := day.Add(8*time.Hour + time.Duration(rng.Int64N(int64(10*time.Hour))))
			wait := time.Duration(rng.Int64N(300)) * time.Second
			handle := time.Duration(60+rng.Int64N(900)) * time.Second
			card, conv := fmt.Sprintf("D%d", i), fmt.Sprintf("C%d", i)
			agent := fmt.Sprintf("agent%03d", rng.IntN(agents))
			reason, accepted := "", rng.IntN(10) < 8
			switch rng.IntN(10) {
			case 0:
				reason, accepted = "max_wait", false
			case 1:
				reason = "idle"
			}
			cardF := []any{"id", card, "conversation_id", conv, "queue", []string{"sales", "support"}[i%2], "channel", []string{"whatsapp", "webchat"}[i%3%2],
				"state", "waiting", "agent", "", "created_at", created.UnixMilli()}
			convF := []any{"id", conv, "channel", []string{"whatsapp", "webchat"}[i%3%2], "queue", []string{"sales", "support"}[i%2], "entry_point", "100",
				"contact_id", "K" + conv, "contact_phone", fmt.Sprintf("+5511%09d", rng.IntN(1e9)), "state", "open", "card", card,
				"disposition", dispositions[rng.IntN(len(dispositions))], "offers", "1"}
			now := created.Add(wait)
			if accepted {
				cardF = append(cardF, "state", "accepted", "agent", agent, "accepted_at", created.Add(wait).UnixMilli())
				convF = append(convF, "agent", agent, "agents", agent, "first_response_at", created.Add(wait+time.Duration(rng.Int64N(60))*time.Second).UnixMilli())
				now = now.Add(handle)
			}
			client.HSet(ctx, k.card(card), cardF...)
			client.HSet(ctx, k.prefix()+"conv:"+conv, convF...)
			a := closeArgs{keys: k, card: card, agent: "sue", now: now.UnixMilli(), force: true, reportRetention: 35 * 86400, reason: reason}
			if agg {
				a.agg = r.reportAgg(now, time.Minute)
			}
			t0 := time.Now()
			if out, err := closeScript.Run(ctx, client, a); err != nil || out.err() != nil {
				b.Fatalf("%+v %v", out, err)
			}
			spent += time.Since(t0)
		}
		return spent, k.prefix() + fmt.Sprintf("rpt:agg:%d", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).Unix()/86400)
	}
	var with, without []time.Duration
	round := 0
	for b.Loop() {
		round++
		// Alternate the order, so neither side always runs on a warmer Redis.
		for _, agg := range []bool{round%2 == 0, round%2 != 0} {
			client.FlushDB(ctx)
			d, _ := closeDay("t", agg)
			if agg {
				with = append(with, d)
			} else {
				without = append(without, d)
			}
		}
	}
	client.FlushDB(ctx)
	_, aggKey := closeDay("t", true)
	bytes := client.MemoryUsage(ctx, aggKey, 0).Val()
	fields := client.HGetAll(ctx, aggKey).Val()
	var agentLen, otherLen, agentN int
	for f, v := range fields {
		if strings.HasPrefix(f, "a|") {
			agentLen += len(f) + len(v)
			agentN++
		} else {
			otherLen += len(f) + len(v)
		}
	}
	enc := client.ObjectEncoding(ctx, aggKey).Val()
	b.Logf("day aggregates: %d B (%s, %d fields: %d agent groups, %d field+value bytes; others %d bytes)", bytes, enc, len(fields), agentN, agentLen, otherLen)
	b.ReportMetric(float64(bytes), "B/day")
	b.ReportMetric(float64(bytes)/agents, "B/agent-day")
	b.ReportMetric(float64(median(with))/convs/1000, "us/close_with_agg")
	b.ReportMetric(float64(median(without))/convs/1000, "us/close_without")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
