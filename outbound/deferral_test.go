package outbound_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

// replies sends n replies into the conversation of card and returns their message ids.
func (e *env) replies(conversationID string, n int) []string {
	e.t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		status, body := e.do("ana", "POST", "/v1/conversations/"+conversationID+"/messages", fmt.Sprintf(`{"text":"part %d"}`, i))
		if status != 202 {
			e.t.Fatalf("reply %d: %d %v", i, status, body)
		}
		ids = append(ids, body["message_id"].(string))
	}
	return ids
}

func (e *env) taskInfo(queue, messageID string) *asynq.TaskInfo {
	e.t.Helper()
	info, err := e.queue.GetTaskInfo(queue, outbound.TaskID(messageID))
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

// A customer's pace longer than the worker's inline wait puts the task back through asynq; it is
// sent later and the deferral does not use up an attempt.
func TestDeferralThroughAsynqUsesNoAttempt(t *testing.T) {
	const pace = 2500 * time.Millisecond
	e := newEnv(t, envOptions{recipientInterval: pace})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511944443333")
	ids := e.replies(card.ConversationID, 2)
	for _, id := range ids {
		e.waitStatus(id, "sent")
	}
	calls := e.fake.Calls()
	if len(calls) != 2 || len(e.fake.Failures()) != 0 {
		t.Fatalf("%d sends, %d failures", len(calls), len(e.fake.Failures()))
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < pace-100*time.Millisecond {
		t.Fatalf("second message %v after the first; the pace is %v", gap, pace)
	}
	second := ids[0]
	if e.message(ids[1]).ProviderMessageID == calls[1].MessageID {
		second = ids[1]
	}
	info := e.taskInfo(tasks.QueueReplies, second)
	if info.Retried != 0 || !strings.Contains(info.LastErr, "rate limit") {
		t.Fatalf("deferred task: retried %d, last error %q", info.Retried, info.LastErr)
	}
}

// asynq archives a task on its last attempt even for an uncounted deferral. A pace met on the last
// attempt is waited out in place, so the message is still sent.
func TestLastAttemptWaitsOutThePace(t *testing.T) {
	const pace = 4 * time.Second
	e := newEnv(t, envOptions{recipientInterval: pace, configure: func(c *configs.Config) {
		c.Outbound.MaxRetry = 1
		c.Outbound.SendTimeout = 10 * time.Second
	}})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511944442222")
	// The first attempt takes the pace and fails; the retry, the last, finds the pace still running.
	e.fake.AddRule(fakeapi.Rule{Recipient: "+5511944442222", Status: 503, Times: 1})
	id := e.replies(card.ConversationID, 1)[0]
	e.waitStatus(id, "sent")
	if got := e.attempts("5511944442222"); got != 2 {
		t.Fatalf("%d attempts, want a failure and a send", got)
	}
	// The worker records "sent" before asynq marks the task completed: wait for the latter.
	testutil.Eventually(e.t, 5*time.Second, "the task to complete", func() bool {
		return e.taskInfo(tasks.QueueReplies, id).State == asynq.TaskStateCompleted
	})
	if info := e.taskInfo(tasks.QueueReplies, id); info.Retried != 1 {
		t.Fatalf("task: retried %d, state %v", info.Retried, info.State)
	}
	if got := e.pub.statuses("ana", id); len(got) != 1 || got[0] != "sent" {
		t.Fatalf("ana was told %v", got)
	}
}

// A pace too long to wait out within the last attempt's deadline fails the message, so the agent
// hears of it, instead of leaving it queued behind an archived task.
func TestLastAttemptDeferredFailsTheMessage(t *testing.T) {
	e := newEnv(t, envOptions{recipientInterval: 30 * time.Second, configure: func(c *configs.Config) {
		c.Outbound.MaxRetry = 0
	}})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511944441111")
	ids := e.replies(card.ConversationID, 2)
	var sent, paced string
	testutil.Eventually(e.t, 15*time.Second, "one reply sent and one failed", func() bool {
		a, b := e.message(ids[0]), e.message(ids[1])
		switch {
		case a.Status == "sent" && b.Status == "failed":
			sent, paced = ids[0], ids[1]
		case b.Status == "sent" && a.Status == "failed":
			sent, paced = ids[1], ids[0]
		}
		return paced != ""
	})
	m := e.message(paced)
	if m.Error == nil || m.Error.Title != "Sending rate" || !strings.Contains(m.Error.Summary, "sending rate kept the message waiting") {
		t.Fatalf("failure: %+v", m.Error)
	}
	if got := e.pub.statuses("ana", paced); len(got) != 1 || got[0] != "failed" {
		t.Fatalf("ana was told %v", got)
	}
	testutil.Eventually(e.t, 10*time.Second, "the task to be archived", func() bool {
		return e.taskInfo(tasks.QueueReplies, paced).State == asynq.TaskStateArchived
	})
	if got := e.attempts("5511944441111"); got != 1 || e.message(sent).Status != "sent" {
		t.Fatalf("%d sends to the customer", got)
	}
}
