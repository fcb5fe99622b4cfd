package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/testutil"
)

// Scenario: twenty replies of one conversation posted back to back, two worker processes, a
// provider that delays every send and fails some (5xx, retried), and the worker process holding one
// of the sends SIGKILLed while the provider is answering it. The sequence waits for asynq to hand
// the dead worker's task back, then resumes: the provider accepts the twenty in the order written,
// each exactly once (the send cut by the kill never completed at the provider).
func TestRepliesInOrderThroughAWorkerKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{replicas: 1, worker: true, agents: 1, fake: true})
	second := e.startWorker("worker2")
	base := e.replicas[0].url()
	e.mustOnline(base, "whatsapp", agentID(1))
	a01 := bearer(t, agentID(1), auth.RoleAgent)
	from := customer(4242)
	digits := strings.TrimPrefix(from, "+")
	if r, err := e.postWhatsApp(base, whatsAppMessage(from, "wamid.ordered.first", "Oi")); err != nil || r.status != 200 {
		t.Fatalf("webhook: %d %v", r.status, err)
	}
	_, convID := e.acceptOnlyCard(base, "a01", 10*time.Second)

	// Every send takes a while; the first three answers are 500s (retried).
	e.addRule(`{"delay":"80ms"}`)
	e.addRule(`{"status":500,"times":3}`)
	var ids []string
	for i := 1; i <= 20; i++ {
		r, err := e.do("POST", base+"/v1/conversations/"+convID+"/messages", fmt.Appendf(nil, `{"text":"%d"}`, i), a01)
		if err != nil || r.status != 202 {
			t.Fatalf("reply %d: %d %s %v", i, r.status, r.body, err)
		}
		var out struct {
			MessageID string `json:"message_id"`
		}
		_ = json.Unmarshal(r.body, &out)
		ids = append(ids, out.MessageID)
	}

	// Once eight are through, the next send hangs at the provider; its worker process is killed.
	if !testutil.Within(60*time.Second, func() bool { return len(e.acceptedTexts(digits)) >= 8 }) {
		t.Fatalf("only %v accepted", e.acceptedTexts(digits))
	}
	e.addRule(`{"delay":"60s","times":1}`) // used up by the send it holds
	inspector := e.inspector()
	var holder *process
	if !testutil.Within(20*time.Second, func() bool {
		servers, err := inspector.Servers()
		if err != nil {
			return false
		}
		for _, s := range servers {
			for _, w := range s.ActiveWorkers {
				if w.Queue != "replies" {
					continue
				}
				for _, p := range []*process{e.worker, second} {
					if p.cmd.Process.Pid == s.PID && time.Since(w.Started) > 500*time.Millisecond {
						holder = p
					}
				}
			}
		}
		return holder != nil
	}) {
		t.Fatal("no send of the conversation was ever held at the provider")
	}
	before := e.acceptedTexts(digits)
	holder.kill()
	killedAt := time.Now()
	e.addRule(`{"status":503,"times":2}`) // more trouble after the crash
	// The killed one is restarted once asynq's lease on its task can have run out (see leaseRunsOut).
	time.Sleep(time.Until(killedAt.Add(leaseRunsOut)))
	e.startWorker("worker-restarted")

	if !testutil.Within(3*time.Minute, func() bool {
		for _, id := range ids {
			if e.messageStatus(id) != "sent" {
				return false
			}
		}
		return true
	}) {
		statuses := map[string]string{}
		for i, id := range ids {
			statuses[fmt.Sprint(i+1)] = e.messageStatus(id)
		}
		t.Fatalf("not all sent within 3 minutes of the kill: %v; accepted %v", statuses, e.acceptedTexts(digits))
	}
	resumed := time.Since(killedAt)
	time.Sleep(2 * time.Second) // a second send, if any, would land now
	want := make([]string, 20)
	for i := range want {
		want[i] = fmt.Sprint(i + 1)
	}
	got := e.acceptedTexts(digits)
	if !slices.Equal(got, want) {
		t.Fatalf("the provider accepted %v, want 1…20 once each in order", got)
	}
	figures(t, "worker SIGKILLed mid-sequence", 20, 20, len(got), 20-len(got), 0,
		fmt.Sprintf("accepted_before_kill=%d all_sent_after=%s", len(before), resumed.Round(time.Second)))
}

// acceptedTexts is the text bodies the fake accepted for a recipient, in the order it took them.
func (e *env) acceptedTexts(recipient string) []string {
	e.t.Helper()
	r, err := e.do("GET", e.fakeURL+"/_fake/calls", nil, nil)
	if err != nil || r.status != 200 {
		e.t.Fatalf("fake calls: %v %d", err, r.status)
	}
	var out struct {
		Calls []struct {
			Recipient string          `json:"recipient"`
			Type      string          `json:"type"`
			Body      json.RawMessage `json:"body"`
		} `json:"calls"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatal(err)
	}
	var texts []string
	for _, c := range out.Calls {
		if c.Recipient != recipient || c.Type != "text" {
			continue
		}
		var b struct {
			Text struct {
				Body string `json:"body"`
			} `json:"text"`
		}
		_ = json.Unmarshal(c.Body, &b)
		texts = append(texts, b.Text.Body)
	}
	return texts
}
