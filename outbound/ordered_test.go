package outbound_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound"
	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// provider puts the fake Cloud API behind a door that delays and fails sends as a test says, and
// counts the sends in flight per recipient.
type provider struct {
	*httptest.Server
	mu       sync.Mutex
	inFlight map[string]int
	overlap  int // moments when two recipients were being sent to at once
	// decide returns a delay and, to fail the send, a Meta error (status, code, details).
	decide func(text string) (time.Duration, int, int, string)
}

func newProvider(t *testing.T, e *env, decide func(text string) (time.Duration, int, int, string)) *provider {
	p := &provider{inFlight: map[string]int{}, decide: decide}
	fake := e.fake.Handler()
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(raw))
		var body struct {
			To   string `json:"to"`
			Text struct {
				Body string `json:"body"`
			} `json:"text"`
		}
		_ = json.Unmarshal(raw, &body)
		p.mu.Lock()
		p.inFlight[body.To]++
		if len(p.inFlight) > 1 {
			p.overlap++
		}
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			if p.inFlight[body.To]--; p.inFlight[body.To] == 0 {
				delete(p.inFlight, body.To)
			}
			p.mu.Unlock()
		}()
		delay, status, code, details := p.decide(body.Text.Body)
		time.Sleep(delay) // the provider's latency the test asks for
		if status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":"(#%d) %s","type":"OAuthException","code":%d,"error_data":{"details":%q},"fbtrace_id":"AbC123"}}`,
				code, whatsapp.Title(code), code, details)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// worker starts one "process" of outbound workers against url: its own Redis connection, asynq
// server and sequencer.
func (e *env) worker(url string, concurrency int, hooks ...redis.Hook) *tasks.Server {
	e.t.Helper()
	client := redis.NewClient(e.client.Options())
	for _, h := range hooks {
		client.AddHook(h)
	}
	e.t.Cleanup(func() { client.Close() })
	api, err := whatsapp.New(whatsapp.Config{BaseURL: url, APIVersion: "v21.0"})
	if err != nil {
		e.t.Fatal(err)
	}
	ks := keyspace.New("t")
	limits := outbound.NewLimits(client, ks, map[string]int{number: 1000}, 0)
	srv := tasks.NewServer(client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: concurrency, ShutdownTimeout: time.Second,
		RetryDelay: func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond }})
	seq := outbound.NewSequencer(client, ks, asynq.NewClientFromRedisClient(client), e.router, slog.New(slog.DiscardHandler))
	outbound.NewWorker(e.router, api, limits, outbound.WorkerOptions{Tokens: map[string]string{number: token}, Sequencer: seq,
		Logger: slog.New(slog.DiscardHandler)}).Register(srv)
	if err := srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(srv.Shutdown)
	return srv
}

// reply posts one reply as ana and returns its message id.
func (e *env) reply(conversationID, text string) string {
	e.t.Helper()
	status, body := e.do("ana", "POST", "/v1/conversations/"+conversationID+"/messages", fmt.Sprintf(`{"text":%q}`, text))
	if status != 202 {
		e.t.Fatalf("reply %q: %d %v", text, status, body)
	}
	return body["message_id"].(string)
}

// accepted is the texts the provider accepted for a recipient, in the order it accepted them.
func (e *env) accepted(recipient string) []string {
	var out []string
	for _, c := range e.fake.Calls() {
		if c.Recipient == recipient && c.Type == "text" {
			var b struct {
				Text struct {
					Body string `json:"body"`
				} `json:"text"`
			}
			_ = json.Unmarshal(c.Body, &b)
			out = append(out, b.Text.Body)
		}
	}
	return out
}

func numbered(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(i + 1)
	}
	return out
}

func manyRetries(c *configs.Config) { c.Outbound.MaxRetry = 25 }

// Twenty replies posted back to back reach a provider that delays every send and fails a third of
// them (retryable 500/131000) in the order written, through two processes of four workers each:
// each exactly once, each recorded sent.
func TestRepliesReachTheProviderInOrder(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true, configure: manyRetries})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511900000101")
	var mu sync.Mutex
	failures := 0
	p := newProvider(t, e, func(string) (time.Duration, int, int, string) {
		mu.Lock()
		defer mu.Unlock()
		delay := time.Duration(rand.IntN(40)) * time.Millisecond
		if rand.IntN(3) == 0 {
			failures++
			return delay, 500, whatsapp.CodeSomethingWentWrong, "try again"
		}
		return delay, 0, 0, ""
	})
	e.worker(p.URL, 4)
	e.worker(p.URL, 4)
	var ids []string
	for _, text := range numbered(20) {
		ids = append(ids, e.reply(card.ConversationID, text))
	}
	for _, id := range ids {
		testutil.Eventually(e.t, 90*time.Second, "every reply sent", func() bool { return e.message(id).Status != "queued" })
		if m := e.message(id); m.Status != "sent" {
			t.Fatalf("message %s is %s: %+v", id, m.Status, m.Error)
		}
	}
	if got := e.accepted("5511900000101"); !slices.Equal(got, numbered(20)) {
		t.Fatalf("the provider accepted %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if failures == 0 {
		t.Fatal("the provider never failed: the test proved nothing about retries")
	}
	t.Logf("%d retryable failures on the way", failures)
}

// A reply the provider refuses for good in the middle is shown failed with Meta's words, and the
// replies after it still go, in order.
func TestPermanentFailureInTheMiddle(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true, configure: manyRetries})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511900000102")
	details := "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
	p := newProvider(t, e, func(text string) (time.Duration, int, int, string) {
		if text == "3" {
			return 0, 400, whatsapp.CodeReengagement, details
		}
		return time.Duration(rand.IntN(20)) * time.Millisecond, 0, 0, ""
	})
	e.worker(p.URL, 4)
	e.worker(p.URL, 4)
	var ids []string
	for _, text := range numbered(6) {
		ids = append(ids, e.reply(card.ConversationID, text))
	}
	for i, id := range ids {
		want := "sent"
		if i == 2 {
			want = "failed"
		}
		m := e.waitStatus(id, want)
		if i == 2 && (m.Error == nil || m.Error.Code != 131047 || m.Error.Summary != "131047 Re-engagement message: "+details) {
			t.Fatalf("the failure shows %+v", m.Error)
		}
	}
	if got := e.accepted("5511900000102"); !slices.Equal(got, []string{"1", "2", "4", "5", "6"}) {
		t.Fatalf("the provider accepted %v", got)
	}
}

// Replies of two conversations go side by side: while one conversation waits on a slow send, the
// other's sends are in flight too.
func TestConversationsGoInParallel(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	a := e.customerWrites("5511900000103")
	b := e.customerWrites("5511900000104")
	p := newProvider(t, e, func(string) (time.Duration, int, int, string) { return 150 * time.Millisecond, 0, 0, "" })
	e.worker(p.URL, 4)
	start := time.Now()
	var ids []string
	for _, text := range numbered(5) {
		ids = append(ids, e.reply(a.ConversationID, text), e.reply(b.ConversationID, text))
	}
	for _, id := range ids {
		e.waitStatus(id, "sent")
	}
	took := time.Since(start)
	if !slices.Equal(e.accepted("5511900000103"), numbered(5)) || !slices.Equal(e.accepted("5511900000104"), numbered(5)) {
		t.Fatalf("accepted %v and %v", e.accepted("5511900000103"), e.accepted("5511900000104"))
	}
	p.mu.Lock()
	overlap := p.overlap
	p.mu.Unlock()
	// One conversation after the other would never overlap (and take 10 × 150 ms at least).
	if overlap < 3 {
		t.Fatalf("the two conversations overlapped %d times and took %v", overlap, took)
	}
	t.Logf("10 replies of 150 ms in two conversations took %v", took)
}

// A campaign of 240 templates already queued does not hold up a conversation's replies: they are
// all sent, in order, within the campaign's first half.
func TestCampaignDoesNotDelayReplies(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true, configure: func(c *configs.Config) {
		c.Agents[0].Channels["whatsapp"] = configs.AgentChannel{Capacity: 500}
	}})
	const campaign = 240
	e.login("ana", "whatsapp")
	e.capacity("ana", 500)
	card := e.customerWrites("5511900000105")
	for i := 0; i < campaign; i++ {
		to := fmt.Sprintf("+55119%08d", 20000+i)
		if status, body := e.do("ana", "POST", "/v1/conversations", strings.Replace(newConversation, "+5511999990001", to, 1)); status != 202 {
			t.Fatalf("template %d: %d %v", i, status, body)
		}
	}
	var ids []string
	for _, text := range numbered(5) {
		ids = append(ids, e.reply(card.ConversationID, text))
	}
	p := newProvider(t, e, func(string) (time.Duration, int, int, string) { return 50 * time.Millisecond, 0, 0, "" })
	e.worker(p.URL, 4)
	e.worker(p.URL, 4)
	for _, id := range ids {
		e.waitStatus(id, "sent")
	}
	templatesSent := 0
	for _, c := range e.fake.Calls() {
		if c.Type == "template" {
			templatesSent++
		}
	}
	// Each reply waits for the one before it, not for the campaign: they finish in its first half.
	if templatesSent >= campaign/2 {
		t.Fatalf("the replies waited behind the campaign (%d of %d templates sent first)", templatesSent, campaign)
	}
	if !slices.Equal(e.accepted("5511900000105"), numbered(5)) {
		t.Fatalf("accepted %v", e.accepted("5511900000105"))
	}
	t.Logf("replies done after %d of %d templates", templatesSent, campaign)
	testutil.Eventually(e.t, 60*time.Second, "the campaign", func() bool { return len(e.fake.Calls()) >= campaign+5 })
}

// Five templates to one customer, posted back to back, are one conversation's sends: the start
// script enqueued each (the inspector lists them, the first pending, the rest asleep), they reach the
// provider in the order posted, and each is woken by the status script of the one before it — no
// wake goes through RunNow, and none waits for its recheck timer.
func TestTemplatesOfAConversationWokenByTheStatusScript(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	var conv string
	var ids []string
	for i := 1; i <= 5; i++ {
		body := strings.Replace(newConversation, `"#123"`, fmt.Sprintf(`"#%d"`, i), 1)
		status, out := e.do("ana", "POST", "/v1/conversations", body)
		if status != 202 || (conv != "" && out["conversation_id"] != conv) {
			t.Fatalf("template %d: %d %v", i, status, out)
		}
		conv = out["conversation_id"].(string)
		ids = append(ids, out["message_id"].(string))
	}
	listed := map[asynq.TaskState]int{}
	for _, id := range ids {
		info, err := e.queue.GetTaskInfo(tasks.QueueTemplates, outbound.TaskID(id))
		if err != nil {
			t.Fatalf("the inspector does not find the send of %s: %v", id, err)
		}
		listed[info.State]++
	}
	if listed[asynq.TaskStatePending] != 1 || listed[asynq.TaskStateScheduled] != 4 {
		t.Fatalf("the inspector lists %v, want 1 pending and 4 scheduled", listed)
	}
	// wakes through tasks.RunNow of the templates queue: its keys are the task and the pending list
	// (asynq's dequeue, on the same client, has more)
	wakes := &redistest.CommandCounter{Match: func(cmd redis.Cmder) bool {
		a := cmd.Args()
		n := cmd.Name()
		return (n == "evalsha" || n == "eval") && len(a) == 7 && a[4] == "asynq:{"+tasks.QueueTemplates+"}:pending"
	}}
	start := time.Now()
	e.worker(e.fake.URL(), 4, wakes)
	for _, id := range ids {
		e.waitStatus(id, "sent")
	}
	elapsed := time.Since(start)
	var order []string
	for _, c := range e.fake.Calls() {
		var b struct {
			Template struct {
				Components []struct {
					Parameters []struct {
						Text string `json:"text"`
					} `json:"parameters"`
				} `json:"components"`
			} `json:"template"`
		}
		_ = json.Unmarshal(c.Body, &b)
		order = append(order, b.Template.Components[0].Parameters[1].Text)
	}
	if want := []string{"#1", "#2", "#3", "#4", "#5"}; !slices.Equal(order, want) {
		t.Fatalf("the provider accepted %v, want %v", order, want)
	}
	if n := wakes.N(); n != 0 {
		t.Errorf("%d wakes through RunNow, want none: the status script wakes the next send", n)
	}
	// Four waits for the recheck timer (5 s) would take 20 s.
	if elapsed > 4*time.Second {
		t.Errorf("five sends took %v: some waited for their timer", elapsed)
	}
}
