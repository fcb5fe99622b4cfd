package routing

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/openapitest"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/presence"
)

// supervisorRecorder is a SupervisorPublisher that keeps what supervisors were told.
type supervisorRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (s *supervisorRecorder) PublishSupervisor(_ context.Context, ev Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	return nil
}

func (s *supervisorRecorder) count(typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// floorEnv is the test configuration with the floor's settings on sales (whatsapp and webchat).
func floorEnv(t *testing.T, edit func(q *configs.Queue)) (*env, *supervisorRecorder) {
	t.Helper()
	cfg := testConfig("longest_idle")
	q := &cfg.Queues[0]
	q.ReofferAfter = time.Minute
	q.Dispositions = []configs.Disposition{{ID: "resolved", Label: "Resolved", Labels: map[string]string{"pt-BR": "Resolvido"}}, {ID: "sale", Label: "Sale"}}
	if edit != nil {
		edit(q)
	}
	e := newEnvWith(t, redistest.Client(t), cfg, clock.NewFake(t0))
	sup := &supervisorRecorder{}
	e.router.SetSupervisorPublisher(sup)
	return e, sup
}

// accepted brings a customer on (channel, entry) to agent, who accepts; it returns the card.
func (e *env) accepted(t *testing.T, agent, ch, entry, contact string) Card {
	t.Helper()
	e.customer(t, ch, entry, contact, "hello")
	for _, c := range e.cards(t, agent) {
		if c.State == CardOffered && c.Contact != nil && c.Contact.ID == contact {
			card, err := e.router.Accept(context.Background(), c.ID, agent)
			if err != nil {
				t.Fatal(err)
			}
			return card
		}
	}
	t.Fatalf("%s was not offered %s's conversation: %+v", agent, contact, e.cards(t, agent))
	return Card{}
}

func (e *env) load(agent, ch string) int {
	n, _ := e.client.HGet(context.Background(), e.router.keys.load(agent), ch).Int()
	return n
}

func (e *env) firstInLine(t *testing.T, queue, ch string) string {
	t.Helper()
	ids := e.client.ZRange(context.Background(), e.router.keys.waiting(queue, ch), 0, 0).Val()
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// TestTransferToAnAgent: ana transfers a conversation to bob with a note: it is offered to bob only,
// leaves ana's load at once, is counted and recorded on the conversation, and both (and the
// supervisors) are told; bob sees who transferred it and the note. Bob declines: the card goes first
// in line in its queue, ahead of a customer who waited longer. The same with a timeout.
func TestTransferToAnAgent(t *testing.T) {
	for _, refuse := range []string{"decline", "timeout"} {
		t.Run(refuse, func(t *testing.T) {
			ctx := context.Background()
			e, sup := floorEnv(t, nil)
			// c0 waits, refused by ana and then bob: it waited longer than the conversation transferred.
			e.set(t, "ana", "whatsapp", presence.Online, "")
			e.customer(t, "whatsapp", "100", "c0", "first")
			c0 := e.cards(t, "ana")[0]
			if _, err := e.router.Decline(ctx, c0.ID, "ana"); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Second)
			card := e.accepted(t, "ana", "whatsapp", "100", "c1")
			e.set(t, "bob", "whatsapp", presence.Online, "")
			if _, err := e.router.Decline(ctx, c0.ID, "bob"); err != nil {
				t.Fatal(err)
			}
			conv, err := e.router.Transfer(ctx, card.ConversationID, TransferRequest{ToAgent: "bob", Note: "wants a refund", By: "ana"})
			if err != nil {
				t.Fatal(err)
			}
			if conv.Agent != "bob" || conv.Transfers != 1 || conv.LastTransfer == nil || conv.LastTransfer.By != "ana" ||
				conv.LastTransfer.From != "ana" || conv.LastTransfer.ToAgent != "bob" || conv.LastTransfer.Note != "wants a refund" {
				t.Fatalf("conversation after the transfer: %+v %+v", conv, conv.LastTransfer)
			}
			h := e.client.HGetAll(ctx, e.router.keys.conv(card.ConversationID)).Val()
			if h["transfers"] != "1" || h["last_transfer_by"] != "ana" || h["last_transfer_note"] != "wants a refund" {
				t.Fatalf("conversation hash: %v", h)
			}
			// In the same step: ana counts as having refused it (a re-offer entry is due after reoffer_after).
			if _, err := e.client.ZScore(ctx, e.router.keys.refused(card.ID), "ana").Result(); err != nil {
				t.Fatalf("ana is not among the card's refusers: %v", err)
			}
			if at, err := e.client.ZScore(ctx, e.router.keys.reoffers(), card.ID+"|ana").Result(); err != nil || int64(at) != e.clock.Now().Add(time.Minute).UnixMilli() {
				t.Fatalf("ana's re-offer entry: %v %v", at, err)
			}
			if h := e.client.HGetAll(ctx, e.router.keys.card(card.ID)).Val(); h["transfer_pending"] != "bob" || h["state"] != CardOffered ||
				e.client.ZScore(ctx, e.router.keys.offers(), card.ID).Val() != float64(e.clock.Now().Add(30*time.Second).UnixMilli()) {
				t.Fatalf("card after the transfer: %v", h)
			}
			if len(e.cards(t, "ana")) != 0 || e.load("ana", "whatsapp") != 0 || e.load("bob", "whatsapp") != 1 {
				t.Fatalf("ana holds %v (load %d), bob load %d", e.cards(t, "ana"), e.load("ana", "whatsapp"), e.load("bob", "whatsapp"))
			}
			got := e.cards(t, "bob")
			if len(got) != 1 || got[0].State != CardOffered || got[0].Transfer == nil || got[0].Transfer.By != "ana" || got[0].Transfer.Note != "wants a refund" {
				t.Fatalf("bob's cards: %+v", got)
			}
			if e.pub.count("ana", EventConversationTransferred) != 1 || e.pub.count("bob", EventConversationTransferred) != 1 ||
				e.pub.count("bob", EventCardOffered) != 2 || sup.count(EventConversationTransferred) != 1 {
				t.Fatalf("events: ana %d, bob %d/%d, supervisors %d", e.pub.count("ana", EventConversationTransferred), e.pub.count("bob", EventConversationTransferred), e.pub.count("bob", EventCardOffered), sup.count(EventConversationTransferred))
			}
			if refuse == "decline" {
				if _, err := e.router.Decline(ctx, card.ID, "bob"); err != nil {
					t.Fatal(err)
				}
			} else {
				e.clock.Advance(31 * time.Second)
				e.sweep(t)
			}
			if line := e.client.ZRange(ctx, e.router.keys.waiting("sales", "whatsapp"), 0, -1).Val(); len(line) != 2 || line[0] != card.ID || line[1] != c0.ID {
				t.Fatalf("after bob's %s, the line is %v, want the transferred card %s, then %s", refuse, line, card.ID, c0.ID)
			}
			if c, _ := e.router.Card(ctx, card.ID); c.State != CardWaiting || c.Agent != "" {
				t.Fatalf("card after bob's %s: %+v", refuse, c)
			}
		})
	}
}

// TestTransferToAnAgentRefusals: each reason the target cannot take it is a 409-style refusal
// naming why, and nothing changes; so are a caller that does not hold it and a card not accepted.
func TestTransferToAnAgentRefusals(t *testing.T) {
	ctx := context.Background()
	e, _ := floorEnv(t, func(q *configs.Queue) { q.WrapUp = time.Minute })
	e.set(t, "ana", "whatsapp", presence.Online, "")
	wa := e.accepted(t, "ana", "whatsapp", "100", "c2")
	before := e.client.HGetAll(ctx, e.router.keys.card(wa.ID)).Val()
	try := func(to, want string) {
		t.Helper()
		_, err := e.router.Transfer(ctx, wa.ConversationID, TransferRequest{ToAgent: to, By: "ana"})
		var na *AgentNotAvailableError
		if !errors.As(err, &na) || na.Reason != want {
			t.Fatalf("transfer to %s: %v, want agent not available (%s)", to, err, want)
		}
		if after := e.client.HGetAll(ctx, e.router.keys.card(wa.ID)).Val(); after["state"] != before["state"] || after["agent"] != "ana" ||
			after["transfer_pending"] != "" || e.load("ana", "whatsapp") != 1 {
			t.Fatalf("a refused transfer changed the card: %v (ana's load %d)", after, e.load("ana", "whatsapp"))
		}
		if n := e.client.HGet(ctx, e.router.keys.conv(wa.ConversationID), "transfers").Val(); n != "" {
			t.Fatalf("a refused transfer was counted: %q", n)
		}
	}
	try("bob", "offline")
	e.set(t, "bob", "whatsapp", presence.Online, "")
	e.set(t, "bob", "whatsapp", presence.Paused, "lunch")
	try("bob", "paused")
	try("cat", "channel_not_enabled")
	try("ana", "already_holder")
	// bob at capacity (2 on whatsapp).
	e.set(t, "bob", "whatsapp", presence.Online, "")
	e.set(t, "ana", "whatsapp", presence.Paused, "lunch")
	e.accepted(t, "bob", "whatsapp", "100", "c3")
	b2 := e.accepted(t, "bob", "whatsapp", "100", "c4")
	try("bob", "at_capacity")
	// bob in wrap-up (sales has wrap_up 1m): one slot free, but wrapping up.
	if _, err := e.router.Close(ctx, b2.ID, "bob", false); err != nil {
		t.Fatal(err)
	}
	try("bob", "wrap_up")
	if _, err := e.router.Transfer(ctx, wa.ConversationID, TransferRequest{ToAgent: "nobody", By: "ana"}); !errors.Is(err, ErrUnknownAgent) {
		t.Fatalf("unknown agent: %v", err)
	}
	// Not the holder; and the holder of a card only offered.
	if _, err := e.router.Transfer(ctx, wa.ConversationID, TransferRequest{ToQueue: "sales", By: "bob"}); !errors.Is(err, ErrNotYours) {
		t.Fatalf("bob transferring ana's conversation: %v", err)
	}
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.customer(t, "whatsapp", "100", "c5", "hi")
	for _, c := range e.cards(t, "ana") {
		if c.State == CardOffered {
			if _, err := e.router.Transfer(ctx, c.ConversationID, TransferRequest{ToQueue: "sales", By: "ana"}); !errors.Is(err, ErrWrongState) {
				t.Fatalf("transferring an offer not accepted: %v", err)
			}
		}
	}
}

// TestTransferToAQueue: a webchat conversation of sales goes first in line in support (which serves
// webchat) and on to cat, with the note; a whatsapp one cannot go to support (422 over HTTP); a
// supervisor transfers a conversation it does not hold.
func TestTransferToAQueue(t *testing.T) {
	ctx := context.Background()
	e, sup := floorEnv(t, nil)
	e.set(t, "ana", "whatsapp", presence.Online, "")
	wa := e.accepted(t, "ana", "whatsapp", "100", "c1")
	if _, err := e.router.Transfer(ctx, wa.ConversationID, TransferRequest{ToQueue: "support", By: "ana"}); !errors.Is(err, ErrQueueChannel) {
		t.Fatalf("whatsapp to support: %v", err)
	}
	if _, err := e.router.Transfer(ctx, wa.ConversationID, TransferRequest{ToQueue: "nope", By: "ana"}); !errors.Is(err, ErrUnknownQueue) {
		t.Fatalf("unknown queue: %v", err)
	}
	// A webchat conversation in support, held by cat, goes to sales first in line: bob gets it.
	e.set(t, "cat", "webchat", presence.Online, "")
	wc := e.accepted(t, "cat", "webchat", "shop", "c2")
	e.set(t, "dan", "webchat", presence.Online, "")
	e.set(t, "dan", "webchat", presence.Paused, "lunch")
	conv, err := e.router.Transfer(ctx, wc.ConversationID, TransferRequest{ToQueue: "sales", Note: "a purchase", By: "cat"})
	if err != nil {
		t.Fatal(err)
	}
	if conv.Queue != "sales" || conv.Transfers != 1 || conv.LastTransfer.ToQueue != "sales" || conv.Agent != "" {
		t.Fatalf("after transfer to sales: %+v", conv)
	}
	if first := e.firstInLine(t, "sales", "webchat"); first != wc.ID {
		t.Fatalf("first in sales/webchat: %q, want %s", first, wc.ID)
	}
	if n := e.client.ZCard(ctx, e.router.keys.waiting("support", "webchat")).Val(); n != 0 || e.load("cat", "webchat") != 0 {
		t.Fatalf("support still has %d waiting; cat's load %d", n, e.load("cat", "webchat"))
	}
	e.set(t, "dan", "webchat", presence.Online, "")
	got := e.cards(t, "dan")
	if len(got) != 1 || got[0].ID != wc.ID || got[0].Transfer == nil || got[0].Transfer.Note != "a purchase" || got[0].Transfer.By != "cat" {
		t.Fatalf("dan's cards: %+v", got)
	}
	// A supervisor moves ana's whatsapp conversation to bob.
	e.set(t, "bob", "whatsapp", presence.Online, "")
	conv, err = e.router.Transfer(ctx, wa.ConversationID, TransferRequest{ToAgent: "bob", By: "sue", Supervisor: true})
	if err != nil {
		t.Fatal(err)
	}
	if conv.LastTransfer.By != "sue" || conv.LastTransfer.From != "ana" || conv.Agent != "bob" {
		t.Fatalf("supervisor's transfer: %+v", conv.LastTransfer)
	}
	if sup.count(EventConversationTransferred) != 2 {
		t.Fatalf("supervisors heard %d transfers", sup.count(EventConversationTransferred))
	}
}

// callBody is call with a JSON body.
func (e *env) callBody(t *testing.T, method, path, agent string, role auth.Role, body string, out any) int {
	t.Helper()
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	NewHandler(e.router).Register(app.Group("/v1", auth.NewVerifier(httpSecret, "", "chatgate").Middleware()))
	tok, err := auth.Mint(httpSecret, "chatgate", agent, role, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := app.Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// Every answer is what the OpenAPI document says.
	v, err := openapitest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check(req, resp, b); err != nil {
		t.Errorf("against the OpenAPI document: %v", err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type fieldErrorBody struct {
	Error struct {
		Code    string             `json:"code"`
		Message string             `json:"message"`
		Fields  []httpx.FieldError `json:"fields"`
	} `json:"error"`
}

// TestTransferOverHTTP: the refusals' statuses and codes, and a transfer that goes through.
func TestTransferOverHTTP(t *testing.T) {
	e, _ := floorEnv(t, nil)
	e.set(t, "ana", "whatsapp", presence.Online, "")
	wa := e.accepted(t, "ana", "whatsapp", "100", "c1")
	path := "/v1/conversations/" + wa.ConversationID + "/transfer"
	cases := []struct {
		who, body string
		status    int
		code      string
		field     string
	}{
		{"ana", `{"to_agent":"bob"}`, http.StatusConflict, "agent_not_available", "to_agent"},
		{"ana", `{"to_queue":"support"}`, http.StatusUnprocessableEntity, "validation_failed", "to_queue"},
		{"ana", `{"to_agent":"bob","to_queue":"sales"}`, http.StatusUnprocessableEntity, "validation_failed", "to_agent"},
		{"ana", `{}`, http.StatusUnprocessableEntity, "validation_failed", "to_agent"},
		{"ana", `{"to_agent":"ghost"}`, http.StatusUnprocessableEntity, "validation_failed", "to_agent"},
		{"bob", `{"to_queue":"sales"}`, http.StatusForbidden, "not_your_conversation", ""},
	}
	for _, c := range cases {
		var eb fieldErrorBody
		if code := e.callBody(t, "POST", path, c.who, auth.RoleAgent, c.body, &eb); code != c.status || eb.Error.Code != c.code ||
			(c.field != "" && (len(eb.Error.Fields) == 0 || eb.Error.Fields[0].Field != c.field)) {
			t.Fatalf("%s %s: %d %+v, want %d %s on %s", c.who, c.body, code, eb, c.status, c.code, c.field)
		}
	}
	var eb fieldErrorBody
	e.callBody(t, "POST", path, "ana", auth.RoleAgent, `{"to_agent":"bob"}`, &eb)
	if eb.Error.Fields[0].Message != "offline" || !strings.Contains(eb.Error.Message, "bob") {
		t.Fatalf("the refusal says why: %+v", eb)
	}
	if c, _ := e.router.Card(context.Background(), wa.ID); c.State != CardAccepted || c.Agent != "ana" {
		t.Fatalf("refused transfers changed the card: %+v", c)
	}
	var targets struct {
		Agents []TransferTarget `json:"agents"`
		Queues []TransferQueue  `json:"queues"`
	}
	e.set(t, "bob", "whatsapp", presence.Online, "")
	if code := e.callBody(t, "GET", "/v1/conversations/"+wa.ConversationID+"/transfer-targets", "ana", auth.RoleAgent, "", &targets); code != http.StatusOK {
		t.Fatalf("targets: %d", code)
	}
	if len(targets.Agents) != 1 || targets.Agents[0].ID != "bob" || !targets.Agents[0].Available || len(targets.Queues) != 1 || targets.Queues[0].ID != "sales" {
		t.Fatalf("targets: %+v", targets)
	}
	var conv Conversation
	if code := e.callBody(t, "POST", path, "ana", auth.RoleAgent, `{"to_agent":"bob","note":"VIP"}`, &conv); code != http.StatusOK || conv.Agent != "bob" {
		t.Fatalf("transfer: %d %+v", code, conv)
	}
}

// TestCloseWithADisposition: a queue that requires one refuses a close without it or with an
// unknown one (422 on the field, nothing changes); a known one is recorded with its note.
func TestCloseWithADisposition(t *testing.T) {
	ctx := context.Background()
	e, _ := floorEnv(t, func(q *configs.Queue) { q.RequireDisposition = true })
	e.set(t, "ana", "whatsapp", presence.Online, "")
	card := e.accepted(t, "ana", "whatsapp", "100", "c1")
	path := "/v1/cards/" + card.ID + "/close"
	for body, msg := range map[string]string{"": "is required by this queue", `{"disposition":"maybe"}`: "is not one of the queue's dispositions"} {
		var eb fieldErrorBody
		if code := e.callBody(t, "POST", path, "ana", auth.RoleAgent, body, &eb); code != http.StatusUnprocessableEntity ||
			len(eb.Error.Fields) != 1 || eb.Error.Fields[0].Field != "disposition" || eb.Error.Fields[0].Message != msg {
			t.Fatalf("close %q: %d %+v", body, code, eb)
		}
		if c, _ := e.router.Card(ctx, card.ID); c.State != CardAccepted {
			t.Fatalf("a refused close changed the card: %+v", c)
		}
	}
	var got Card
	if code := e.callBody(t, "POST", path, "ana", auth.RoleAgent, `{"disposition":"sale","note":"two units"}`, &got); code != http.StatusOK || got.State != CardClosed {
		t.Fatalf("close: %d %+v", code, got)
	}
	conv, _ := e.router.Conversation(ctx, card.ConversationID)
	h := e.client.HGetAll(ctx, e.router.keys.conv(card.ConversationID)).Val()
	if conv.Disposition != "sale" || conv.DispositionNote != "two units" || h["disposition"] != "sale" || h["disposition_note"] != "two units" {
		t.Fatalf("conversation: %+v / %v", conv, h)
	}
}

// TestWrapUpBlocksOffersOnThatChannelOnly: after ana closes a whatsapp conversation, her whatsapp
// takes no offer for the queue's wrap_up (shown in presence) while webchat still does; the sweep
// ends it when due and the waiting customer is offered at once; the agent may end it early. Start
// and end are in the presence history as entries to and from wrap_up.
func TestWrapUpBlocksOffersOnThatChannelOnly(t *testing.T) {
	ctx := context.Background()
	e, sup := floorEnv(t, func(q *configs.Queue) { q.WrapUp = 30 * time.Second })
	e.set(t, "ana", "whatsapp", presence.Online, "")
	e.set(t, "ana", "webchat", presence.Online, "")
	card := e.accepted(t, "ana", "whatsapp", "100", "c1")
	if _, err := e.router.CloseWith(ctx, card.ID, "ana", false, CloseDetails{Disposition: "resolved"}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.presence.Get(ctx, "ana")
	var wa presence.ChannelPresence
	for _, c := range p.Channels {
		if c.Channel == "whatsapp" {
			wa = c
		} else if c.WrapUpUntil != nil {
			t.Fatalf("webchat shows a wrap-up: %+v", c)
		}
	}
	if wa.WrapUpUntil == nil || !wa.WrapUpUntil.Equal(t0.Add(30*time.Second)) || wa.State != presence.Online {
		t.Fatalf("whatsapp presence: %+v", wa)
	}
	if e.pub.count("ana", EventWrapUpStarted) != 1 || sup.count(EventWrapUpStarted) != 1 {
		t.Fatalf("wrap_up.started: ana %d, supervisors %d", e.pub.count("ana", EventWrapUpStarted), sup.count(EventWrapUpStarted))
	}
	// A whatsapp customer waits; ana is not offered it (nor is she a transfer target); a reconcile changes nothing.
	e.clock.Advance(10 * time.Second)
	e.customer(t, "whatsapp", "100", "c2", "hi")
	if err := e.router.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if cs := e.cards(t, "ana"); len(cs) != 0 || e.waiting(t, "sales", "whatsapp") != 1 {
		t.Fatalf("ana during wrap-up: %+v, waiting %d", cs, e.waiting(t, "sales", "whatsapp"))
	}
	// webchat is not wrapping up: a webchat customer of sales... sales has no webchat entry point in
	// the test configuration, so a supervisor moves support's webchat conversation to ana directly.
	e.set(t, "cat", "webchat", presence.Online, "")
	wc := e.accepted(t, "cat", "webchat", "shop", "c3")
	if _, err := e.router.Transfer(ctx, wc.ConversationID, TransferRequest{ToAgent: "ana", By: "sue", Supervisor: true}); err != nil {
		t.Fatalf("transfer to ana on webchat during a whatsapp wrap-up: %v", err)
	}
	// Not yet due: the sweep leaves it.
	e.clock.Advance(19 * time.Second)
	e.sweep(t)
	if cs := e.cards(t, "ana"); len(cs) != 1 {
		t.Fatalf("before the wrap-up ended: %+v", cs)
	}
	e.clock.Advance(time.Second)
	e.sweep(t)
	if e.waiting(t, "sales", "whatsapp") != 0 || e.pub.count("ana", EventWrapUpEnded) != 1 {
		t.Fatalf("after the wrap-up: waiting %d, ended events %d", e.waiting(t, "sales", "whatsapp"), e.pub.count("ana", EventWrapUpEnded))
	}
	p, _ = e.presence.Get(ctx, "ana")
	for _, c := range p.Channels {
		if c.WrapUpUntil != nil {
			t.Fatalf("wrap-up still shown: %+v", c)
		}
	}
	// Early end: accept the new one, close it, end the wrap-up at once over HTTP.
	var next Card
	for _, c := range e.cards(t, "ana") {
		if c.Channel == "whatsapp" {
			next = c
		}
	}
	if _, err := e.router.Accept(ctx, next.ID, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.router.Close(ctx, next.ID, "ana", false); err != nil {
		t.Fatal(err)
	}
	e.customer(t, "whatsapp", "100", "c4", "hello?")
	if e.waiting(t, "sales", "whatsapp") != 1 {
		t.Fatal("offered during the second wrap-up")
	}
	var eb fieldErrorBody
	if code := e.callBody(t, "POST", "/v1/agents/me/channels/webchat/wrap-up/end", "ana", auth.RoleAgent, "", &eb); code != http.StatusConflict || eb.Error.Code != "no_wrap_up" {
		t.Fatalf("ending a wrap-up that does not run: %d %+v", code, eb)
	}
	if code := e.callBody(t, "POST", "/v1/agents/bob/channels/whatsapp/wrap-up/end", "ana", auth.RoleAgent, "", &eb); code != http.StatusForbidden {
		t.Fatalf("ana ending bob's wrap-up: %d", code)
	}
	if code := e.callBody(t, "POST", "/v1/agents/me/channels/whatsapp/wrap-up/end", "ana", auth.RoleAgent, "", nil); code != http.StatusNoContent {
		t.Fatalf("early end: %d", code)
	}
	if e.waiting(t, "sales", "whatsapp") != 0 {
		t.Fatal("not offered after the early end")
	}
	// History: two wrap-ups, each a pair of entries to and from wrap_up.
	hist, err := e.presence.History(ctx, "ana", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, c := range hist {
		if c.To == "wrap_up" || c.From == "wrap_up" {
			pairs = append(pairs, string(c.From)+">"+string(c.To)+"@"+c.At.Sub(t0).String()+"/"+c.Cause)
		}
	}
	want := "online>wrap_up@0s/wrap_up wrap_up>online@30s/wrap_up_expired online>wrap_up@30s/wrap_up wrap_up>online@30s/wrap_up_ended"
	if strings.Join(pairs, " ") != want {
		t.Fatalf("wrap-up history:\n got %s\nwant %s", strings.Join(pairs, " "), want)
	}
}

// TestFirstResponseTimer: with the timer at 2m, a conversation the agent answered in time raises
// nothing (and records first_response_at); one left unanswered raises conversation.unanswered to
// the holder and the supervisors and counts in the metric; with action requeue it also goes back
// first in line and the holder is told.
func TestFirstResponseTimer(t *testing.T) {
	for _, action := range []string{"notify", "requeue"} {
		t.Run(action, func(t *testing.T) {
			ctx := context.Background()
			e, sup := floorEnv(t, func(q *configs.Queue) { q.FirstResponseTimeout = 2 * time.Minute; q.FirstResponseAction = action })
			e.set(t, "ana", "whatsapp", presence.Online, "")
			answered := e.accepted(t, "ana", "whatsapp", "100", "c1")
			silent := e.accepted(t, "ana", "whatsapp", "100", "c2")
			e.clock.Advance(time.Minute)
			if _, err := replyScript.Run(ctx, e.client, replyArgs{keys: e.router.keys, conversationID: answered.ConversationID, agent: "ana",
				messageID: newID(), now: e.clock.Now().UnixMilli(), kind: "text", text: "hello!"}); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(59 * time.Second)
			e.sweep(t)
			if n := e.pub.count("ana", EventConversationUnanswered); n != 0 {
				t.Fatalf("%d unanswered before the timeout", n)
			}
			e.clock.Advance(time.Second)
			e.sweep(t)
			if n := e.pub.count("ana", EventConversationUnanswered); n != 1 || sup.count(EventConversationUnanswered) != 1 {
				t.Fatalf("unanswered: ana %d, supervisors %d", n, sup.count(EventConversationUnanswered))
			}
			if v := counterValue(e.router.metrics.floor.unanswered.WithLabelValues("sales", action)); v != 1 {
				t.Fatalf("metric: %v", v)
			}
			a, _ := e.router.Conversation(ctx, answered.ConversationID)
			s, _ := e.router.Conversation(ctx, silent.ConversationID)
			if a.FirstResponseAt == nil || !a.FirstResponseAt.Equal(t0.Add(time.Minute)) || a.UnansweredAt != nil || s.FirstResponseAt != nil || s.UnansweredAt == nil {
				t.Fatalf("answered %+v, silent %+v", a, s)
			}
			c, _ := e.router.Card(ctx, silent.ID)
			if action == "notify" {
				if c.State != CardAccepted || c.Agent != "ana" {
					t.Fatalf("notify moved the card: %+v", c)
				}
			} else {
				if c.State != CardWaiting || e.firstInLine(t, "sales", "whatsapp") != silent.ID || e.load("ana", "whatsapp") != 1 ||
					e.pub.count("ana", EventCardRevoked) != 1 {
					t.Fatalf("requeue: card %+v, first %s, ana's load %d", c, e.firstInLine(t, "sales", "whatsapp"), e.load("ana", "whatsapp"))
				}
			}
			// Once raised, a timer does not fire again.
			e.clock.Advance(10 * time.Minute)
			e.sweep(t)
			if n := e.pub.count("ana", EventConversationUnanswered); n != 1 {
				t.Fatalf("raised %d times", n)
			}
		})
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
