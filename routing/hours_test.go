package routing

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/presence"
)

// nyHours: weekdays 09:00–17:00 in New York, Thanksgiving 2026 (Thursday 26 November) closed.
func nyHours() *configs.Hours {
	return &configs.Hours{TimeZone: "America/New_York",
		Weekly:     []configs.HoursInterval{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "09:00", To: "17:00"}},
		Exceptions: []configs.HoursException{{Date: "2026-11-26", Closed: true}}}
}

func hoursEnv(t *testing.T, at time.Time, edit func(q *configs.Queue)) (*env, *autoReplies) {
	t.Helper()
	cfg := testConfig("longest_idle")
	edit(&cfg.Queues[0])
	if ps := cfg.Validate(); len(ps) > 0 {
		for _, p := range ps {
			if strings.HasPrefix(p.Path, "queues") {
				t.Fatalf("config: %v", ps)
			}
		}
	}
	e := newEnvWith(t, redistest.Client(t), cfg, clock.NewFake(at))
	replies := &autoReplies{}
	e.router.SetAutoReplier(replies)
	return e, replies
}

func (e *env) salesStatus(t *testing.T) QueueStatus {
	t.Helper()
	var out struct {
		Queues []QueueStatus `json:"queues"`
	}
	if code := e.call(t, http.MethodGet, "/v1/queues", "sup", auth.RoleSupervisor, &out); code != 200 {
		t.Fatalf("GET /v1/queues: %d", code)
	}
	for _, q := range out.Queues {
		if q.ID == "sales" {
			return q
		}
	}
	t.Fatal("no sales queue")
	return QueueStatus{}
}

func assertOpen(t *testing.T, q QueueStatus, open bool, change string) {
	t.Helper()
	got := ""
	if open && q.ClosesAt != nil {
		got = q.ClosesAt.Format(time.RFC3339)
	}
	if !open && q.OpensAt != nil {
		got = q.OpensAt.Format(time.RFC3339)
	}
	if q.Open != open || got != change {
		t.Fatalf("queue open=%v until %q (closes_at %v opens_at %v); want open=%v until %q", q.Open, got, q.ClosesAt, q.OpensAt, open, change)
	}
}

func TestBusinessHoursAcrossDSTAndAHoliday(t *testing.T) {
	// Friday 30 October 2026, 16:00 EDT (UTC−4). New York leaves DST on Sunday 1 November.
	e, replies := hoursEnv(t, time.Date(2026, 10, 30, 20, 0, 0, 0, time.UTC), func(q *configs.Queue) {
		q.Hours = nyHours()
		q.ClosedMessage = "Fechado agora"
	})
	assertOpen(t, e.salesStatus(t), true, "2026-10-30T21:00:00Z")
	e.customer(t, "whatsapp", "100", "c-open", "hello")
	if got := replies.list(); len(got) != 0 {
		t.Fatalf("told while open: %v", got)
	}

	// 18:00 EDT: closed until Monday 09:00 EST, which is 14:00 UTC, not 13:00 (the clocks went back).
	e.clock.Set(time.Date(2026, 10, 30, 22, 0, 0, 0, time.UTC))
	assertOpen(t, e.salesStatus(t), false, "2026-11-02T14:00:00Z")
	e.customer(t, "whatsapp", "100", "c-late", "anyone?")
	e.customer(t, "whatsapp", "100", "c-late", "hello??")
	e.customer(t, "whatsapp", "100", "c-open", "still there?") // a waiting conversation is told too
	got := replies.list()
	if len(got) != 2 || !strings.HasSuffix(got[0], ": Fechado agora") || !strings.HasSuffix(got[1], ": Fechado agora") || got[0] == got[1] {
		t.Fatalf("closed messages: %v (want one per conversation)", got)
	}
	if e.waiting(t, "sales", "whatsapp") != 2 {
		t.Fatal("closed_action wait: the cards must wait")
	}

	// Monday 08:59 EST still closed, 09:00 EST (14:00 UTC) open until 17:00 EST (22:00 UTC).
	e.clock.Set(time.Date(2026, 11, 2, 13, 59, 0, 0, time.UTC))
	assertOpen(t, e.salesStatus(t), false, "2026-11-02T14:00:00Z")
	e.clock.Set(time.Date(2026, 11, 2, 14, 0, 0, 0, time.UTC))
	assertOpen(t, e.salesStatus(t), true, "2026-11-02T22:00:00Z")
	e.customer(t, "whatsapp", "100", "c-late", "good morning")
	if n := len(replies.list()); n != 2 {
		t.Fatalf("told while open: %v", replies.list())
	}
	// A new closed period is a new notice for the same waiting conversation.
	e.clock.Set(time.Date(2026, 11, 2, 22, 30, 0, 0, time.UTC))
	e.customer(t, "whatsapp", "100", "c-late", "hello again")
	if n := len(replies.list()); n != 3 {
		t.Fatalf("a new closed period must be told once more: %v", replies.list())
	}

	// Wednesday 25 November 17:30 EST: Thursday is Thanksgiving, so it opens on Friday 09:00 EST.
	e.clock.Set(time.Date(2026, 11, 25, 22, 30, 0, 0, time.UTC))
	assertOpen(t, e.salesStatus(t), false, "2026-11-27T14:00:00Z")
	e.clock.Set(time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)) // Thursday 10:00, the holiday
	assertOpen(t, e.salesStatus(t), false, "2026-11-27T14:00:00Z")
	e.customer(t, "whatsapp", "100", "c-holiday", "open today?")
	if got := replies.list(); len(got) != 4 || !strings.HasSuffix(got[3], ": Fechado agora") {
		t.Fatalf("holiday: %v", got)
	}

	// An agent logged in after hours serves the customers waiting for the opening.
	e.set(t, "ana", "whatsapp", presence.Online, "")
	if n := len(e.cards(t, "ana")); n != 2 {
		t.Fatalf("after-hours agent got %d cards, want 2", n)
	}
}

func TestClosedActionCloseEndsTheConversation(t *testing.T) {
	// Saturday: closed all weekend.
	e, replies := hoursEnv(t, time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC), func(q *configs.Queue) {
		q.Hours = nyHours()
		q.ClosedMessage = "Volte na segunda"
		q.ClosedAction = "close"
		q.NoAgentsMessage = "Ninguém conectado" // not said besides the closed message
	})
	res := e.customer(t, "whatsapp", "100", "c1", "hello")
	convID := e.client.HGet(context.Background(), e.router.keys.msg(res.Messages[0]), "conversation_id").Val()
	conv, err := e.router.Conversation(context.Background(), convID)
	if err != nil {
		t.Fatal(err)
	}
	if conv.State != CardClosed || conv.ClosedBy != ClosedOutOfHours {
		t.Fatalf("conversation %s closed_by %q, want closed by %s", conv.State, conv.ClosedBy, ClosedOutOfHours)
	}
	if got := replies.list(); len(got) != 1 || got[0] != convID+": Volte na segunda" {
		t.Fatalf("closed message: %v", got)
	}
	if e.waiting(t, "sales", "whatsapp") != 0 {
		t.Fatal("the card still waits")
	}
	// Opening hours: a new conversation is routed as usual.
	e.clock.Set(time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC))
	e.customer(t, "whatsapp", "100", "c1", "hello again")
	// Open: routed as usual, and told that nobody is logged in (that message was left out while closed).
	if got := replies.list(); e.waiting(t, "sales", "whatsapp") != 1 || len(got) != 2 || !strings.HasSuffix(got[1], ": Ninguém conectado") {
		t.Fatalf("open: waiting %d, replies %v", e.waiting(t, "sales", "whatsapp"), replies.list())
	}
}

func positionTexts(replies *autoReplies, from int) []string {
	var out []string
	for _, s := range replies.list()[from:] {
		_, text, _ := strings.Cut(s, ": ")
		out = append(out, text)
	}
	return out
}

func TestPositionMessages(t *testing.T) {
	e, replies := hoursEnv(t, t0, func(q *configs.Queue) {
		q.PositionMessage = "Você é o {{position}}º da fila. Tempo estimado: {{estimated_wait}}."
		q.PositionAfter = 2 * time.Minute
		q.PositionEvery = 5 * time.Minute
	})
	ctx := context.Background()
	sweep := func() int {
		t.Helper()
		n, err := e.router.SweepPositions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// History: one customer waited 3 minutes for ana.
	e.customer(t, "whatsapp", "100", "c0", "hi")
	e.clock.Advance(3 * time.Minute)
	e.set(t, "ana", "whatsapp", presence.Online, "")
	c0 := e.cards(t, "ana")[0]
	if _, err := e.router.Accept(ctx, c0.ID, "ana"); err != nil {
		t.Fatal(err)
	}
	e.set(t, "ana", "whatsapp", presence.Paused, "lunch") // keeps c0; a logout would give it back to the line
	base := len(replies.list())

	for _, c := range []string{"c1", "c2", "c3"} {
		e.customer(t, "whatsapp", "100", c, "hello")
		e.clock.Advance(time.Second)
	}
	if n := sweep(); n != 0 {
		t.Fatalf("told %d before position_after", n)
	}
	e.clock.Advance(2 * time.Minute)
	if n := sweep(); n != 3 {
		t.Fatalf("told %d, want 3", n)
	}
	want := []string{"Você é o 1º da fila. Tempo estimado: cerca de 3 minutos.",
		"Você é o 2º da fila. Tempo estimado: cerca de 5 minutos.",
		"Você é o 3º da fila. Tempo estimado: cerca de 10 minutos."}
	if got := positionTexts(replies, base); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("messages:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Not again before position_every, nor after it while the place did not change.
	if n := sweep(); n != 0 {
		t.Fatalf("repeated at once: %d", n)
	}
	e.clock.Advance(5 * time.Minute)
	if n := sweep(); n != 0 {
		t.Fatalf("repeated an unchanged place: %d", n)
	}
	// c1 is offered: it is told nothing more, and the others moved up.
	base = len(replies.list())
	e.set(t, "ana", "whatsapp", presence.Online, "") // back from lunch with room for one
	if n := sweep(); n != 2 {
		t.Fatalf("told %d after the line moved, want 2", n)
	}
	got := positionTexts(replies, base)
	if len(got) != 2 || !strings.HasPrefix(got[0], "Você é o 1º") || !strings.HasPrefix(got[1], "Você é o 2º") {
		t.Fatalf("after the line moved: %v", got)
	}
}

func TestPositionMessagesOnlyWithinTheWindow(t *testing.T) {
	e, replies := hoursEnv(t, t0, func(q *configs.Queue) {
		q.PositionMessage = "Posição {{position}}, {{estimated_wait}}"
		q.PositionAfter = time.Minute
		q.PositionEvery = time.Minute
		q.MaxWait = 0
	})
	ctx := context.Background()
	e.customer(t, "whatsapp", "100", "c1", "hello")
	e.customer(t, "whatsapp", "100", "c2", "hello")
	e.customer(t, "whatsapp", "100", "c3", "hello")
	// 25 hours later every WhatsApp window closed; c3 writes again and reopens its own.
	e.clock.Advance(25 * time.Hour)
	e.customer(t, "whatsapp", "100", "c3", "still waiting")
	n, err := e.router.SweepPositions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := positionTexts(replies, 0)
	if n != 1 || len(got) != 1 || got[0] != "Posição 3, alguns minutos" {
		t.Fatalf("outside the window: sent %d %v, want only c3's", n, got)
	}
	// c1 writes: now inside its window, it is told (its place was never told).
	e.customer(t, "whatsapp", "100", "c1", "hello?")
	if n, _ := e.router.SweepPositions(ctx); n != 1 {
		t.Fatalf("inside the window: %d", n)
	}
}

func TestWordEstimate(t *testing.T) {
	for _, c := range []struct {
		d      time.Duration
		known  bool
		pt, en string
	}{
		{0, false, "alguns minutos", "a few minutes"},
		{30 * time.Second, true, "menos de 1 minuto", "less than 1 minute"},
		{61 * time.Second, true, "cerca de 2 minutos", "about 2 minutes"},
		{time.Minute, true, "cerca de 1 minuto", "about 1 minute"},
		{12 * time.Minute, true, "cerca de 10 minutos", "about 10 minutes"},
		{58 * time.Minute, true, "cerca de 1 hora", "about 1 hour"},
		{95 * time.Minute, true, "cerca de 1 hora e 30 minutos", "about 1 hour and 30 minutes"},
		{150 * time.Minute, true, "cerca de 2 horas e 30 minutos", "about 2 hours and 30 minutes"},
	} {
		if got := WordEstimate(c.d, c.known, "pt-BR"); got != c.pt {
			t.Errorf("%v pt-BR: %q, want %q", c.d, got, c.pt)
		}
		if got := WordEstimate(c.d, c.known, "en"); got != c.en {
			t.Errorf("%v en: %q, want %q", c.d, got, c.en)
		}
	}
}

// TestPositionClaimScriptOnRawState drives the claim on hand-written keys: each refusal, then the claim.
func TestPositionClaimScriptOnRawState(t *testing.T) {
	client := redistest.Client(t)
	ctx := context.Background()
	k := keys{keyspace.New("t")}
	client.HSet(ctx, k.card("c1"), "state", "waiting", "created_at", 1000, "conversation_id", "v1")
	client.HSet(ctx, k.conv("v1"), "window_expires_at", 50_000)
	claim := func(now int64, position int, window bool) string {
		t.Helper()
		out, err := positionClaimScript.Run(ctx, client, positionClaimArgs{keys: k, card: "c1", now: now, after: 2000, every: 5000,
			position: position, window: window})
		if err != nil {
			t.Fatal(err)
		}
		return out.code + ":" + out.conversationID
	}
	for _, c := range []struct {
		now      int64
		position int
		window   bool
		want     string
	}{
		{2500, 1, true, "early:"},      // waited 1.5s < position_after
		{60_000, 1, true, "window:"},   // the window closed at 50s
		{3000, 2, true, "claimed:v1"},  // told: place 2
		{7000, 1, true, "recent:"},     // 4s later < position_every
		{8000, 2, false, "same:"},      // the same place
		{8000, 1, false, "claimed:v1"}, // moved up
	} {
		if got := claim(c.now, c.position, c.window); got != c.want {
			t.Fatalf("now %d position %d: %s, want %s", c.now, c.position, got, c.want)
		}
	}
	if h := client.HMGet(ctx, k.card("c1"), "position_at", "position_sent").Val(); h[0] != "8000" || h[1] != "1" {
		t.Fatalf("card after claims: %v", h)
	}
	client.HSet(ctx, k.card("c1"), "state", "offered")
	if got := claim(100_000, 3, false); got != "state:" {
		t.Fatalf("offered card: %s", got)
	}
}
