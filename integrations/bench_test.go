package integrations

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/outbox"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/routing"
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
		if disorder > 0 {
			b.Fatalf("%d events out of order", disorder)
		}
		for _, s := range e.services {
			s.Shutdown()
		}
		srv.Close()
	}
}
