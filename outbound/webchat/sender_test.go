package webchat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/routing"
	webchathook "github.com/chatgate/chatgate/webhooks/webchat"
	"github.com/chatgate/chatgate/widget"
)

// statuses records the status updates the sender makes.
type statuses struct {
	mu      sync.Mutex
	updates map[string][]routing.StatusUpdate
}

func (s *statuses) UpdateStatus(_ context.Context, id string, u routing.StatusUpdate) (routing.Message, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates[id] = append(s.updates[id], u)
	return routing.Message{ID: id}, true, nil
}

func (s *statuses) last(id string) routing.StatusUpdate {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.updates[id]) == 0 {
		return routing.StatusUpdate{}
	}
	return s.updates[id][len(s.updates[id])-1]
}

// site is a site's callback URL: it checks the signature and answers status.
type site struct {
	mu     sync.Mutex
	status int
	bodies [][]byte
	bad    int
}

const siteSecret = "site-secret-for-tests"

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get(webchathook.HeaderSignature) != webchathook.Sign([]byte(siteSecret), r.Header.Get(webchathook.HeaderTimestamp), body) {
		s.bad++
	}
	s.bodies = append(s.bodies, body)
	w.WriteHeader(s.status)
}

func (s *site) answer(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// received returns the bodies POSTed so far and how many of them were not signed with the secret.
func (s *site) received() ([][]byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...), s.bad
}

func TestSenderWritesTheVisitorsStreamAndSignsCallbacks(t *testing.T) {
	client := redistest.Client(t)
	ctx := context.Background()
	callback := &site{status: http.StatusNoContent}
	srv := httptest.NewServer(callback)
	defer srv.Close()
	cfg := &configs.Config{}
	cfg.WebChat.Sites = []configs.Site{{ID: "shop", Queue: "q", Secret: "shop-secret"},
		{ID: "hooked", Queue: "q", Secret: siteSecret, CallbackURL: srv.URL}}
	events := widget.NewEventLog(client, keyspace.New("t"), 100, time.Hour)
	recorded := &statuses{updates: map[string][]routing.StatusUpdate{}}
	enqueuer := asynq.NewClientFromRedisClient(client)
	inspector := asynq.NewInspectorFromRedisClient(client)
	s := NewSender(events, recorded, enqueuer, cfg, SenderOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxRetry: 2})
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

	// Not WebChat, or not a configured site: refused, nothing written.
	if err := s.SendReply(ctx, routing.Conversation{ID: "c-0", Channel: "whatsapp", EntryPoint: "shop"}, routing.Message{ID: "m-0"}); !errors.Is(err, errNotWebChat) {
		t.Fatalf("a WhatsApp conversation: %v", err)
	}

	// A site without a callback: the reply is on the visitor's stream and sent.
	shop := routing.Conversation{ID: "c-1", Channel: webchathook.Channel, EntryPoint: "shop", Contact: routing.Contact{ID: "v-1"}}
	if err := s.SendReply(ctx, shop, routing.Message{ID: "m-1", Kind: "text", Text: "Olá", At: at}); err != nil {
		t.Fatal(err)
	}
	got, err := events.Since(ctx, "shop", "v-1", "0")
	if err != nil || len(got) != 1 || got[0].Type != widget.EventMessage || got[0].Message.From != "agent" ||
		got[0].Message.Text != "Olá" || got[0].Message.ConversationID != "c-1" {
		t.Fatalf("visitor's stream: %+v %v", got, err)
	}
	if u := recorded.last("m-1"); u.State != "sent" {
		t.Fatalf("status of m-1: %+v", u)
	}

	// A site with a callback: a task per message, enqueued once however often it is handed over.
	hooked := routing.Conversation{ID: "c-2", Channel: webchathook.Channel, EntryPoint: "hooked", Contact: routing.Contact{ID: "v-2"}}
	for range 2 {
		if err := s.SendReply(ctx, hooked, routing.Message{ID: "m-2", Kind: "text", Text: "Tudo bem?", At: at}); err != nil {
			t.Fatal(err)
		}
	}
	info, err := inspector.GetTaskInfo(tasks.QueueReplies, "webchat-callback:m-2")
	if err != nil || info.Type != TypeCallback || info.MaxRetry != 2 {
		t.Fatalf("callback task: %+v %v", info, err)
	}
	if pending, _ := inspector.ListPendingTasks(tasks.QueueReplies); len(pending) != 1 {
		t.Fatalf("pending callback tasks: %d, want 1", len(pending))
	}

	// The worker POSTs it signed; a 2xx marks it delivered.
	if err := s.processCallback(ctx, asynq.NewTask(TypeCallback, info.Payload)); err != nil {
		t.Fatal(err)
	}
	if u := recorded.last("m-2"); u.State != "delivered" {
		t.Fatalf("status of m-2 after a 2xx: %+v", u)
	}
	bodies, unsigned := callback.received()
	var body CallbackBody
	if err := json.Unmarshal(bodies[0], &body); err != nil || unsigned != 0 {
		t.Fatalf("callback body %s (%d unsigned): %v", bodies[0], unsigned, err)
	}
	if body.Type != CallbackMessageType || body.Site != "hooked" || body.Visitor.ID != "v-2" || body.ConversationID != "c-2" ||
		body.Message == nil || body.Message.ID != "m-2" || body.Message.Text != "Tudo bem?" || !body.Message.At.Equal(at) {
		t.Fatalf("callback body: %s", bodies[0])
	}

	// A permanent refusal marks it failed with the site's status, and is not retried.
	callback.answer(http.StatusGone)
	err = s.processCallback(ctx, asynq.NewTask(TypeCallback, info.Payload))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("a 410 must not be retried: %v", err)
	}
	if u := recorded.last("m-2"); u.State != "failed" || u.Error == nil || u.Error.Code != http.StatusGone {
		t.Fatalf("status of m-2 after a 410: %+v", u)
	}

	// A close is told on the stream and, once, to the callback site.
	s.ConversationClosed(ctx, hooked)
	s.ConversationClosed(ctx, hooked)
	if _, err := inspector.GetTaskInfo(tasks.QueueReplies, "webchat-close:c-2"); err != nil {
		t.Fatalf("close callback task: %v", err)
	}
	closed, _ := events.Since(ctx, "hooked", "v-2", "0")
	if n := len(closed); n < 2 || closed[n-1].Type != widget.EventConversationClosed || closed[n-1].Conversation.ID != "c-2" {
		t.Fatalf("visitor's stream after the close: %+v", closed)
	}
}
