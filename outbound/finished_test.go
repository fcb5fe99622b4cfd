package outbound_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
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

// asynqScripts counts asynq's scripts on a task of queue whose KEYS[at] is the queue's active list
// and which name key (a key of the queue): at 1 with "processed", its completion (Done); at 2 with
// "retry" or "archived", its retry or its archive.
func asynqScripts(queue string, at int, key string) *redistest.CommandCounter {
	qp := "asynq:{" + queue + "}:"
	return &redistest.CommandCounter{Match: func(cmd redis.Cmder) bool {
		a, n := cmd.Args(), cmd.Name()
		return (n == "evalsha" || n == "eval") && len(a) > 2+at && a[2+at] == qp+"active" && slices.Contains(a, any(qp+key))
	}}
}

// A sent message's task is completed by the status script that records it sent: asynq's own
// completion never reaches Redis, and asynq's inspector counts the task processed, none left active
// or pending. A send retried after a transient failure, and one that fails for good, still go through
// asynq's retry and archive.
func TestSentSendCompletesItsTaskInTheStatusScript(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	e.capacity("ana", 10)
	q := tasks.QueueTemplates
	done, retried, archived := asynqScripts(q, 1, "processed"), asynqScripts(q, 2, "retry"), asynqScripts(q, 2, "archived")
	e.worker(e.fake.URL(), 4, done, retried, archived)
	start := e.startTo

	sent := start("+5511999990021")
	e.waitStatus(sent, "sent")
	e.waitTaskGone(q, sent)
	testutil.Eventually(t, 5*time.Second, "asynq to count the send processed", func() bool {
		info, err := e.queue.GetQueueInfo(q)
		return err == nil && info.Processed == 1 && info.ProcessedTotal == 1 && info.Active == 0 && info.Pending == 0
	})
	time.Sleep(100 * time.Millisecond) // asynq's Done would follow the handler at once
	if n := done.N(); n != 0 {
		t.Fatalf("asynq's completion of the sent message's task reached Redis %d times", n)
	}

	e.fake.AddRule(fakeapi.Rule{Recipient: "+5511999990022", Status: 503, Times: 1})
	again := start("+5511999990022")
	e.fake.AddRule(fakeapi.RejectRecipient("+5511999990023", 131026))
	failed := start("+5511999990023")
	e.waitStatus(again, "sent")
	e.waitStatus(failed, "failed")
	e.waitTaskGone(q, again)
	testutil.Eventually(t, 10*time.Second, "the failed send's task to be archived", func() bool {
		info, err := e.queue.GetTaskInfo(q, outbound.TaskID(failed))
		return err == nil && info.State == asynq.TaskStateArchived
	})
	if retried.N() == 0 || archived.N() == 0 {
		t.Errorf("asynq's retry ran %d times, its archive %d: want both", retried.N(), archived.N())
	}
	if n := done.N(); n != 0 {
		t.Errorf("asynq's completion reached Redis %d times, want none (the retried send's success is the script's)", n)
	}
	// processed: the first send; the retried one's failure and success; the archived one
	if info, err := e.queue.GetQueueInfo(q); err != nil || info.Processed != 4 || info.Active != 0 || info.Pending != 0 {
		t.Errorf("queue after the sends: %+v %v", info, err)
	}
}
