package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
)

// Scenario 1: Redis (AOF, fsync on every write) is killed and restarted five times during a steady
// webhook load; the load retries every non-2xx like Meta. Every acknowledged message is routed
// exactly once, none is lost, each customer has one conversation with one card.
func TestRedisRestartsUnderLoadLoseNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{aof: true, agents: 5})
	base := e.replicas[0].url()
	e.mustOnline(base, "whatsapp", agentID(1), agentID(2), agentID(3), agentID(4), agentID(5))

	customers, perCustomer := pick(120, 1000), pick(3, 5)
	msgs := messages("restart", customers, perCustomer)
	load := newWebhookLoad(e, func() []string { return []string{e.replicas[0].url(), e.replicas[1].url()} })
	done := make(chan struct{})
	go func() {
		defer close(done)
		load.run(msgs, pick(40, 150)) // the load spans the five restarts
	}()

	restarts, down := 0, pick(500*time.Millisecond, 2*time.Second)
	every := pick(time.Second, 4*time.Second)
	for restarts < 5 { // the sleeps are the fault schedule under test
		time.Sleep(every)
		e.redis.Stop(t) // SIGKILL: no chance to flush anything the AOF has not already fsynced
		time.Sleep(down)
		e.redis.Start(t)
		restarts++
	}
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("load did not finish within 3 minutes")
	}
	acked := load.ackedSet()
	routed, duplicated, lost := e.checkRouted(acked, 5*time.Second)
	if len(acked) != len(msgs) || load.given.Load() > 0 {
		t.Errorf("acknowledged %d of %d messages (%d given up)", len(acked), len(msgs), load.given.Load())
	}
	if n := len(e.keys("conv:*")); n != customers {
		t.Errorf("conversations: got %d, want one per customer (%d)", n, customers)
	}
	if load.non2xx.Load()+load.errors.Load() == 0 {
		t.Error("no request failed during five Redis restarts: the restarts did not bite")
	}
	for _, p := range e.replicas {
		if !p.alive() {
			t.Errorf("%s exited during the restarts", p.name)
		}
	}
	figures(t, "redis restarted 5 times", len(msgs), len(acked), routed, lost, duplicated,
		fmt.Sprintf("attempts=%d non2xx=%d conn_errors=%d statuses=%s", load.attempts.Load(), load.non2xx.Load(),
			load.errors.Load(), load.statusSummary()))
}

// Scenario 2: Redis unreachable for 10 s. Webhooks answer 503 (never 2xx without recording),
// presence toggles 503, the processes stay up and healthy; everything resumes by itself.
func TestRedisOutageAnswers503AndResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{aof: true, agents: 2})
	base := [2]string{e.replicas[0].url(), e.replicas[1].url()}
	e.mustOnline(base[0], "whatsapp", agentID(1))

	e.redis.Stop(t)
	outage := pick(10*time.Second, 30*time.Second)
	var pending []message
	webhookStatuses, toggleStatuses := map[int]int{}, map[int]int{}
	readyFailed := false
	start := time.Now()
	for i := 0; time.Since(start) < outage; i++ {
		m := message{from: customer(i % 10), wamid: fmt.Sprintf("wamid.outage.%d", i), text: "during the outage"}
		r, err := e.postWhatsApp(base[i%2], whatsAppMessage(m.from, m.wamid, m.text))
		if err != nil {
			t.Fatalf("webhook during the outage: %v (the process must stay up)", err)
		}
		webhookStatuses[r.status]++
		if r.status/100 == 2 {
			t.Fatalf("webhook answered %d while Redis was down: it cannot have been recorded", r.status)
		}
		if r.status != 503 || r.code == "" {
			t.Errorf("webhook during the outage: got %d %q, want 503 with a JSON code", r.status, r.code)
		}
		pending = append(pending, m)
		tr, err := e.setPresence(base[(i+1)%2], agentID(2), "whatsapp", "online")
		if err != nil {
			t.Fatalf("toggle during the outage: %v", err)
		}
		toggleStatuses[tr.status]++
		if tr.status != 503 {
			t.Errorf("toggle during the outage: got %d %s, want 503", tr.status, tr.body)
		}
		h, err := e.do("GET", base[i%2]+"/healthz", nil, nil)
		if err != nil || h.status != 200 {
			t.Errorf("healthz during the outage: %d %v, want 200 (the process is up)", h.status, err)
		}
		if rz, err := e.do("GET", base[i%2]+"/readyz", nil, nil); err == nil && rz.status == 503 {
			readyFailed = true
		}
		time.Sleep(200 * time.Millisecond) // the probes are paced over the outage
	}
	if !readyFailed {
		t.Error("readyz never answered 503 during the outage")
	}
	e.redis.Start(t)

	// Meta retries: every message answered 503 must now be accepted, without help.
	resumed := testutil.Within(15*time.Second, func() bool {
		r, err := e.postWhatsApp(base[0], whatsAppMessage(pending[0].from, pending[0].wamid, pending[0].text))
		return err == nil && r.status == 200
	})
	if !resumed {
		t.Fatal("webhooks did not resume within 15 s of Redis returning")
	}
	// Each replica notices Redis again at its own next health ping: the first one answering says
	// nothing of the other, so the toggle below waits until every replica is ready.
	for _, p := range e.replicas {
		e.waitHTTP(p.url()+"/readyz", 200)
		if !p.alive() {
			t.Errorf("%s exited during the outage", p.name)
		}
	}
	load := newWebhookLoad(e, func() []string { return base[:] })
	load.run(pending, 0)
	if r, err := e.setPresence(base[1], agentID(2), "whatsapp", "online"); err != nil || r.status != 200 {
		t.Errorf("toggle after the outage: %d %v", r.status, err)
	}
	acked := load.ackedSet()
	routed, duplicated, lost := e.checkRouted(acked, 5*time.Second)
	if len(acked) != len(pending) {
		t.Errorf("after the outage %d of %d messages were accepted", len(acked), len(pending))
	}
	figures(t, fmt.Sprintf("redis unreachable %s", outage), len(pending), len(acked), routed, lost, duplicated,
		fmt.Sprintf("during_outage_webhooks=%v toggles=%v", webhookStatuses, toggleStatuses))
}

// Scenario 3: a serve replica is killed with SIGKILL mid-load. Agents whose streams were on it
// reconnect to the other replica with Last-Event-ID and miss no event; no card stays offered past
// its timeout.
func TestReplicaKilledStreamsResumeOnTheOther(t *testing.T) {
	t.Parallel()
	const offerTimeout = 2 * time.Second
	e := newEnv(t, options{agents: 4, offerTimeout: offerTimeout})
	a, b := e.replicas[0], e.replicas[1]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var readers []*streamReader
	var wg sync.WaitGroup
	reconnects := make([]int, 4)
	for i := 1; i <= 4; i++ {
		s := e.newStreamReader(agentID(i))
		s.lastID = "0-1" // from the first event of the agent, so a comparison with Redis is exact
		readers = append(readers, s)
		wg.Add(1)
		go func(i int, s *streamReader) {
			defer wg.Done()
			target := a
			for ctx.Err() == nil {
				_ = s.follow(ctx, target.url())
				if ctx.Err() != nil {
					return
				}
				target = b // the load balancer sends the reconnect to the replica that is left
				reconnects[i]++
				time.Sleep(100 * time.Millisecond) // a client's pause before it reconnects
			}
		}(i-1, s)
	}
	e.mustOnline(b.url(), "whatsapp", agentID(1), agentID(2), agentID(3), agentID(4))

	msgs := messages("killed", pick(150, 1500), 1)
	load := newWebhookLoad(e, func() []string {
		if a.alive() {
			return []string{a.url(), b.url()}
		}
		return []string{b.url()}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		load.run(msgs, pick(50, 100))
	}()
	// The kill comes mid-load: once a third of the messages is acknowledged.
	testutil.Within(30*time.Second, func() bool { return len(load.ackedSet()) >= len(msgs)/3 })
	a.kill()
	<-done

	// Offers time out and move on until every agent has seen every card; then the logs go quiet.
	quiet := testutil.Within(90*time.Second, func() bool {
		offered, _ := e.client.ZCard(context.Background(), prefix+"offers").Result()
		return offered == 0
	})
	if !quiet {
		t.Fatal("cards were still being offered 90 s after the load")
	}
	// The streams catch up with the last stored event; the counts below say what any of them missed.
	testutil.Within(10*time.Second, func() bool {
		for _, s := range readers {
			stored := e.storedEventIDs(s.agent, "")
			s.mu.Lock()
			caughtUp := len(stored) == 0 || s.seen[stored[len(stored)-1]] > 0
			s.mu.Unlock()
			if !caughtUp {
				return false
			}
		}
		return true
	})
	cancel()
	wg.Wait()

	acked := load.ackedSet()
	routed, duplicated, lost := e.checkRouted(acked, offerTimeout+2*time.Second)
	missed, twice, total := 0, 0, 0
	for i, s := range readers {
		stored := e.storedEventIDs(s.agent, "")
		total += len(stored)
		for _, id := range stored {
			switch n := s.seen[id]; {
			case n == 0:
				missed++
			case n > 1:
				twice++
			}
		}
		if s.resets > 0 {
			t.Errorf("%s: %d stream.reset events; its backlog should have been kept", s.agent, s.resets)
		}
		if reconnects[i] == 0 {
			t.Errorf("%s never reconnected: its stream did not run through the killed replica", s.agent)
		}
	}
	if missed > 0 || twice > 0 {
		t.Errorf("events: %d of %d missed, %d received twice across the reconnects", missed, total, twice)
	}
	if total == 0 {
		t.Fatal("no events at all: the scenario proved nothing")
	}
	figures(t, "serve replica SIGKILLed mid-load", len(msgs), len(acked), routed, lost, duplicated,
		fmt.Sprintf("stream_events=%d missed=%d twice=%d reconnects=%v", total, missed, twice, reconnects))
}

// Scenario 4: the worker is killed while the provider is answering a send. asynq's lease runs out,
// the restarted worker takes the task back, and the send reaches the provider exactly once.
func TestWorkerKilledMidSendIsSentOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{replicas: 1, worker: true, agents: 1, fake: true})
	base := e.replicas[0].url()
	e.mustOnline(base, "whatsapp", agentID(1))
	// The sends hang at the provider long enough to kill the worker in the middle of them.
	inFlight := pick(1, 10) // at most outbound.concurrency (10)
	e.addRule(fmt.Sprintf(`{"delay":"60s","times":%d}`, inFlight))

	ids := map[string]string{} // message id → recipient digits
	for i := 0; i < inFlight; i++ {
		to := fmt.Sprintf("+55119888%05d", i)
		msgID, r := e.startConversation(base, agentID(1), to)
		if r.status != 202 || msgID == "" {
			t.Fatalf("new conversation: %d %s", r.status, r.body)
		}
		ids[msgID] = strings.TrimPrefix(to, "+")
	}
	inspector := e.inspector()
	if !testutil.Within(10*time.Second, func() bool {
		q, err := inspector.GetQueueInfo("templates")
		return err == nil && q.Active == inFlight
	}) {
		t.Fatalf("the %d sends never were all active at once", inFlight)
	}
	// The delay rule is used up (and listed no more) once every request has reached the provider.
	if !testutil.Within(10*time.Second, func() bool { return len(e.fakeRules()) == 0 }) {
		t.Fatalf("the %d sends never all reached the provider: rules left %v", inFlight, e.fakeRules())
	}
	e.worker.kill()
	killedAt := time.Now()
	if n := len(e.fakeCalls()); n != 0 {
		t.Fatalf("the provider accepted sends before the kill (%d recipients)", n)
	}
	// A supervisor restarts it once asynq's lease on the killed worker's tasks can have run out: a
	// worker takes expired leases back as it starts (and else only once a minute).
	time.Sleep(time.Until(killedAt.Add(leaseRunsOut)))
	e.worker = e.startWorker("worker-restarted")

	sent := testutil.Within(3*time.Minute, func() bool {
		for id := range ids {
			if e.messageStatus(id) != "sent" {
				return false
			}
		}
		return true
	})
	if !sent {
		t.Fatalf("not every message sent within 3 minutes of the kill")
	}
	recovered := time.Since(killedAt)
	time.Sleep(3 * time.Second) // a second send, if any, would land now
	calls, duplicated := e.fakeCalls(), 0
	for _, to := range ids {
		if calls[to] != 1 {
			t.Errorf("the provider accepted %d sends to %s, want exactly 1", calls[to], to)
			duplicated += max(0, calls[to]-1)
		}
	}
	figures(t, "worker SIGKILLed mid-send", inFlight, inFlight, len(calls), inFlight-len(calls), duplicated,
		fmt.Sprintf("in_flight_at_kill=%d recovered_after=%s", inFlight, recovered.Round(time.Second)))
}

// Scenario 5: the provider throttles (429, Meta's 130429 with Retry-After) and then fails (5xx) for a
// while. Every send is retried and delivered once afterwards; permanent errors are archived at
// once, not retried.
func TestProviderThrottlingAndOutageThenEverythingDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{replicas: 1, worker: true, agents: 1, fake: true})
	base := e.replicas[0].url()
	e.mustOnline(base, "whatsapp", agentID(1))

	rejected := []string{"+5511970000001", "+5511970000002"}
	for _, to := range rejected {
		e.addRule(fmt.Sprintf(`{"recipient":%q,"code":131026}`, to)) // undeliverable: permanent
	}
	throttle := e.addRule(`{"status":429,"code":130429,"retry_after":"1s"}`)
	window := pick(8*time.Second, 30*time.Second)
	failing := time.Now()

	n := pick(20, 100)
	ids := map[string]string{} // message id → recipient digits
	for i := 0; i < n; i++ {
		to := fmt.Sprintf("+55119600%05d", i)
		id, r := e.startConversation(base, agentID(1), to)
		if r.status != 202 {
			t.Fatalf("new conversation %d: %d %s", i, r.status, r.body)
		}
		ids[id] = strings.TrimPrefix(to, "+")
	}
	for _, to := range rejected {
		if _, r := e.startConversation(base, agentID(1), to); r.status != 202 {
			t.Fatalf("new conversation to %s: %d %s", to, r.status, r.body)
		}
	}
	time.Sleep(window / 2) // the provider's failure schedule under test
	e.removeRule(throttle)
	outage := e.addRule(`{"status":503}`)
	time.Sleep(window - time.Since(failing)) // the provider's failure schedule under test
	e.removeRule(outage)
	recoveredAt := time.Now()

	delivered := testutil.Within(2*time.Minute, func() bool {
		for id := range ids {
			if e.messageStatus(id) != "sent" {
				return false
			}
		}
		return true
	})
	if !delivered {
		var late []string
		for id := range ids {
			if s := e.messageStatus(id); s != "sent" {
				late = append(late, id+"="+s)
			}
		}
		t.Fatalf("not sent within 2 minutes of the provider recovering: %v", late)
	}
	drained := time.Since(recoveredAt)
	calls := e.fakeCalls()
	duplicated := 0
	for _, to := range ids {
		if calls[to] != 1 {
			t.Errorf("recipient %s received %d sends, want 1", to, calls[to])
			duplicated += max(0, calls[to]-1)
		}
	}
	failures := e.fakeFailures()
	if failures[429] == 0 || failures[503] == 0 {
		t.Errorf("the fake answered %v: both throttling (429) and failures (503) must have been seen", failures)
	}
	archived, err := e.inspector().ListArchivedTasks("templates")
	if err != nil {
		t.Fatal(err)
	}
	if len(archived) != len(rejected) {
		t.Errorf("archived tasks: got %d, want the %d permanent failures", len(archived), len(rejected))
	}
	for _, task := range archived {
		if task.Retried != 0 || !strings.Contains(task.LastErr, "131026") {
			t.Errorf("archived task %s: retried %d, last error %q; want archived at once with 131026", task.ID, task.Retried, task.LastErr)
		}
	}
	figures(t, fmt.Sprintf("provider throttling then 5xx for %s", window), n, n, n-duplicated, 0, duplicated,
		fmt.Sprintf("provider_answers=%v archived=%d drained_after=%s", failures, len(archived), drained.Round(100*time.Millisecond)))
}

// Scenario 6: each webhook is delivered five times at once, to two replicas. One card and one
// message come of it.
func TestSameWebhookFiveTimesAtOnceToTwoReplicas(t *testing.T) {
	t.Parallel()
	runRedelivery(t, newEnv(t, options{agents: 2}))
}

func runRedelivery(t *testing.T, e *env) {
	base := [2]string{e.replicas[0].url(), e.replicas[1].url()}
	e.mustOnline(base[0], "whatsapp", agentID(1), agentID(2))
	n := pick(30, 300)
	statuses := map[int]int{}
	var mu sync.Mutex
	acked := map[string]bool{}
	for i := 0; i < n; i++ {
		m := message{from: customer(1000 + i), wamid: fmt.Sprintf("wamid.redelivered.%d", i), text: "once"}
		body := whatsAppMessage(m.from, m.wamid, m.text)
		var wg sync.WaitGroup
		for k := 0; k < 5; k++ {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				r, err := e.postWhatsApp(base[k%2], body)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("redelivery: %v", err)
					return
				}
				statuses[r.status]++
				if r.status == 200 {
					acked[m.wamid] = true
				}
			}(k)
		}
		wg.Wait()
	}
	if statuses[200] != 5*n {
		t.Errorf("answers: %v, want every one of the %d deliveries acknowledged with 200", statuses, 5*n)
	}
	routed, duplicated, lost := e.checkRouted(acked, 5*time.Second)
	st := e.routedState(5 * time.Second)
	if st.conversations != n {
		t.Errorf("conversations: got %d, want %d", st.conversations, n)
	}
	cards := 0
	for _, c := range st.cardsByState {
		cards += c
	}
	if cards != n {
		t.Errorf("cards: got %d (%v), want one per conversation (%d)", cards, st.cardsByState, n)
	}
	figures(t, "same webhook 5 times at once to 2 replicas", 5*n, len(acked), routed, lost, duplicated,
		fmt.Sprintf("deliveries=%d conversations=%d cards=%d", 5*n, st.conversations, cards))
}
