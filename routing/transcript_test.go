package routing

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/presence"
)

// The transcript: JSON with every message, or text for people; for the holder and supervisors only.
func TestTranscriptForHolderAndSupervisors(t *testing.T) {
	e := newEnv(t, "longest_idle")
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "c1", "Oi, meu pedido?")
	card := e.cards(t, "ana")[0]
	if _, err := e.router.Accept(context.Background(), card.ID, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.router.Reply(context.Background(), card.ConversationID, "ana", Outbound{Kind: "text", Text: "Já vejo.\nUm momento."}); err != nil {
		t.Fatal(err)
	}
	path := "/v1/conversations/" + card.ConversationID + "/transcript"
	var tr Transcript
	if code := e.call(t, "GET", path, "ana", auth.RoleAgent, &tr); code != http.StatusOK || len(tr.Messages) != 2 ||
		tr.Conversation.ID != card.ConversationID || tr.Messages[1].Text != "Já vejo.\nUm momento." {
		t.Fatalf("holder: %d %+v", code, tr)
	}
	if code := e.call(t, "GET", path, "sup", auth.RoleSupervisor, &tr); code != http.StatusOK {
		t.Fatalf("supervisor: %d", code)
	}
	var eb errorBody
	if code := e.call(t, "GET", path, "bob", auth.RoleAgent, &eb); code != http.StatusForbidden || eb.Error.Code != "not_your_conversation" {
		t.Fatalf("another agent: %d %+v", code, eb)
	}
	eb = errorBody{}
	if code := e.call(t, "GET", path+"?format=pdf", "ana", auth.RoleAgent, &eb); code != http.StatusBadRequest || eb.Error.Code != "invalid_format" {
		t.Fatalf("bad format: %d %+v", code, eb)
	}
	eb = errorBody{}
	if code := e.call(t, "GET", "/v1/conversations/01UNKNOWN/transcript", "sup", auth.RoleSupervisor, &eb); code != http.StatusNotFound {
		t.Fatalf("unknown: %d %+v", code, eb)
	}
	text := e.rawCall(t, path+"?format=text", "ana")
	for _, want := range []string{"Conversation " + card.ConversationID, "c1: Oi, meu pedido?", "agent ana: Já vejo.\n    Um momento."} {
		if !strings.Contains(text, want) {
			t.Fatalf("text transcript lacks %q:\n%s", want, text)
		}
	}
}

func (e *env) rawCall(t *testing.T, path, agent string) string {
	t.Helper()
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	NewHandler(e.router).Register(app.Group("/v1", auth.NewVerifier(httpSecret, "", "chatgate").Middleware()))
	tok, _ := auth.Mint(httpSecret, "chatgate", agent, auth.RoleAgent, time.Hour, time.Now())
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := app.Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}
