package reports_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/redisx"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/reports"
	"github.com/chatgate/chatgate/routing"
)

// A month of a 100-agent center: 30 days × 2,000 conversations (rows in routing's format, seeded
// directly) and 12 presence changes per agent and day (login and logout of two channels, two pauses).
const (
	benchAgents = 100
	benchDays   = 30
	benchConvs  = 2000
)

func benchConfig() *configs.Config {
	cfg := &configs.Config{
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Almoço"}, {ID: "break", Label: "Pausa curta"}},
		Queues: []configs.Queue{{ID: "sales", Channels: []string{"whatsapp", "webchat"}, ServiceLevel: time.Minute},
			{ID: "support", Channels: []string{"whatsapp", "webchat"}, ServiceLevel: time.Minute}},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100", Queue: "sales"}}},
	}
	for i := range benchAgents {
		cfg.Agents = append(cfg.Agents, configs.Agent{ID: fmt.Sprintf("agent%03d", i), Queues: []string{"sales", "support"},
			Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 3}, "webchat": {Capacity: 3}}})
	}
	return cfg
}

// seedMonth writes the month ending at end and returns the bytes the rows and the histories use.
func seedMonth(tb testing.TB, client *redis.Client, ks keyspace.Space, start time.Time) (rowBytes, histBytes int64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	entropy := rand.NewChaCha8([32]byte{1})
	outcomes := []string{"handled", "handled", "handled", "handled", "handled", "handled", "handled", "abandoned", "closed_max_wait", "closed_idle"}
	pipe := client.Pipeline()
	days := map[int64]bool{}
	for d := range benchDays {
		day := start.AddDate(0, 0, d)
		agg := map[string][]int64{}
		for i := range benchConvs {
			created := day.Add(8*time.Hour + time.Duration(rng.Int64N(int64(10*time.Hour))))
			agent := fmt.Sprintf("agent%03d", rng.IntN(benchAgents))
			outcome := outcomes[rng.IntN(len(outcomes))]
			wait := rng.Int64N(300_000)
			accepted, handle, answer, agents := "", "", "", ""
			if outcome == "handled" || outcome == "closed_idle" {
				accepted = fmt.Sprint(wait)
				handle = fmt.Sprint(wait + 60_000 + rng.Int64N(900_000))
				answer = fmt.Sprint(wait + rng.Int64N(60_000))
				agents = agent
			} else {
				handle = fmt.Sprint(wait)
			}
			id := ulid.MustNew(uint64(created.UnixMilli()), entropy).String()
			row := strings.Join([]string{"v1", id, []string{"whatsapp", "webchat"}[i%2], []string{"sales", "support"}[i%3%2], "100", agents,
				ulid.MustNew(uint64(created.UnixMilli()), entropy).String(), fmt.Sprintf("+5511%09d", rng.IntN(1e9)),
				fmt.Sprint(created.UnixMilli()), "0", accepted, answer, handle, "1", "0", "0", "0", "", outcome, agent}, "|")
			utc := created.UnixMilli() / 86400000
			days[utc] = true
			pipe.ZAdd(ctx, ks.Key("rpt", "conv", fmt.Sprint(utc)), redis.Z{Score: float64(created.UnixMilli()), Member: row})
			addAgg(agg, row, created)
		}
		y, m, dd := day.Date()
		for f, v := range agg {
			pipe.HSet(ctx, ks.Key("rpt", "agg", fmt.Sprint(time.Date(y, m, dd, 0, 0, 0, 0, time.UTC).Unix()/86400)), f, joinInts(v))
		}
		for a := range benchAgents {
			agent := fmt.Sprintf("agent%03d", a)
			key := ks.Key("presence", "history", agent)
			at := day.Add(8*time.Hour + time.Duration(a)*time.Second)
			step := func(after time.Duration, from, to, reason string) {
				at = at.Add(after)
				for _, ch := range []string{"whatsapp", "webchat"} {
					pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: fmt.Sprintf("%d-*", at.UnixMilli()), Values: []any{"channel", ch, "from", from,
						"to", to, "reason", reason, "by", agent, "cause", "toggle", "at", fmt.Sprint(at.UnixMilli())}})
				}
			}
			step(0, "offline", "online", "")
			step(4*time.Hour, "online", "paused", "lunch")
			step(time.Hour, "paused", "online", "")
			step(2*time.Hour, "online", "paused", "break")
			step(15*time.Minute, "paused", "online", "")
			step(2*time.Hour, "online", "offline", "")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	for d := range days {
		rowBytes += client.MemoryUsage(ctx, ks.Key("rpt", "conv", fmt.Sprint(d)), 0).Val()
	}
	for a := range benchAgents {
		histBytes += client.MemoryUsage(ctx, ks.Key("presence", "history", fmt.Sprintf("agent%03d", a)), 0).Val()
	}
	return rowBytes, histBytes
}

// addAgg adds a seeded row to its day's aggregates the way routing's reportLua does (same groups,
// same packed layout), so the month's summary can also be read from aggregates.
func addAgg(agg map[string][]int64, row string, created time.Time) {
	f := strings.Split(row, "|")
	nb := len(routing.ReportBuckets)
	ms := func(s string) (int64, bool) { v, err := strconv.ParseInt(s, 10, 64); return v, err == nil && s != "" }
	bucket := func(v int64) int { return sort.SearchInts(routing.ReportBuckets, int(v/1000)+1) - 1 }
	acc, accepted := ms(f[10])
	closed, _ := ms(f[12])
	wait, handle := closed, int64(-1)
	if accepted {
		wait, handle = acc, closed-acc
	}
	frt, hasFrt := ms(f[11])
	groups := []string{"*|", "q|" + f[3], "c|" + f[2], "d|" + f[17], "o|" + f[18], "h|" + created.In(saoPaulo).Format("15"), "a|" + f[5]}
	for _, g := range groups {
		a := agg[g]
		if a == nil {
			a = make([]int64, 12+3*nb)
			agg[g] = a
		}
		a[0]++
		a[1+slices.Index(reports.Outcomes, f[18])]++
		if accepted && wait <= 60_000 {
			a[6]++
		}
		a[7] += wait
		a[12+bucket(wait)]++
		if handle >= 0 {
			a[8]++
			a[9] += handle
			a[12+nb+bucket(handle)]++
		}
		if hasFrt {
			a[10]++
			a[11] += frt
			a[12+2*nb+bucket(frt)]++
		}
	}
}

func joinInts(v []int64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(s, ",")
}

// BenchmarkReportsMonth: each report over 30 days of a 100-agent center, through the HTTP handler.
//
//	CHATGATE_TEST_REDIS_ADDR=… go test -run '^$' -bench ReportsMonth -benchtime 10x ./reports/
func BenchmarkReportsMonth(b *testing.B) {
	client := redistest.Client(b)
	ks := keyspace.New("t")
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, saoPaulo)
	rowBytes, histBytes := seedMonth(b, client, ks, start)
	b.Logf("rows: %d B for %d rows = %.0f B/row; presence history: %.0f B per agent-day (12 changes)",
		rowBytes, benchDays*benchConvs, float64(rowBytes)/(benchDays*benchConvs), float64(histBytes)/(benchAgents*benchDays))
	cfg := benchConfig()
	clk := clock.NewFake(start.AddDate(0, 0, benchDays+1))
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
		Unavailable: redisx.IsUnavailable, BodyLimit: 1 << 16})
	v1 := app.Group("/v1", auth.NewVerifier(secret, "", "chatgate").Middleware())
	reports.NewHandler(reports.New(client, ks, topology.New(cfg), reports.Options{Clock: clk, Location: saoPaulo})).Register(v1)
	// The same month read from the daily aggregates: a service whose rows would be gone.
	v1agg := app.Group("/agg/v1", auth.NewVerifier(secret, "", "chatgate").Middleware())
	reports.NewHandler(reports.New(client, ks, topology.New(cfg), reports.Options{Clock: clk, Location: saoPaulo, DetailRetention: 24 * time.Hour})).Register(v1agg)
	tok, _ := auth.Mint(secret, "chatgate", "sue", auth.RoleSupervisor, time.Hour, time.Now())
	period := "from=2026-10-01&to=2026-10-30"
	for _, bc := range []struct{ name, path string }{
		{"conversations_page", "/v1/reports/conversations?" + period + "&limit=100"},
		{"conversations_agent", "/v1/reports/conversations?" + period + "&agent=agent042"},
		{"conversations_csv", "/v1/reports/conversations?" + period + "&format=csv"},
		{"summary_queue", "/v1/reports/summary?" + period + "&group_by=queue"},
		{"summary_hour", "/v1/reports/summary?" + period + "&group_by=hour"},
		{"summary_queue_aggregates", "/agg/v1/reports/summary?" + period + "&group_by=queue"},
		{"summary_agent_aggregates", "/agg/v1/reports/summary?" + period + "&group_by=agent"},
		{"presence_agent", "/v1/reports/presence?" + period + "&group_by=agent"},
		{"presence_day", "/v1/reports/presence?" + period + "&group_by=day"},
		{"presence_events", "/v1/reports/presence/events?" + period + "&limit=100"},
		{"presence_timeline_day", "/v1/reports/presence/timeline?from=2026-10-15"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var n int
			// The machine is shared: CPU time (this process's, and Redis's own per command) says
			// what a report costs better than the wall clock.
			cpu0, redis0 := processCPU(), redisUsec(b, client)
			for b.Loop() {
				req := httptest.NewRequest("GET", bc.path, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := app.Test(req, -1)
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("%v %v", err, resp)
				}
				body, _ := io.ReadAll(resp.Body)
				n = len(body)
			}
			b.ReportMetric(float64(n), "body_B")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/float64(b.N), "gw_cpu_ms/op")
			b.ReportMetric((redisUsec(b, client)-redis0)/1000/float64(b.N), "redis_ms/op")
		})
	}
}

// processCPU is the user and system time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisUsec is the time Redis spent in commands so far (INFO commandstats).
func redisUsec(tb testing.TB, client *redis.Client) float64 {
	info, err := client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	total := 0.0
	for _, line := range strings.Split(info, "\n") {
		if i := strings.Index(line, "usec="); i >= 0 {
			var v float64
			fmt.Sscanf(line[i+5:], "%f", &v)
			total += v
		}
	}
	return total
}
