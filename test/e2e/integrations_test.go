package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
)

// A CRM down for a while under a webhook load, then up: two gateway processes record every
// customer message and hold every conversation for it; once the CRM answers again, every event
// arrives, each conversation's in order, none lost, and no conversation stays held.
func TestIntegrationsReceiverDownThenUp(t *testing.T) {
	const customers, perCustomer = 30, 8
	var mu sync.Mutex
	down := true
	seen := map[string][]int{}
	refused := 0
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if down {
			refused++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var ev struct {
			Type string `json:"type"`
			Data struct {
				Contact struct {
					Phone string `json:"phone"`
				} `json:"contact"`
				Message struct {
					Text string `json:"text"`
				} `json:"message"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &ev) == nil && ev.Type == "message.received" && r.Header.Get("webhook-signature") != "" {
			_, n, _ := strings.Cut(ev.Data.Message.Text, "#")
			j, _ := strconv.Atoi(n)
			seen[ev.Data.Contact.Phone] = append(seen[ev.Data.Contact.Phone], j)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer crm.Close()
	e := newEnv(t, options{integrations: fmt.Sprintf(`integrations:
  webhooks:
    - { id: crm, url: %q, secret: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", events: [message.received], max_age: 1h }
`, crm.URL)})
	for _, p := range e.replicas {
		e.waitHTTP(p.url()+"/readyz", 200)
	}
	// the load: each customer's messages in order, customers side by side, across both replicas
	var wg sync.WaitGroup
	for c := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perCustomer {
				base := e.replicas[(c+j)%len(e.replicas)].url()
				r, err := e.postWhatsApp(base, whatsAppMessage(customer(c), fmt.Sprintf("wamid.int.%d.%d", c, j), fmt.Sprintf("pedido #%d", j)))
				if err != nil || r.status != 200 {
					t.Errorf("customer %d message %d: %d %v", c, j, r.status, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	held := prefix + "integ:unacked"
	testutil.Eventually(t, 30*time.Second, "every conversation held for the CRM", func() bool {
		return e.client.HLen(context.Background(), held).Val() == customers &&
			e.client.XLen(context.Background(), prefix+"integ:outbox").Val() == 0
	})
	testutil.Eventually(t, 30*time.Second, "the CRM refusing deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refused >= customers
	})
	mu.Lock()
	down = false
	mu.Unlock()
	testutil.Eventually(t, 120*time.Second, "every event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, js := range seen {
			n += len(js)
		}
		return n >= customers*perCustomer
	})
	mu.Lock()
	for phone, js := range seen {
		for i, j := range js {
			if i != j {
				t.Errorf("%s: messages arrived as %v", phone, js)
				break
			}
		}
	}
	if len(seen) != customers {
		t.Errorf("%d customers' messages arrived, want %d", len(seen), customers)
	}
	mu.Unlock()
	testutil.Eventually(t, 30*time.Second, "no conversation held", func() bool {
		return e.client.HLen(context.Background(), held).Val() == 0
	})
}
