package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

// BenchmarkRoutingDecision measures one routing decision — a new conversation recorded and offered
// to the best eligible agent, each in one Lua script — with 10 and with 10,000 agents online in the
// queue. The cost must not grow with the number of agents.
func BenchmarkRoutingDecision(b *testing.B) {
	for _, agents := range []int{10, 10000} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			cfg := &configs.Config{
				PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}},
				Queues:       []configs.Queue{{ID: "q", Channels: []string{"whatsapp"}, Strategy: "longest_idle", OfferTimeout: time.Hour}},
				WhatsApp:     configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100", Queue: "q"}}},
				Presence:     configs.Presence{HistoryRetention: time.Hour},
			}
			for i := 0; i < agents; i++ {
				cfg.Agents = append(cfg.Agents, configs.Agent{ID: fmt.Sprintf("a%05d", i), Queues: []string{"q"},
					Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 1000000}}})
			}
			client := redistest.Client(b)
			r := newOnlineBenchRouter(b, client, cfg, &recorder{})
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := r.Deliver(ctx, []Inbound{{Channel: "whatsapp", EntryPoint: "100", ContactID: fmt.Sprintf("c%d", i),
					ProviderMessageID: fmt.Sprintf("m%d", i), Kind: "text", Text: "hi"}})
				if err != nil || res.Recorded != 1 {
					b.Fatal(err, res)
				}
			}
			b.StopTimer()
			if waiting := client.ZCard(ctx, r.keys.waiting("q", "whatsapp")).Val(); waiting != 0 {
				b.Fatalf("%d cards were not offered", waiting)
			}
		})
	}
}

// newIntakeBenchRouter is a router with one WhatsApp number feeding one queue, on real Redis.
func newIntakeBenchRouter(b *testing.B) *Router {
	cfg := &configs.Config{
		Queues:   []configs.Queue{{ID: "q", Channels: []string{"whatsapp"}, Strategy: "longest_idle", OfferTimeout: time.Hour}},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100", Queue: "q"}}},
	}
	r := NewRouter(redistest.Client(b), keyspace.New("t"), topology.New(cfg), Options{Clock: clock.Real{}, Publisher: &recorder{}})
	b.Cleanup(r.Shutdown)
	return r
}

// BenchmarkIntakeOfAnOpenConversation measures a message of a conversation already open (the usual
// message), its customer named as a WebChat visitor (one contact id, no index) and as WhatsApp
// names one today (phone and business-scoped user id, both looked up in the contact index).
func BenchmarkIntakeOfAnOpenConversation(b *testing.B) {
	for _, named := range []string{"contact-id", "phone+user-id"} {
		b.Run(named, func(b *testing.B) {
			r := newIntakeBenchRouter(b)
			ctx := context.Background()
			in := func(i int) Inbound {
				c := i % 100
				m := Inbound{Channel: "whatsapp", EntryPoint: "100", ProviderMessageID: fmt.Sprintf("m%d", i), Kind: "text", Text: "hi", At: time.Now()}
				if named == "contact-id" {
					m.ContactID = fmt.Sprintf("c%d", c)
				} else {
					m.Identifiers = []Identifier{{IdentPhone, fmt.Sprintf("55119%08d", c)}, {IdentUserID, fmt.Sprintf("BR.%d", c)}}
				}
				return m
			}
			for i := 0; i < 100; i++ {
				if _, err := r.Deliver(ctx, []Inbound{in(-1 - i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if res, err := r.Deliver(ctx, []Inbound{in(i)}); err != nil || res.Recorded != 1 {
					b.Fatal(err, res)
				}
			}
		})
	}
}

// BenchmarkIntakeScript measures Redis's side of the usual WhatsApp message (a customer of an open
// conversation, named by phone and name, as bench/loadgen sends them) through the intake batcher with
// concurrent callers: redis-µs/msg is the intake script's time in INFO commandstats, redis-calls/msg
// the commands it runs. Both hold whatever the machine's load (bench/intake-cpu.sh measures the binary).
func BenchmarkIntakeScript(b *testing.B) {
	r := newIntakeBenchRouter(b)
	client := r.client
	ctx := context.Background()
	var seq atomic.Int64
	in := func(i int64) Inbound {
		phone := fmt.Sprintf("55119%08d", i%1000)
		return Inbound{Channel: "whatsapp", EntryPoint: "100", ProviderMessageID: fmt.Sprintf("wamid.%d", i), Kind: "text",
			Text: "load test message", Payload: json.RawMessage(`{"type":"text"}`), At: time.Now(), ContactName: "Load",
			ContactPhone: "+" + phone, Identifiers: []Identifier{{IdentPhone, phone}}}
	}
	for i := int64(0); i < 1000; i++ {
		if _, err := r.Deliver(ctx, []Inbound{in(-1 - i)}); err != nil {
			b.Fatal(err)
		}
	}
	stats := func() (scripts, usec, calls float64) { return scriptStats(ctx, client) }
	s0, u0, c0 := stats()
	b.ResetTimer()
	b.SetParallelism(16) // 32 callers on 2 cores, as bench/intake.sh
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res, err := r.Deliver(ctx, []Inbound{in(seq.Add(1))}); err != nil || res.Recorded != 1 {
				b.Fatal(err, res)
			}
		}
	})
	b.StopTimer()
	s1, u1, c1 := stats()
	// per message: a script call may record several (deliverBatchScript)
	n := float64(b.N)
	b.ReportMetric((u1-u0)/n, "redis-µs/msg")
	b.ReportMetric((c1-c0)/n, "redis-calls/msg")
	b.ReportMetric((s1-s0)/n, "scripts/msg")
}

// scriptStats reads Redis's INFO commandstats: the scripts run (EVALSHA), their µs, and the commands
// run besides (those inside scripts included).
func scriptStats(ctx context.Context, client redis.UniversalClient) (scripts, usec, calls float64) {
	info := client.Info(ctx, "commandstats").Val()
	for _, line := range strings.Split(info, "\n") {
		var name string
		var c, u float64
		line = strings.TrimSpace(line)
		if i := strings.IndexByte(line, ':'); strings.HasPrefix(line, "cmdstat_") && i > 0 {
			name = line[len("cmdstat_"):i]
			_, _ = fmt.Sscanf(line[i+1:], "calls=%g,usec=%g", &c, &u)
		}
		switch name {
		case "evalsha":
			scripts, usec = c, u
		case "", "info", "ping", "eval", "script", "select", "flushdb", "client", "hello":
		default:
			calls += c
		}
	}
	return
}

// BenchmarkIntakeOfANewCustomer measures Redis's side of what bench/offered.sh sends: each message from
// a new WhatsApp customer (phone and name), which opens a conversation whose card is offered at once
// to one of 100 agents online, card.offered on the agent's event log. redis-calls/msg counts the
// commands (inside scripts too), scripts/msg the round trips that run a script.
func BenchmarkIntakeOfANewCustomer(b *testing.B) {
	cfg := oneQueueConfig("longest_idle", 100)
	client := redistest.Client(b)
	r := newOnlineBenchRouter(b, client, cfg, NewStreamLog(client, keyspace.New("t"), 1000))
	ctx := context.Background()
	s0, _, c0 := scriptStats(ctx, client)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		phone := fmt.Sprintf("55119%08d", i)
		res, err := r.Deliver(ctx, []Inbound{{Channel: "whatsapp", EntryPoint: "100", ProviderMessageID: fmt.Sprintf("wamid.%d", i),
			Kind: "text", Text: "load test message", Payload: json.RawMessage(`{"type":"text"}`), At: time.Now(), ContactName: "Load",
			ContactPhone: "+" + phone, Identifiers: []Identifier{{IdentPhone, phone}}}})
		if err != nil || res.Recorded != 1 {
			b.Fatal(err, res)
		}
	}
	b.StopTimer()
	s1, _, c1 := scriptStats(ctx, client)
	b.ReportMetric((s1-s0)/float64(b.N), "scripts/msg")
	b.ReportMetric((c1-c0)/float64(b.N), "redis-calls/msg")
}

// oneQueueConfig is WhatsApp's number 100 in the queue q of strategy, with agents a000, a001, … of
// a capacity that never fills.
func oneQueueConfig(strategy string, agents int) *configs.Config {
	cfg := &configs.Config{
		Queues:   []configs.Queue{{ID: "q", Channels: []string{"whatsapp"}, Strategy: strategy, OfferTimeout: time.Hour}},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100", Queue: "q"}}},
	}
	for i := 0; i < agents; i++ {
		cfg.Agents = append(cfg.Agents, configs.Agent{ID: fmt.Sprintf("a%03d", i), Queues: []string{"q"},
			Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 1000000}}})
	}
	return cfg
}

// newOnlineBenchRouter is a router on cfg with every agent online on WhatsApp.
func newOnlineBenchRouter(b *testing.B, client *redis.Client, cfg *configs.Config, pub Publisher) *Router {
	ks := keyspace.New("t")
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clock.Real{}})
	r := NewRouter(client, ks, topology.New(cfg), Options{Clock: clock.Real{}, Publisher: pub})
	b.Cleanup(r.Shutdown)
	ps.AddListener(r)
	ctx := context.Background()
	if err := r.SyncCapacity(ctx); err != nil {
		b.Fatal(err)
	}
	for _, a := range cfg.Agents {
		if _, err := ps.Set(ctx, a.ID, "whatsapp", presence.Online, "", a.ID, presence.CauseToggle); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// BenchmarkAgentStart measures Redis's side of what bench/outbound.sh sends: an agent starts a
// conversation with a new customer, its send admitted to the conversation's sequence and its task
// written to asynq in the same script (StartAdmitted, as outbound's POST /v1/conversations).
// redis-µs/start is the script's time in INFO commandstats, redis-calls/start the commands it runs.
func BenchmarkAgentStart(b *testing.B) {
	client := redistest.Client(b)
	r := newOnlineBenchRouter(b, client, oneQueueConfig("least_busy", 10), nil)
	seq := ordered.New(client, keyspace.New("t"), "sends", nil, ordered.Options{})
	ctx := context.Background()
	s0, u0, c0 := scriptStats(ctx, client)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, adm, err := r.StartAdmitted(ctx, StartRequest{Agent: fmt.Sprintf("a%03d", i%10), Channel: "whatsapp", EntryPoint: "100",
			ContactPhone: fmt.Sprintf("55219%08d", i), Message: Outbound{Kind: "template", Text: "Olá", Payload: json.RawMessage(`{"name":"hi"}`)}},
			func(id string) ordered.Admission {
				return seq.AdmitTask(ordered.Task{Key: ordered.KeyPlaceholder, Queue: "templates", ID: id, Type: "send:template",
					Payload: []byte(`{"message_id":"` + id + `","conversation_id":"` + ordered.KeyPlaceholder + `"}`)})
			})
		if err != nil || !adm.Queued {
			b.Fatal(err, adm)
		}
	}
	b.StopTimer()
	s1, u1, c1 := scriptStats(ctx, client)
	b.ReportMetric((u1-u0)/(s1-s0), "redis-µs/start")
	b.ReportMetric((c1-c0)/(s1-s0), "redis-calls/start")
}
