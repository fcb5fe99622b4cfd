package routing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/presence"
)

// assertOpenHints checks what makes the intake's hint safe (the contact's open:<entry> field): a hint
// naming a conversation that is open, not merged and still its contact's is the one convopen names.
func (e *env) assertOpenHints(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, ck := range e.keysLike(t, "contact:*") {
		k := strings.TrimPrefix(ck, e.router.keys.prefix()+"contact:")
		for f, conv := range e.client.HGetAll(ctx, ck).Val() {
			entry, ok := strings.CutPrefix(f, "open:")
			if !ok {
				continue
			}
			c := e.client.HGetAll(ctx, e.router.keys.conv(conv)).Val()
			if c["state"] != "open" || c["merged_into"] != "" || c["contact_id"] != k {
				continue // stale: the intake asks convopen
			}
			if open := e.client.Get(ctx, e.router.keys.convOpen("whatsapp", entry, k)).Val(); open != conv {
				t.Errorf("contact %s: hint %s on %s is open and its own, but convopen names %q", k, conv, entry, open)
			}
		}
	}
}

// hint is the contact's open:<entry> field.
func (e *env) hint(t *testing.T, id Identifier, entry string) string {
	t.Helper()
	return e.client.HGet(context.Background(), e.router.keys.contact(e.contactOf(t, id)), "open:"+entry).Val()
}

// TestTheOpenConversationIsFoundThroughTheContactAfterCloseAndReopen: the usual message finds its
// conversation through the contact's hint; once closed, the next message opens a new one (the hint
// names a closed conversation: not taken) and the hint follows it.
func TestTheOpenConversationIsFoundThroughTheContactAfterCloseAndReopen(t *testing.T) {
	e := newEnv(t, "longest_idle")
	ctx := context.Background()
	e.set(t, "ana", "whatsapp", presence.Online, "")
	p := phone("5511999990001")
	c1, _ := e.wa(t, "100", t0, Inbound{Identifiers: idents(p), ContactName: "Maria"})
	if h := e.hint(t, p, "100"); h != c1 {
		t.Fatalf("hint %q after the first message, want %s", h, c1)
	}
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
	if h := e.hint(t, p, "100"); h != c2 {
		t.Errorf("hint %q after the reopen, want %s", h, c2)
	}
	if c, _ := e.wa(t, "100", t0.Add(3*time.Minute), Inbound{Identifiers: idents(p)}); c != c2 {
		t.Errorf("next message → %s, want %s", c, c2)
	}
	if n := e.client.LLen(ctx, e.router.keys.convMsgs(c1)).Val(); n != 2 {
		t.Errorf("%d messages in the closed conversation, want 2", n)
	}
	e.assertOpenHints(t)
}

// TestAStaleHintYieldsToAStartedConversationAndToRetention: an agent's template opens a conversation
// the hint does not know (the start script does not write it), and retention forgets the one it
// names: the customer's answer joins the started conversation all the same, and the hint follows.
func TestAStaleHintYieldsToAStartedConversationAndToRetention(t *testing.T) {
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
	if h := e.hint(t, p, "100"); h != c1 {
		t.Fatalf("hint %q, want the closed %s (this test needs it stale)", h, c1)
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
	if h := e.hint(t, p, "100"); h != started.ID {
		t.Errorf("hint %q, want %s", h, started.ID)
	}
	if c, _ := e.wa(t, "100", e.clock.Now().Add(time.Second), Inbound{Identifiers: idents(p)}); c != started.ID {
		t.Errorf("next message → %s, want %s", c, started.ID)
	}
	e.assertOpenHints(t)
}

// TestTheHintAfterANumberChangeAndAMerge: a changed number keeps the conversation (the new number's
// contact is the same, its hint too); two contacts of one customer merged keep the survivor's
// conversation, and a message naming the customer either way afterwards finds it.
func TestTheHintAfterANumberChangeAndAMerge(t *testing.T) {
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
	e.assertOpenHints(t)

	// Two contacts, each with its open conversation and hint, both waiting (nobody online). A message
	// naming both merges them: the conversation opened first goes on, the other is closed into it;
	// then each identifier alone finds the one that goes on.
	e.set(t, "ana", "whatsapp", presence.Offline, "")
	first, _ := e.wa(t, "100", t0.Add(4*time.Hour), Inbound{Identifiers: idents(phone("5511944443333"))})
	second, _ := e.wa(t, "100", t0.Add(5*time.Hour), Inbound{Identifiers: idents(bsuid("BR.5"))})
	if first == second || e.hint(t, phone("5511944443333"), "100") != first || e.hint(t, bsuid("BR.5"), "100") != second {
		t.Fatalf("before the merge: %s %s, hints %q %q", first, second, e.hint(t, phone("5511944443333"), "100"), e.hint(t, bsuid("BR.5"), "100"))
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
	e.assertOpenHints(t)
}
