package outbound_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound"
)

// waitTaskGone waits for asynq to delete the finished send task of a message.
func (e *env) waitTaskGone(queue, messageID string) {
	e.t.Helper()
	key := "asynq:{" + queue + "}:t:" + outbound.TaskID(messageID)
	testutil.Eventually(e.t, 5*time.Second, "the send task of "+messageID+" to be deleted", func() bool {
		return e.client.Exists(context.Background(), key).Val() == 0
	})
}

// processed is how many tasks of a queue asynq has finished.
func (e *env) processed(queue string) int64 {
	n, _ := e.client.Get(context.Background(), "asynq:{"+queue+"}:processed").Int64()
	return n
}

// A finished send leaves nothing behind in Redis: asynq deletes its task (no completed task is kept)
// and its conversation's sequence empties, for a template (enqueued by the start script) and a reply.
func TestFinishedSendLeavesNoTask(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login("ana", "whatsapp")
	status, body := e.do("ana", "POST", "/v1/conversations", newConversation)
	if status != 202 {
		t.Fatalf("start: %d %v", status, body)
	}
	template := body["message_id"].(string)
	card := e.customerWrites("5511944445555")
	reply := e.reply(card.ConversationID, "hello")
	e.waitStatus(template, "sent")
	e.waitStatus(reply, "sent")
	e.waitTaskGone(tasks.QueueTemplates, template)
	e.waitTaskGone(tasks.QueueReplies, reply)
	ctx := context.Background()
	for _, q := range []string{tasks.QueueTemplates, tasks.QueueReplies} {
		if n := e.client.ZCard(ctx, "asynq:{"+q+"}:completed").Val(); n != 0 {
			t.Errorf("%s keeps %d completed tasks", q, n)
		}
		if n := e.processed(q); n != 1 {
			t.Errorf("%s processed %d tasks, want 1", q, n)
		}
	}
	if keys := e.client.Keys(ctx, "cg:{t}:ord:*").Val(); len(keys) != 0 {
		t.Errorf("sequences left: %v", keys)
	}
}

// A send enqueued again once its message is sent (its task id is free: asynq keeps no finished task)
// reaches the provider no more: re-admitted to its conversation's sequence, or put on asynq outside
// it (as a run after a crash finds itself), it finds the message sent and sends nothing. The
// conversation's next reply still goes.
func TestSendEnqueuedAgainAfterItFinishedSendsNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login("ana", "whatsapp")
	ctx := context.Background()
	card := e.customerWrites("5511944445555")
	id := e.reply(card.ConversationID, "once")
	sent := e.waitStatus(id, "sent")
	e.waitTaskGone(tasks.QueueReplies, id)
	conv, err := e.router.Conversation(ctx, card.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	task, err := outbound.NewTextTask(outbound.Send{MessageID: id, ConversationID: conv.ID, PhoneNumberID: number,
		To: conv.Contact.Phone, Text: "once"}, outbound.TaskOptions{MaxRetry: 3})
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(e.client)
	seq := outbound.NewSequencer(e.client, keyspace.New("t"), client, e.router, nil)
	before := e.processed(tasks.QueueReplies)
	ranAgain := func(n int64) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, "the task enqueued again to run", func() bool {
			return e.processed(tasks.QueueReplies) == before+n
		})
		e.waitTaskGone(tasks.QueueReplies, id)
	}

	// As the service enqueues a send: admitted to the sequence, then put on asynq.
	if err := seq.Enqueue(ctx, task); err != nil {
		t.Fatalf("enqueue again through the sequencer: %v", err)
	}
	ranAgain(1)
	// Straight onto asynq, outside the sequence.
	at := asynq.NewTaskWithHeaders(task.Type, task.Payload, map[string]string{ordered.HeaderKey: task.Key})
	if _, err := client.EnqueueContext(ctx, at, append(task.Opts, asynq.Queue(task.Queue), asynq.TaskID(task.ID))...); err != nil {
		t.Fatalf("enqueue again on asynq: %v", err)
	}
	ranAgain(2)

	if got := e.attempts("5511944445555"); got != 1 {
		t.Fatalf("the provider got %d sends, want 1", got)
	}
	if m := e.message(id); m.Status != "sent" || m.ProviderMessageID != sent.ProviderMessageID {
		t.Fatalf("message after the runs again: %+v", m)
	}
	if got := e.pub.statuses("ana", id); len(got) != 1 || got[0] != "sent" {
		t.Fatalf("ana was told %v", got)
	}
	next := e.reply(card.ConversationID, "after")
	e.waitStatus(next, "sent")
	if got := strings.Join(e.accepted("5511944445555"), ","); got != "once,after" {
		t.Fatalf("the provider accepted %s", got)
	}
	if keys := e.client.Keys(ctx, "cg:{t}:ord:*").Val(); len(keys) != 0 {
		t.Errorf("sequences left: %v", keys)
	}
}
