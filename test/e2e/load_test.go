package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/chatgate/chatgate/internal/auth"
)

// webhookLoad plays Meta: it posts each message until a replica answers 2xx, retrying every
// other answer (and connection errors) on the next replica with a growing pause.
type webhookLoad struct {
	e        *env
	targets  func() []string // base URLs to spread over; read on every attempt
	workers  int
	deadline time.Duration // per message: give up (counted as unacknowledged) after this

	attempts, non2xx, errors, given atomic.Int64
	mu                              sync.Mutex
	acked                           map[string]bool
	statuses                        map[int]int
}

// message is one customer message of a load.
type message struct {
	from, wamid, text string
}

func newWebhookLoad(e *env, targets func() []string) *webhookLoad {
	return &webhookLoad{e: e, targets: targets, workers: 8, deadline: 90 * time.Second,
		acked: map[string]bool{}, statuses: map[int]int{}}
}

// run posts every message and returns when each was acknowledged or given up.
func (l *webhookLoad) run(msgs []message, perSecond int) {
	jobs := make(chan message)
	var wg sync.WaitGroup
	for w := 0; w < l.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for m := range jobs {
				l.deliver(m, w)
			}
		}(w)
	}
	var tick <-chan time.Time
	if perSecond > 0 {
		t := time.NewTicker(time.Second / time.Duration(perSecond))
		defer t.Stop()
		tick = t.C
	}
	for _, m := range msgs {
		if tick != nil {
			<-tick
		}
		jobs <- m
	}
	close(jobs)
	wg.Wait()
}

func (l *webhookLoad) deliver(m message, worker int) {
	body := whatsAppMessage(m.from, m.wamid, m.text)
	start := time.Now()
	pause := 50 * time.Millisecond
	for i := worker; ; i++ {
		targets := l.targets()
		l.attempts.Add(1)
		r, err := l.e.postWhatsApp(targets[i%len(targets)], body)
		l.mu.Lock()
		if err == nil {
			l.statuses[r.status]++
		}
		l.mu.Unlock()
		if err == nil && r.status/100 == 2 {
			l.mu.Lock()
			l.acked[m.wamid] = true
			l.mu.Unlock()
			return
		}
		if err != nil {
			l.errors.Add(1)
		} else {
			l.non2xx.Add(1)
		}
		if time.Since(start) > l.deadline {
			l.given.Add(1)
			return
		}
		time.Sleep(pause) // backing off like Meta's retries
		pause = min(2*pause, time.Second)
	}
}

func (l *webhookLoad) ackedSet() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]bool, len(l.acked))
	for k := range l.acked {
		out[k] = true
	}
	return out
}

func (l *webhookLoad) statusSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, _ := json.Marshal(l.statuses)
	return string(b)
}

// messages builds customers × perCustomer messages with unique wamids, interleaved by customer.
func messages(scenario string, customers, perCustomer int) []message {
	var out []message
	for k := 0; k < perCustomer; k++ {
		for c := 0; c < customers; c++ {
			out = append(out, message{from: customer(c), wamid: fmt.Sprintf("wamid.%s.%d.%d", scenario, c, k),
				text: fmt.Sprintf("message %d of customer %d", k, c)})
		}
	}
	return out
}

// figures logs one scenario's outcome in the form RELIABILITY.md quotes.
func figures(t *testing.T, scenario string, sent, acked, routed, lost, duplicated int, extra string) {
	t.Logf("FIGURES scenario=%q sent=%d acknowledged=%d routed=%d lost=%d duplicated=%d %s",
		scenario, sent, acked, routed, lost, duplicated, extra)
}

// ---- outbound helpers ----------------------------------------------------------------------------

// startConversation posts a new conversation (template) as the agent and returns its message id.
func (e *env) startConversation(base, agent, to string) (string, response) {
	e.t.Helper()
	body := fmt.Sprintf(`{"channel":"whatsapp","to":%q,"phone_number_id":%q,"template":{"name":"order_update","language":"pt_BR","body_params":["Ana","#%s"]}}`,
		to, phoneNumberID, strings.TrimPrefix(to, "+"))
	r, err := e.do("POST", base+"/v1/conversations", []byte(body),
		map[string]string{"Authorization": "Bearer " + token(e.t, agent, auth.RoleAgent, time.Hour)})
	if err != nil {
		e.t.Fatalf("new conversation: %v", err)
	}
	var out struct {
		MessageID string `json:"message_id"`
	}
	_ = json.Unmarshal(r.body, &out)
	return out.MessageID, r
}

// fakeCalls returns how many sends the fake accepted, per recipient (digits).
func (e *env) fakeCalls() map[string]int {
	e.t.Helper()
	r, err := e.do("GET", e.fakeURL+"/_fake/calls", nil, nil)
	if err != nil || r.status != 200 {
		e.t.Fatalf("fake calls: %v %d", err, r.status)
	}
	var out struct {
		Calls []struct {
			Recipient string `json:"recipient"`
		} `json:"calls"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatal(err)
	}
	per := map[string]int{}
	for _, c := range out.Calls {
		per[c.Recipient]++
	}
	return per
}

// fakeFailures counts the sends the fake answered with an injected error, by HTTP status.
func (e *env) fakeFailures() map[int]int {
	e.t.Helper()
	r, err := e.do("GET", e.fakeURL+"/_fake/failures", nil, nil)
	if err != nil || r.status != 200 {
		e.t.Fatalf("fake failures: %v %d", err, r.status)
	}
	var out struct {
		Failures []struct {
			Status int `json:"status"`
		} `json:"failures"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatal(err)
	}
	per := map[int]int{}
	for _, f := range out.Failures {
		per[f.Status]++
	}
	return per
}

// addRule steers the fake and returns the rule's id.
func (e *env) addRule(rule string) int {
	e.t.Helper()
	r, err := e.do("POST", e.fakeURL+"/_fake/rules", []byte(rule), nil)
	if err != nil || r.status != 201 {
		e.t.Fatalf("add rule %s: %v %d %s", rule, err, r.status, r.body)
	}
	var out struct {
		ID int `json:"id"`
	}
	_ = json.Unmarshal(r.body, &out)
	return out.ID
}

// fakeRules lists the fake's active rules (a rule whose times are used up is dropped), raw.
func (e *env) fakeRules() []json.RawMessage {
	e.t.Helper()
	r, err := e.do("GET", e.fakeURL+"/_fake/rules", nil, nil)
	if err != nil || r.status != 200 {
		e.t.Fatalf("fake rules: %v %d", err, r.status)
	}
	var out struct {
		Rules []json.RawMessage `json:"rules"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatal(err)
	}
	return out.Rules
}

func (e *env) removeRule(id int) {
	e.t.Helper()
	if r, err := e.do("DELETE", fmt.Sprintf("%s/_fake/rules/%d", e.fakeURL, id), nil, nil); err != nil || r.status != 204 {
		e.t.Fatalf("remove rule %d: %v %d", id, err, r.status)
	}
}

// messageStatus reads an outbound message's status from Redis.
func (e *env) messageStatus(id string) string {
	s, _ := e.client.HGet(context.Background(), prefix+"msg:"+id, "status").Result()
	return s
}

func (e *env) inspector() *asynq.Inspector {
	return asynq.NewInspectorFromRedisClient(e.client)
}

// pick returns the short or the long value of a scenario parameter.
func pick[T any](short, long T) T {
	if *longForm {
		return long
	}
	return short
}
