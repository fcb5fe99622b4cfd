package outbound_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/routing"
)

// windowOf reads window_expires_at from a JSON object (absent: zero time).
func windowOf(t *testing.T, obj any) time.Time {
	t.Helper()
	m, _ := obj.(map[string]any)
	s, ok := m["window_expires_at"].(string)
	if !ok {
		return time.Time{}
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("window_expires_at %q: %v", s, err)
	}
	return at
}

// windows reads the window of a conversation and of its card over HTTP, as the agent sees them.
func (e *env) windows(agent, conversationID string) (conv, card time.Time) {
	e.t.Helper()
	status, body := e.do(agent, "GET", "/v1/conversations/"+conversationID, "")
	if status != 200 {
		e.t.Fatalf("conversation: %d %v", status, body)
	}
	conv = windowOf(e.t, body)
	status, body = e.do(agent, "GET", "/v1/agents/"+agent+"/cards", "")
	if status != 200 {
		e.t.Fatalf("cards: %d %v", status, body)
	}
	cards, _ := body["cards"].([]any)
	for _, c := range cards {
		if c.(map[string]any)["conversation_id"] == conversationID {
			return conv, windowOf(e.t, c)
		}
	}
	e.t.Fatalf("no card of %s in %v", conversationID, body)
	return
}

func TestWindowExpiresAtOverHTTP(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	first := e.clock.Now()
	card := e.customerWrites("5511933332222")
	want := first.Add(24 * time.Hour).UnixMilli()
	if conv, cd := e.windows("ana", card.ConversationID); conv.UnixMilli() != want || cd.UnixMilli() != want {
		t.Fatalf("windows %v (conversation) %v (card), want %v", conv, cd, time.UnixMilli(want))
	}

	// The customer writes again three hours later: the window runs 24 hours from then.
	e.clock.Advance(3 * time.Hour)
	later := e.clock.Now()
	if _, err := e.router.Deliver(context.Background(), []routing.Inbound{{Channel: "whatsapp", EntryPoint: number,
		ContactID: "5511933332222", ContactPhone: "5511933332222", ProviderMessageID: "wamid.again", At: later, Kind: "text", Text: "e aí?"}}); err != nil {
		t.Fatal(err)
	}
	want = later.Add(24 * time.Hour).UnixMilli()
	if conv, cd := e.windows("ana", card.ConversationID); conv.UnixMilli() != want || cd.UnixMilli() != want {
		t.Fatalf("after a second message: windows %v (conversation) %v (card), want %v", conv, cd, time.UnixMilli(want))
	}
	// 25 hours after the first message the refreshed window is still open.
	e.clock.Advance(22 * time.Hour)
	if status, body := e.do("ana", "POST", "/v1/conversations/"+card.ConversationID+"/messages", `{"text":"ainda aqui"}`); status != 202 {
		t.Fatalf("reply in the refreshed window: %d %v", status, body)
	}
	if n := e.tasksIn(tasks.QueueReplies); n != 1 {
		t.Fatalf("%d replies queued", n)
	}
}

// A conversation the agent started with a template has no window until the customer answers: a
// free-text reply is refused at once and nothing is queued.
func TestFreeTextToAnUnansweredTemplateIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	status, body := e.do("ana", "POST", "/v1/conversations", newConversation)
	if status != 202 {
		t.Fatalf("start: %d %v", status, body)
	}
	convID := body["conversation_id"].(string)
	if conv, cd := e.windows("ana", convID); !conv.IsZero() || !cd.IsZero() {
		t.Fatalf("an unanswered template has a window: %v %v", conv, cd)
	}
	status, body = e.do("ana", "POST", "/v1/conversations/"+convID+"/messages", `{"text":"Olá?"}`)
	if status != http.StatusUnprocessableEntity || code(body) != "window_closed" {
		t.Fatalf("free text: %d %v", status, body)
	}
	if n := e.tasksIn(tasks.QueueReplies); n != 0 {
		t.Fatalf("%d replies queued", n)
	}
	msgs, _ := e.router.Messages(context.Background(), convID, 10)
	if len(msgs) != 1 {
		t.Fatalf("%d messages recorded, want the template only", len(msgs))
	}
}

// A reply enqueued behind a backlog of templates is sent long before the backlog drains: the
// replies queue has twice the templates' weight.
func TestReplyOvertakesATemplateBacklog(t *testing.T) {
	const backlog = 200
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	e.capacity("ana", backlog+10)
	card := e.customerWrites("5511922221111")
	for i := 0; i < backlog; i++ {
		to := fmt.Sprintf("+55118%08d", i)
		if status, body := e.do("ana", "POST", "/v1/conversations", strings.Replace(newConversation, "+5511999990001", to, 1)); status != 202 {
			t.Fatalf("template %d: %d %v", i, status, body)
		}
	}
	status, body := e.do("ana", "POST", "/v1/conversations/"+card.ConversationID+"/messages", `{"text":"já te respondo"}`)
	if status != 202 {
		t.Fatalf("reply: %d %v", status, body)
	}
	if n := e.tasksIn(tasks.QueueTemplates); n != backlog {
		t.Fatalf("%d templates waiting", n)
	}
	e.startWorker(e.client, 0)
	e.waitStatus(body["message_id"].(string), "sent")
	testutil.Eventually(e.t, 30*time.Second, "the backlog", func() bool { return e.fake.Accepted() == backlog+1 })
	for i, c := range e.fake.Calls() {
		if c.Type == "text" {
			if i >= backlog/4 {
				t.Fatalf("the reply was sent %d of %d", i+1, backlog+1)
			}
			return
		}
	}
	t.Fatal("the reply was not sent")
}

// Idempotency keys belong to the agent: the same key from two agents starts two conversations.
func TestIdempotencyKeysArePerAgent(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	e.login("bob", "whatsapp")
	s1, b1 := e.do("ana", "POST", "/v1/conversations", newConversation, "Idempotency-Key", "campaign-7")
	s2, b2 := e.do("bob", "POST", "/v1/conversations", strings.Replace(newConversation, "+5511999990001", "+5511999990002", 1),
		"Idempotency-Key", "campaign-7")
	if s1 != 202 || s2 != 202 {
		t.Fatalf("ana %d %v, bob %d %v", s1, b1, s2, b2)
	}
	if b1["conversation_id"] == b2["conversation_id"] || b1["message_id"] == b2["message_id"] {
		t.Fatalf("one conversation for two agents: %v %v", b1, b2)
	}
	for agent, b := range map[string]map[string]any{"ana": b1, "bob": b2} {
		conv, err := e.router.Conversation(context.Background(), b["conversation_id"].(string))
		if err != nil || conv.Agent != agent {
			t.Fatalf("%s's conversation: %+v %v", agent, conv, err)
		}
	}
	if n := e.tasksIn(tasks.QueueTemplates); n != 2 {
		t.Fatalf("%d templates queued, want 2", n)
	}
}
