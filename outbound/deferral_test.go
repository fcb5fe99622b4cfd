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
	// The deferred task is seen while it waits (a finished send's task is deleted).
	var deferred *asynq.TaskInfo
	testutil.Eventually(e.t, 10*time.Second, "a reply deferred by the pace", func() bool {
		for _, id := range ids {
			if info, err := e.queue.GetTaskInfo(tasks.QueueReplies, outbound.TaskID(id)); err == nil &&
				info.State == asynq.TaskStateRetry && strings.Contains(info.LastErr, "rate limit") {
				deferred = info
				return true
			}
		}
		return false
	})
	if deferred.Retried != 0 {
		t.Fatalf("deferred task: retried %d, last error %q", deferred.Retried, deferred.LastErr)
	}
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
	if deferred.ID != outbound.TaskID(second) {
		t.Fatalf("deferred %s, but %s was sent second", deferred.ID, second)
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
	// The worker records "sent" before asynq deletes the finished task: wait for the latter.
	e.waitTaskGone(tasks.QueueReplies, id)
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
