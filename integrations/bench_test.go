package integrations

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/outbox"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/routing"
	"github.com/redis/go-redis/v9"
)

// BenchmarkDeliveryToLocalReceiver: customers' messages recorded by routing while no dispatcher
// runs fill the outbox (conversation.opened and message.received, with the contact's identifiers);
// then the integrations start (two instances of 32 workers) and the benchmark times until the local
// receiver has acknowledged every event, checking each conversation's order. Reports events/s.
//
//	CHATGATE_TEST_REDIS_ADDR=… go test -run '^$' -bench DeliveryToLocalReceiver -benchtime 1x ./integrations/
func BenchmarkDeliveryToLocalReceiver(b *testing.B) {
	const convs, perConv = 500, 20
	total := int64(convs * (perConv + 1))
	for range b.N {
		b.StopTimer()
		var got atomic.Int64
		var mu sync.Mutex
		last := map[string]int{}
		disorder := 0
		done := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var ev struct {
				Type string `json:"type"`
				Data struct {
					Conv    string `json:"conversation_id"`
					Message struct {
						Text string `json:"text"`
					} `json:"message"`
				} `json:"data"`
			}
			_ = json.Unmarshal(body, &ev)
			if ev.Type == "message.received" {
				_, j := parseText(ev.Data.Message.Text)
				mu.Lock()
				if prev, ok := last[ev.Data.Conv]; (ok && j != prev+1) || (!ok && j != 0) {
					disorder++
				}
				last[ev.Data.Conv] = j
				mu.Unlock()
			}
			w.WriteHeader(http.StatusNoContent)
			if got.Add(1) == total {
				close(done)
			}
		}))
		client := redistest.Client(b)
		e := newEnvOn(b, client, nil, hook("crm", srv.URL, func(w *configs.Webhook) { w.Workers = 32 }))
		client.Set(context.Background(), outbox.OnKey(e.ks), "1", 0)
		var wg sync.WaitGroup
		for c := range convs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range perConv {
					if _, err := e.router.Deliver(context.Background(), []routing.Inbound{{Channel: "whatsapp", EntryPoint: "100",
						Identifiers:       []routing.Identifier{{Kind: routing.IdentPhone, Value: fmt.Sprintf("55117%08d", c)}},
						ProviderMessageID: fmt.Sprintf("w%d-%d", c, j), Kind: "text", Text: fmt.Sprintf("c%d-m%d", c, j)}}); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if n := client.XLen(context.Background(), outbox.StreamKey(e.ks)).Val(); n != total {
			b.Fatalf("outbox holds %d, want %d", n, total)
		}
		cpu0, rus0 := redisCPU(b, client), processCPU()
		per0, cmds0 := redisCalls(b, client)
		b.StartTimer()
		start := time.Now()
		e.start(b, nil)
		e.start(b, nil)
		go func() {
			for client.XLen(context.Background(), outbox.StreamKey(e.ks)).Val() > 0 {
				time.Sleep(10 * time.Millisecond)
			}
			b.Logf("outbox dispatched after %v (%d delivered by then)", time.Since(start), got.Load())
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("delivered %d of %d", got.Load(), total)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
		// Where the time goes: Redis's CPU and commands (those inside scripts included) and this
		// process's CPU (gateway and receiver together) per delivered event.
		b.ReportMetric(float64((redisCPU(b, client)-cpu0).Microseconds())/float64(total), "redis-µs/event")
		per1, cmds1 := redisCalls(b, client)
		b.ReportMetric(float64(cmds1-cmds0)/float64(total), "redis-cmds/event")
		var diff []string
		for k, v := range per1 {
			if d := float64(v-per0[k]) / float64(total); d >= 0.05 {
				diff = append(diff, fmt.Sprintf("%s %.2f", k, d))
			}
		}
		sort.Strings(diff)
		b.Logf("Redis commands per event: %s", strings.Join(diff, ", "))
		b.ReportMetric(float64((processCPU()-rus0).Microseconds())/float64(total), "go-µs/event")
		if disorder > 0 {
			b.Fatalf("%d events out of order", disorder)
		}
		for _, s := range e.services {
			s.Shutdown()
		}
		srv.Close()
	}
}

// redisCPU is the CPU time the Redis server has used (INFO cpu: system and user).
func redisCPU(b *testing.B, c redis.UniversalClient) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}

// redisCalls is how many commands Redis has run, per command (INFO commandstats, scripts' commands
// included), and their total.
func redisCalls(b *testing.B, c redis.UniversalClient) (map[string]int64, int64) {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	per, n := map[string]int64{}, int64(0)
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, ",")
		k, _ := strconv.ParseInt(v, 10, 64)
		per[name] += k
		n += k
	}
	return per, n
}

// processCPU is this process's CPU time (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
