package routing

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
)

// batchMessages are messages of two tenants, among them two that fail (a contact key of another type:
// a Redis error; a merge with a contact whose count is not a number: a Lua error, after writes) and a
// redelivery, seeded by seedBatch.
func batchMessages() []deliverArgs {
	other := keys{keyspace.New("u")}
	base := deliverArgs{keys: rawKeys, channel: "whatsapp", entryPoint: "100", queue: "sales", now: 1000, at: 900,
		kind: "text", text: "oi", contactName: "Maria", windowExpires: "86400900", offerTimeout: 30000,
		strategy: "longest_idle", cardsToScan: cardsToScan, agentsToScan: agentsToScan, entries: "100\n"}
	msg := func(k keys, id, phoneNumber string, more ...Identifier) deliverArgs {
		a := base
		a.keys, a.providerMessageID, a.messageID = k, "wamid."+id, id
		a.conversationID, a.cardID, a.newContactID = "C"+id, "D"+id, "K"+id
		a.identifiers = append([]Identifier{phone(phoneNumber)}, more...)
		return a
	}
	return []deliverArgs{
		msg(rawKeys, "M1", "5511999990001"),                                     // new conversation, offered to ana
		msg(rawKeys, "M2", "5511999990001"),                                     // joins it
		msg(rawKeys, "M3", "5511999990003"),                                     // its contact is not a HASH: WRONGTYPE
		msg(rawKeys, "M4", "5511999990004", Identifier{IdentUserID, "BR.4"}),    // a merge that fails in Lua
		msg(other, "M5", "5511999990001"),                                       // another tenant: its own customer
		msg(rawKeys, "M1", "5511999990001"),                                     // a redelivery
		msg(rawKeys, "M7", "5511999990007"),                                     // another new conversation
		msg(other, "M8", "5511999990001", Identifier{IdentUsername, "maria.u"}), // the other tenant's customer again
	}
}

func seedBatch(s rawState) {
	s.eligibleAgent("ana", 2, 0)
	s.zset("avail:sales:whatsapp", 500, "ana")
	s.str("ident:whatsapp:phone:5511999990003", "K3")
	s.str("contact:K3", "not a hash")
	s.str("ident:whatsapp:phone:5511999990004", "K4a")
	s.str("ident:whatsapp:bsuid:BR.4", "K4b")
	s.set("contactids:K4b", "bsuid:BR.4")
	s.hash("contact:K4b", "convs", "x")
}

// TestBatchedDeliveryIsOneByOne: messages queued together and recorded by one script call per tenant
// leave Redis as each recorded by its own call would, and each caller gets what its own call would
// have answered: a message that fails fails alone, with Redis's error, and the others are recorded.
func TestBatchedDeliveryIsOneByOne(t *testing.T) {
	ctx := context.Background()
	msgs := batchMessages()

	alone := newRawState(t)
	seedBatch(alone)
	var want []scriptResult[deliverReply]
	for _, m := range msgs {
		var r scriptResult[deliverReply]
		r.reply, r.err = deliverScript.Run(ctx, alone.client, m)
		want = append(want, r)
	}

	batched := newRawState(t)
	seedBatch(batched)
	evals := &redistest.CommandCounter{Match: func(c redis.Cmder) bool { return c.Name() == "evalsha" }}
	batched.client.AddHook(evals)
	if err := deliverBatchScript.Load(ctx, batched.client).Err(); err != nil {
		t.Fatal(err)
	}
	b := newBatcher(batched.client, deliverScript, deliverMulti)
	defer b.close()
	if b.multi == nil {
		t.Fatal("the intake batcher has no multi script")
	}
	got := execBatch(b, msgs)
	if n := evals.N(); n != 2 {
		t.Errorf("%d EVALSHA for a batch of two tenants, want 2", n)
	}

	for i := range msgs {
		w, g := want[i], got[i]
		if (w.err == nil) != (g.err == nil) {
			t.Errorf("message %d: error %v batched, %v alone", i, g.err, w.err)
			continue
		}
		if w.err != nil {
			// Redis's error as the message's own call got it; the batch's says where less precisely
			if cut := func(e error) string { s := e.Error(); return s[:strings.LastIndex(s, " script: ")] }; cut(g.err) != cut(w.err) ||
				!strings.Contains(g.err.Error(), "user_script") {
				t.Errorf("message %d: error %q batched, %q alone", i, g.err, w.err)
			}
			continue
		}
		if !reflect.DeepEqual(g.reply, w.reply) {
			t.Errorf("message %d: reply %+v batched, %+v alone", i, g.reply, w.reply)
		}
	}
	if want[2].err == nil || !strings.Contains(want[2].err.Error(), "WRONGTYPE") || want[3].err == nil ||
		!strings.Contains(want[3].err.Error(), "compare") || !want[5].reply.duplicate || want[1].reply.conversationID != "CM1" {
		t.Fatalf("the messages do not fail or succeed as this test means them to: %+v", want)
	}
	if g, w := batched.contents(), alone.contents(); g != w {
		t.Errorf("batched:\n%s\none by one:\n%s", g, w)
	}
}

// TestBatchedDeliveryLoadsItsScript: a Redis that forgot the scripts (restarted) records the batch.
func TestBatchedDeliveryLoadsItsScript(t *testing.T) {
	s := newRawState(t)
	seedBatch(s)
	if err := s.client.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	b := newBatcher(s.client, deliverScript, deliverMulti)
	defer b.close()
	msgs := batchMessages()[:2]
	for i, r := range execBatch(b, msgs) {
		if r.err != nil || r.reply.messageID != msgs[i].messageID || r.reply.conversationID != "CM1" {
			t.Errorf("message %d after SCRIPT FLUSH: %+v, %v", i, r.reply, r.err)
		}
	}
}

// execBatch runs msgs as one batch of the batcher's and returns each call's result.
func execBatch(b *batcher[deliverArgs, deliverReply], msgs []deliverArgs) []scriptResult[deliverReply] {
	calls := make([]*scriptCall[deliverArgs, deliverReply], len(msgs))
	for i, m := range msgs {
		calls[i] = &scriptCall[deliverArgs, deliverReply]{args: m, done: make(chan scriptResult[deliverReply], 1)}
	}
	b.exec(calls)
	out := make([]scriptResult[deliverReply], len(calls))
	for i, c := range calls {
		out[i] = <-c.done
	}
	return out
}

// TestBatchedDeliveryOnRedisCluster: a batch of two tenants, two hash slots, goes out as one script
// call per tenant, each to its slot's node, and every message is recorded.
func TestBatchedDeliveryOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	ctx := context.Background()
	client := redistest.StartCluster(t).Client(t)
	b := newBatcher(client, deliverScript, deliverMulti)
	defer b.close()
	all := batchMessages()
	msgs := []deliverArgs{all[0], all[1], all[4], all[5], all[6], all[7]} // those that do not fail
	got := execBatch(b, msgs)
	for i, want := range []string{"CM1", "CM1", "CM5", "", "CM7", "CM5"} {
		if r := got[i]; r.err != nil || r.reply.conversationID != want || r.reply.duplicate != (i == 3) {
			t.Errorf("message %d: %+v, %v; want conversation %q", i, r.reply, r.err, want)
		}
	}
	for key, want := range map[string][]string{"cg:{t}:convmsgs:CM1": {"M1", "M2"}, "cg:{t}:convmsgs:CM7": {"M7"},
		"cg:{u}:convmsgs:CM5": {"M5", "M8"}} {
		if got, err := client.LRange(ctx, key, 0, -1).Result(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, %v; want %v", key, got, err, want)
		}
	}
}
