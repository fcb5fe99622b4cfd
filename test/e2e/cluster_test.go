package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestClusterEndToEnd runs the gateway — two replicas, a worker, the fake provider — on a local
// three-master Redis Cluster: redeliveries to both replicas, a customer's message to a card on the
// agent's stream, accept, a reply sent by the worker, its delivery receipt back on the stream. Every
// script would fail with CROSSSLOT if its keys spanned two slots; afterwards every key of the tenant
// is checked to hash to one slot.
func TestClusterEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{cluster: true, worker: true, agents: 2, fake: true})
	runRedelivery(t, e)

	a, b := e.replicas[0].url(), e.replicas[1].url()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := e.newStreamReader(agentID(1))
	s.lastID = "0-1"
	go func() {
		for ctx.Err() == nil {
			_ = s.follow(ctx, b)
			time.Sleep(100 * time.Millisecond) // a client's pause before it reconnects
		}
	}()
	// a01 and a02 are online from runRedelivery; a02 leaves so the next card is a01's.
	if r, err := e.setPresence(a, agentID(2), "whatsapp", "offline"); err != nil || r.status != 200 {
		t.Fatalf("a02 offline: %d %v", r.status, err)
	}
	from := "+5511955554444"
	if r, err := e.postWhatsApp(a, whatsAppMessage(from, "wamid.cluster.flow", "Oi, cluster")); err != nil || r.status != 200 {
		t.Fatalf("webhook: %d %v", r.status, err)
	}
	var cardID, convID string
	if !testutil.Within(10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ev := range s.order {
			card, _ := ev.data["card"].(map[string]any)
			contact, _ := card["contact"].(map[string]any)
			if ev.typ == "card.offered" && contact != nil && strings.Contains(fmt.Sprint(contact["phone"], contact["id"]), "5511955554444") {
				cardID, _ = card["id"].(string)
				convID, _ = card["conversation_id"].(string)
				return true
			}
		}
		return false
	}) {
		t.Fatal("no card.offered for the customer on a01's stream")
	}
	tok := map[string]string{"Authorization": "Bearer " + token(t, agentID(1), auth.RoleAgent, time.Hour)}
	if r, err := e.do("POST", b+"/v1/cards/"+cardID+"/accept", nil, tok); err != nil || r.status != 200 {
		t.Fatalf("accept: %d %s %v", r.status, r.body, err)
	}
	r, err := e.do("POST", a+"/v1/conversations/"+convID+"/messages", []byte(`{"text":"Olá! Como posso ajudar?"}`), tok)
	if err != nil || r.status != 202 {
		t.Fatalf("reply: %d %s %v", r.status, r.body, err)
	}
	if !testutil.Within(15*time.Second, func() bool { return e.fakeCalls()["5511955554444"] == 1 }) {
		t.Fatal("the reply did not reach the provider")
	}
	wamid := e.sentWamid(t, "5511955554444")
	status := simulate.WhatsAppStatusNotification(simulate.WhatsAppStatus{PhoneNumberID: phoneNumberID, MessageID: wamid,
		Status: "delivered", RecipientID: "5511955554444"})
	if r, err := e.postWhatsApp(b, status); err != nil || r.status != 200 {
		t.Fatalf("status webhook: %d %v", r.status, err)
	}
	if !testutil.Within(10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ev := range s.order {
			msg, _ := ev.data["message"].(map[string]any)
			if ev.typ == "message.status" && msg["status"] == "delivered" {
				return true
			}
		}
		return false
	}) {
		t.Fatal("no message.status delivered on a01's stream")
	}

	// One slot for the whole tenant: the hash tag holds.
	cluster := e.client.(*redis.ClusterClient)
	slots := map[int64]int{}
	tenantKeys := e.keys("*")
	for _, k := range tenantKeys {
		slot, err := cluster.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		slots[slot]++
	}
	if len(slots) != 1 || len(tenantKeys) < 50 {
		t.Errorf("tenant keys: %d in slots %v, want every key in one slot", len(tenantKeys), slots)
	}
	t.Logf("cluster: %d tenant keys, all in slot %v", len(tenantKeys), slots)
}

// sentWamid returns the wamid the fake answered for the last send to a recipient.
func (e *env) sentWamid(t *testing.T, recipient string) string {
	t.Helper()
	var out struct {
		Calls []struct {
			Recipient string `json:"recipient"`
			MessageID string `json:"message_id"`
		} `json:"calls"`
	}
	r, err := e.do("GET", e.fakeURL+"/_fake/calls", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	id := ""
	for _, c := range out.Calls {
		if c.Recipient == recipient {
			id = c.MessageID
		}
	}
	if id == "" {
		t.Fatalf("no send to %s at the fake", recipient)
	}
	return id
}
