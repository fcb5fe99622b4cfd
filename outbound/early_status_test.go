package outbound_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
	"github.com/chatgate/chatgate/webhooks"
	wawebhook "github.com/chatgate/chatgate/webhooks/whatsapp"
)

// TestStatusesBeforeTheSendsAnswer: Meta's status webhooks for a reply arrive before the Graph
// API's answer to its send reaches the worker (the fake provider posts them, signed, to the real
// webhook handler before it answers). They are kept, and applied the moment the worker records the
// wamid: the reply ends read, not sent.
func TestStatusesBeforeTheSendsAnswer(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	const appSecret = "app-secret-of-the-test"
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.DiscardHandler)})
	webhooks.NewHandler("whatsapp", wawebhook.New(appSecret, "", "tok"), e.router, slog.New(slog.DiscardHandler), webhooks.NewMetrics(nil)).Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })

	var mu sync.Mutex
	var answers []string
	fake := fakeapi.New(fakeapi.Options{Numbers: map[string]string{number: token}, OnAccept: func(c fakeapi.Call) {
		for _, st := range []string{"read", "delivered"} {
			body := simulate.WhatsAppStatusNotification(simulate.WhatsAppStatus{PhoneNumberID: number, MessageID: c.MessageID,
				Status: st, RecipientID: c.Recipient, At: time.Now()})
			req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/webhooks/whatsapp", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, appSecret))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("status webhook: %v", err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			answers = append(answers, string(b))
			mu.Unlock()
		}
	}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	e.fake = fake
	e.startWorker(e.client, 0)

	e.login("ana", "whatsapp")
	card := e.customerWrites("5511988887777")
	status, body := e.do("ana", "POST", "/v1/conversations/"+card.ConversationID+"/messages", `{"text":"Seu pedido saiu para entrega"}`)
	if status != 202 {
		t.Fatalf("reply: %d %v", status, body)
	}
	m := e.waitStatus(body["message_id"].(string), "read")
	if m.ProviderMessageID == "" || m.ProviderMessageID != fake.Calls()[0].MessageID {
		t.Errorf("reply: %+v, want the wamid the provider answered", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(answers) != 2 || !bytes.Contains([]byte(answers[0]), []byte(`"pending":1`)) || !bytes.Contains([]byte(answers[1]), []byte(`"pending":1`)) {
		t.Errorf("webhook answers: %q, want both statuses kept for the send", answers)
	}
	if n := e.client.Exists(context.Background(), "cg:{t}:pstatus:whatsapp:"+m.ProviderMessageID).Val(); n != 0 {
		t.Error("the kept statuses outlived their application")
	}
}
