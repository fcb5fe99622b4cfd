package integrations

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
)

// A CRM outage holds a closed conversation in Redis past its retention; once the receiver is back
// and has acknowledged every event, the next retention pass deletes the conversation and every key
// of it, and nothing is held any more. The outlet runs on the real clock; retention is swept by a
// second router on the same Redis whose clock is moved past the retention.
func TestRetentionWaitsForTheReceiverThenForgets(t *testing.T) {
	ctx := context.Background()
	var up atomic.Bool
	rc := newReceiver(t, secretA, func(r received, n int) int {
		if up.Load() {
			return 204
		}
		return 503
	})
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) { w.Secret = secretA }))
	e.start(t, nil)
	sweepClock := clock.NewFake(time.Now())
	sweeper := routing.NewRouter(e.client, e.ks, topology.New(e.cfg), routing.Options{Clock: sweepClock,
		Retention: routing.RetentionOptions{ClosedConversations: time.Minute}})
	t.Cleanup(sweeper.Shutdown)

	if _, err := e.presence.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	e.customer(t, "5511999990031", "text", "Meu pedido chegou quebrado.")
	card := e.mustCard(t, "ana")
	conv := card.ConversationID
	if _, err := e.router.Accept(ctx, card.ID, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.router.Close(ctx, card.ID, "ana", false); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the receiver to refuse the conversation's events", func() bool { return len(rc.all()) > 0 })
	if e.held(t, conv) == 0 {
		t.Fatal("the conversation's unacknowledged events hold nothing")
	}

	// Past its retention while the receiver is down: kept, and counted as held.
	sweepClock.Advance(10 * time.Minute)
	if n, err := sweeper.SweepRetention(ctx); err != nil || n != 0 {
		t.Fatalf("retention while unacknowledged: %d deleted, %v", n, err)
	}
	if st, err := sweeper.Retention(ctx); err != nil || st.Held != 1 {
		t.Fatalf("retention status %+v %v, want 1 held", st, err)
	}
	if keys := keysOf(t, e, conv, card.ID); len(keys) == 0 {
		t.Fatal("the held conversation's keys are gone")
	}

	// The receiver comes back: every event is acknowledged, then retention lets go.
	up.Store(true)
	testutil.Eventually(t, 30*time.Second, "every event acknowledged", func() bool { return e.held(t, conv) == 0 })
	sweepClock.Advance(2 * time.Minute) // past the hold's next look
	if n, err := sweeper.SweepRetention(ctx); err != nil || n != 1 {
		t.Fatalf("retention after acknowledgement: %d deleted, %v; want 1", n, err)
	}
	if keys := keysOf(t, e, conv, card.ID); len(keys) != 0 {
		t.Fatalf("keys left of the conversation: %v", keys)
	}
	if st, err := sweeper.Retention(ctx); err != nil || st.Held != 0 {
		t.Fatalf("retention status %+v %v, want nothing held", st, err)
	}
	var types []string
	for _, r := range rc.acked() {
		types = append(types, r.typ)
	}
	if !strings.Contains(strings.Join(types, " "), "conversation.closed") {
		t.Fatalf("acknowledged %v: the closing never reached the receiver", types)
	}
}

// keysOf lists the tenant's keys whose name carries one of the ids (the conversation's own keys).
func keysOf(t *testing.T, e *env, ids ...string) []string {
	t.Helper()
	var out []string
	iter := e.client.Scan(context.Background(), 0, e.ks.Prefix()+"*", 1000).Iterator()
	for iter.Next(context.Background()) {
		for _, id := range ids {
			if strings.Contains(iter.Val(), id) {
				out = append(out, iter.Val())
				break
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A delivery receipt that arrives before the send's answer is kept, then applied the moment the
// answer records the provider's id: each status applied then is a message.status event too.
func TestStatusesBeforeTheSendsAnswerAreEvents(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, secretA, nil)
	e := newEnv(t, nil, hook("crm", rc.srv.URL, func(w *configs.Webhook) {
		w.Secret = secretA
		w.Events = []string{"message.status"}
	}))
	e.start(t, nil)
	if _, err := e.presence.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	e.customer(t, "5511999990041", "text", "Oi")
	card := e.mustCard(t, "ana")
	if _, err := e.router.Accept(ctx, card.ID, "ana"); err != nil {
		t.Fatal(err)
	}
	m, err := e.router.RecordOutbound(ctx, card.ConversationID, "ana", "text", "Olá!", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Meta's receipts outrun the send's answer.
	for _, st := range []string{"read", "delivered"} {
		if _, outcome, err := e.router.ApplyProviderStatus(ctx, "whatsapp", "wamid.EARLY41", routing.StatusUpdate{State: st}); err != nil || outcome != routing.StatusPending {
			t.Fatalf("%s before the answer: %s %v, want pending", st, outcome, err)
		}
	}
	if _, _, err := e.router.UpdateStatus(ctx, m.ID, routing.StatusUpdate{State: "sent", ProviderMessageID: "wamid.EARLY41", Channel: "whatsapp"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "three statuses at the receiver", func() bool { return len(rc.acked()) >= 3 })
	var states []string
	for _, r := range rc.acked() {
		data := r.event["data"].(map[string]any)
		if data["conversation_id"] != card.ConversationID {
			t.Fatalf("status of another conversation: %v", data)
		}
		states = append(states, fmt.Sprint(data["status"]))
	}
	if strings.Join(states, " ") != "sent delivered read" {
		t.Fatalf("statuses %v, want sent delivered read (the machine's order)", states)
	}
}
