package routing

import (
	"context"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

// TestScriptsRunOnRedisCluster runs presence and routing end to end on a three-master cluster: every
// script's keys, declared or built inside Lua, carry the tenant's hash tag and so live in one slot.
func TestScriptsRunOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cluster := redistest.StartCluster(t)
	client := cluster.Client(t)
	ctx := context.Background()
	cfg := testConfig("least_busy")
	ks := keyspace.New("acme")
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clock.Real{}})
	log := NewStreamLog(client, ks, 100)
	r := NewRouter(client, ks, topology.New(cfg), Options{Clock: clock.Real{}, Publisher: log, Pauser: ps, Audit: true})
	defer r.Shutdown()
	ps.AddListener(r)
	if err := r.SyncCapacity(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	res, err := r.Deliver(ctx, []Inbound{{Channel: "whatsapp", EntryPoint: "100", ContactID: "c1", ProviderMessageID: "m1", Kind: "text", Text: "hi", At: time.Now()}})
	if err != nil || res.Recorded != 1 {
		t.Fatalf("deliver on the cluster: %+v %v", res, err)
	}
	cards, err := r.Cards(ctx, "ana")
	if err != nil || len(cards) != 1 {
		t.Fatalf("cards on the cluster: %+v %v", cards, err)
	}
	if _, err := r.Accept(ctx, cards[0].ID, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Set(ctx, "ana", "whatsapp", presence.Offline, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	if got := client.ZCard(ctx, r.keys.waiting("sales", "whatsapp")).Val(); got != 1 {
		t.Errorf("requeue on the cluster: %d waiting, want 1", got)
	}
	// Statuses: one kept before the send's answer, then applied with it; played after read.
	out, err := r.RecordOutbound(ctx, cards[0].ConversationID, "ana", "text", "olá", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, outcome, err := r.ApplyProviderStatus(ctx, "whatsapp", "wamid.C1", StatusUpdate{State: "read"}); err != nil || outcome != StatusPending {
		t.Fatalf("status before the send's answer on the cluster: %s %v", outcome, err)
	}
	if m, _, err := r.UpdateStatus(ctx, out.ID, StatusUpdate{State: "sent", ProviderMessageID: "wamid.C1"}); err != nil || m.Status != "read" {
		t.Fatalf("the send's answer on the cluster: %+v %v, want read", m, err)
	}
	if m, outcome, err := r.ApplyProviderStatus(ctx, "whatsapp", "wamid.C1", StatusUpdate{State: "played"}); err != nil || outcome != StatusApplied || m.Status != "played" {
		t.Fatalf("played on the cluster: %+v %s %v", m, outcome, err)
	}
	if _, err := r.Close(ctx, cards[0].ID, "sue", true); err != nil {
		t.Fatal(err)
	}
	// Contacts: two contacts of one customer merge, then a number change moves its identifiers; the
	// index keys (passed as KEYS) and the contact's keys (built in Lua) share the tenant's slot.
	at := time.Now()
	for i, ids := range [][]Identifier{{{IdentPhone, "5511900001111"}}, {{IdentUserID, "BR.1"}},
		{{IdentPhone, "5511900001111"}, {IdentUserID, "BR.1"}}} {
		if res, err := r.Deliver(ctx, []Inbound{{Channel: "whatsapp", EntryPoint: "100", Identifiers: ids,
			ProviderMessageID: "id" + string(rune('a'+i)), Kind: "text", Text: "oi", At: at}}); err != nil || res.Recorded != 1 {
			t.Fatalf("deliver with identifiers on the cluster: %+v %v", res, err)
		}
	}
	if res, err := r.Deliver(ctx, []Inbound{{Channel: "whatsapp", EntryPoint: "100", Identifiers: []Identifier{{IdentPhone, "5511900002222"}},
		Replaced: []Identifier{{IdentPhone, "5511900001111"}}, Notice: true, ProviderMessageID: "sys", Kind: "system", At: at}}); err != nil || res.Recorded != 1 {
		t.Fatalf("notice on the cluster: %+v %v", res, err)
	}
	k := client.Get(ctx, r.keys.ident("whatsapp", Identifier{IdentUserID, "BR.1"})).Val()
	if k == "" || client.Get(ctx, r.keys.ident("whatsapp", Identifier{IdentPhone, "5511900002222"})).Val() != k ||
		client.Exists(ctx, r.keys.ident("whatsapp", Identifier{IdentPhone, "5511900001111"})).Val() != 0 ||
		client.SCard(ctx, r.keys.contactIDs(k)).Val() != 2 {
		t.Errorf("contacts on the cluster: %q", k)
	}
	// A conversation started with a template to a phone, then the answer with phone and user id.
	if _, err := ps.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	started, _, _, err := r.StartConversation(ctx, StartRequest{Agent: "ana", Channel: "whatsapp", EntryPoint: "100",
		ContactPhone: "5511900003333", Message: Outbound{Kind: "template", Text: "t"}})
	if err != nil {
		t.Fatalf("start on the cluster: %v", err)
	}
	res, err = r.Deliver(ctx, []Inbound{{Channel: "whatsapp", EntryPoint: "100", ProviderMessageID: "answer", Kind: "text", At: at,
		Identifiers: []Identifier{{IdentPhone, "5511900003333"}, {IdentUserID, "BR.3"}}}})
	if err != nil || res.Recorded != 1 || client.HGet(ctx, r.keys.msg(res.Messages[0]), "conversation_id").Val() != started.ID {
		t.Fatalf("the answer on the cluster: %+v %v", res, err)
	}
	events, err := log.Since(ctx, "ana", "0", 10)
	if err != nil || len(events) < 2 {
		t.Errorf("events on the cluster: %d %v", len(events), err)
	}
}
