package routing

import (
	"context"
	"testing"
	"time"

	"github.com/chatgate/chatgate/presence"
)

// TestTheOpenConversationAfterCloseAndReopen: the usual message (a known customer named one way) joins
// its open conversation; once closed, the next message opens a new one, which the next joins.
func TestTheOpenConversationAfterCloseAndReopen(t *testing.T) {
	e := newEnv(t, "longest_idle")
	ctx := context.Background()
	e.set(t, "ana", "whatsapp", presence.Online, "")
	p := phone("5511999990001")
	c1, _ := e.wa(t, "100", t0, Inbound{Identifiers: idents(p), ContactName: "Maria"})
	if c, _ := e.wa(t, "100", t0.Add(time.Minute), Inbound{Identifiers: idents(p)}); c != c1 {
		t.Fatalf("second message → %s, want %s", c, c1)
	}
	card := e.cards(t, "ana")[0].ID
	if _, err := e.router.Accept(ctx, card, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.router.Close(ctx, card, "ana", false); err != nil {
		t.Fatal(err)
	}
	c2, _ := e.wa(t, "100", t0.Add(2*time.Minute), Inbound{Identifiers: idents(p)})
	if c2 == "" || c2 == c1 {
		t.Fatalf("after the close → %q, want a new conversation", c2)
	}
	if c, _ := e.wa(t, "100", t0.Add(3*time.Minute), Inbound{Identifiers: idents(p)}); c != c2 {
		t.Errorf("next message → %s, want %s", c, c2)
	}
	if n := e.client.LLen(ctx, e.router.keys.convMsgs(c1)).Val(); n != 2 {
		t.Errorf("%d messages in the closed conversation, want 2", n)
	}
}

// TestTheAnswerJoinsAStartedConversationAfterRetention: the customer's conversation is closed, an
// agent's template opens another and retention forgets the first: the customer's answer, named one
// way, joins the started conversation.
func TestTheAnswerJoinsAStartedConversationAfterRetention(t *testing.T) {
	ctx := context.Background()
	e := retentionEnv(t, time.Hour, 0)
	e.set(t, "ana", "whatsapp", presence.Online, "")
	p := phone("5511999990001")
	c1, _ := e.wa(t, "100", e.clock.Now(), Inbound{Identifiers: idents(p)})
	card := e.cards(t, "ana")[0].ID
	if _, err := e.router.Accept(ctx, card, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.router.Close(ctx, card, "ana", false); err != nil {
		t.Fatal(err)
	}
	started, _, isNew, err := e.router.StartConversation(ctx, StartRequest{Agent: "ana", Channel: "whatsapp", EntryPoint: "100",
		ContactPhone: "+5511999990001", Message: Outbound{Kind: "template", Text: "Seu pedido saiu"}})
	if err != nil || !isNew || started.ID == c1 {
		t.Fatalf("start: %+v %v %v", started, isNew, err)
	}
	e.clock.Advance(2 * time.Hour)
	if _, err := e.router.SweepRetention(ctx); err != nil {
		t.Fatal(err)
	}
	if e.client.Exists(ctx, e.router.keys.conv(c1)).Val() != 0 {
		t.Fatalf("retention kept %s", c1)
	}
	if c, _ := e.wa(t, "100", e.clock.Now(), Inbound{Identifiers: idents(p)}); c != started.ID {
		t.Fatalf("the answer → %s, want the started %s", c, started.ID)
	}
	if c, _ := e.wa(t, "100", e.clock.Now().Add(time.Second), Inbound{Identifiers: idents(p)}); c != started.ID {
		t.Errorf("next message → %s, want %s", c, started.ID)
	}
}

// TestTheOpenConversationAfterANumberChangeAndAMerge: a changed number keeps the conversation; two
// contacts of one customer merged keep the survivor's conversation, and a message naming the customer
// either way afterwards finds it.
func TestTheOpenConversationAfterANumberChangeAndAMerge(t *testing.T) {
	e := newEnv(t, "longest_idle")
	ctx := context.Background()
	e.set(t, "ana", "whatsapp", presence.Online, "")
	conv, _ := e.wa(t, "100", t0, Inbound{Identifiers: idents(phone("16505551234"))})
	if _, err := e.router.Accept(ctx, e.cards(t, "ana")[0].ID, "ana"); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.wa(t, "100", t0.Add(time.Hour), Inbound{Identifiers: idents(phone("12195555358")),
		Replaced: idents(phone("16505551234")), Notice: true, Kind: "system", Text: "changed number"}); c != conv {
		t.Fatalf("the notice → %s, want %s", c, conv)
	}
	if c, _ := e.wa(t, "100", t0.Add(2*time.Hour), Inbound{Identifiers: idents(phone("12195555358"))}); c != conv {
		t.Fatalf("the new number → %s, want %s", c, conv)
	}
	if c, _ := e.wa(t, "100", t0.Add(3*time.Hour), Inbound{Identifiers: idents(phone("16505551234"))}); c == conv {
		t.Fatal("the old number still reaches the customer who left it")
	}

	// Two contacts, each with its open conversation, both waiting (nobody online). A message
	// naming both merges them: the conversation opened first goes on, the other is closed into it;
	// then each identifier alone finds the one that goes on.
	e.set(t, "ana", "whatsapp", presence.Offline, "")
	first, _ := e.wa(t, "100", t0.Add(4*time.Hour), Inbound{Identifiers: idents(phone("5511944443333"))})
	second, _ := e.wa(t, "100", t0.Add(5*time.Hour), Inbound{Identifiers: idents(bsuid("BR.5"))})
	if first == "" || second == "" || first == second {
		t.Fatalf("before the merge: %q %q, want two conversations", first, second)
	}
	if c, _ := e.wa(t, "100", t0.Add(6*time.Hour), Inbound{Identifiers: idents(phone("5511944443333"), bsuid("BR.5"))}); c != first {
		t.Fatalf("the merging message → %s, want %s", c, first)
	}
	for i, id := range []Identifier{bsuid("BR.5"), phone("5511944443333")} {
		if c, _ := e.wa(t, "100", t0.Add(time.Duration(7+i)*time.Hour), Inbound{Identifiers: idents(id)}); c != first {
			t.Errorf("%s alone → %s, want %s", id, c, first)
		}
	}
	if st := e.client.HGet(ctx, e.router.keys.conv(second), "state").Val(); st != "closed" {
		t.Errorf("the second conversation is %s, want closed by the merge", st)
	}
}
