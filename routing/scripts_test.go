package routing

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
)

// The tests below run each of routing's scripts alone on raw Redis state they seed key by key, then
// assert every key of the database afterwards (redistest.Contents): the keys each script writes,
// their fields and scores, and that it wrote nothing else. Times are small numbers of ms.

// rawKeys are the key builders of the tenant "t": every key below is cg:{t}:<name>.
var rawKeys = keys{keyspace.New("t")}

type rawState struct {
	t      *testing.T
	client *redis.Client
}

func newRawState(t *testing.T) rawState { return rawState{t: t, client: redistest.Client(t)} }

func (s rawState) hash(key string, fieldValues ...any) {
	s.t.Helper()
	if err := s.client.HSet(context.Background(), "cg:{t}:"+key, fieldValues...).Err(); err != nil {
		s.t.Fatal(err)
	}
}

func (s rawState) zset(key string, scoreMembers ...any) {
	s.t.Helper()
	for i := 0; i+1 < len(scoreMembers); i += 2 {
		z := redis.Z{Score: float64(scoreMembers[i].(int)), Member: scoreMembers[i+1]}
		if err := s.client.ZAdd(context.Background(), "cg:{t}:"+key, z).Err(); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s rawState) set(key string, members ...any) {
	s.t.Helper()
	if err := s.client.SAdd(context.Background(), "cg:{t}:"+key, members...).Err(); err != nil {
		s.t.Fatal(err)
	}
}

func (s rawState) str(key, value string) {
	s.t.Helper()
	if err := s.client.Set(context.Background(), "cg:{t}:"+key, value, 0).Err(); err != nil {
		s.t.Fatal(err)
	}
}

// contents is the database as redistest.Contents renders it.
func (s rawState) contents() string { s.t.Helper(); return redistest.Contents(s.t, s.client) }

// want asserts the whole database: exactly these keys, each rendered as by the helpers below.
func (s rawState) want(lines ...string) {
	s.t.Helper()
	sort.Strings(lines)
	got := strings.Split(strings.TrimSuffix(s.contents(), "\n"), "\n")
	if slices.Equal(got, lines) {
		return
	}
	for _, l := range lines {
		if !slices.Contains(got, l) {
			s.t.Errorf("missing or different: %s", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(lines, l) {
			s.t.Errorf("unexpected:           %s", l)
		}
	}
}

// Renderings of one key, as redistest.Contents writes them.
func wantHash(key string, fieldValues ...string) string {
	fields := make([]string, 0, len(fieldValues)/2)
	for i := 0; i+1 < len(fieldValues); i += 2 {
		fields = append(fields, fieldValues[i]+"="+fieldValues[i+1])
	}
	sort.Strings(fields)
	return fmt.Sprintf("cg:{t}:%s hash ttl=none %v", key, fields)
}

func wantSet(key string, members ...string) string {
	sort.Strings(members)
	return fmt.Sprintf("cg:{t}:%s set ttl=none %v", key, members)
}

func wantZSet(key string, scoreMembers ...any) string {
	zs := make([]redis.Z, 0, len(scoreMembers)/2)
	for i := 0; i+1 < len(scoreMembers); i += 2 {
		var score float64
		switch x := scoreMembers[i].(type) {
		case int:
			score = float64(x)
		case float64:
			score = x
		}
		zs = append(zs, redis.Z{Score: score, Member: scoreMembers[i+1]})
	}
	return fmt.Sprintf("cg:{t}:%s zset ttl=none %v", key, zs)
}

func wantList(key string, items ...string) string {
	return fmt.Sprintf("cg:{t}:%s list ttl=none %v", key, items)
}

func wantString(key, value string) string {
	return fmt.Sprintf("cg:{t}:%s string ttl=none %s", key, value)
}

// wantRow is a report rows' day ZSET of one row (it expires).
func wantRow(key string, score int, row string) string {
	return fmt.Sprintf("cg:{t}:%s zset ttl=set %v", key, []redis.Z{{Score: float64(score), Member: row}})
}

// wantStringTTL is a string key with an expiry.
func wantStringTTL(key, value string) string {
	return fmt.Sprintf("cg:{t}:%s string ttl=set %s", key, value)
}

// eligibleAgent seeds an agent online on whatsapp with a capacity and a load.
func (s rawState) eligibleAgent(agent string, capacity, load int) {
	s.hash("presence:"+agent, "whatsapp", "online")
	s.hash("cap:"+agent, "whatsapp", capacity)
	if load > 0 {
		s.hash("load:"+agent, "whatsapp", load)
	}
}

// TestDeliverScriptRawState: a first message opens a contact, a conversation and a card and offers
// the card to the candidate in the same step; the next message joins the conversation; a
// redelivery changes nothing.
func TestDeliverScriptRawState(t *testing.T) {
	ctx := context.Background()
	s := newRawState(t)
	s.eligibleAgent("ana", 2, 0)
	s.zset("avail:sales:whatsapp", 500, "ana")
	args := deliverArgs{keys: rawKeys, channel: "whatsapp", entryPoint: "100", queue: "sales",
		providerMessageID: "wamid.1", messageID: "M1", conversationID: "C1", cardID: "D1", newContactID: "K1",
		now: 1000, at: 900, kind: "text", text: "oi", payload: `{"x":1}`, contactName: "Maria",
		windowExpires: "86400900", entryDisplay: "+55 11 4000-0000", offerTimeout: 30000, strategy: "longest_idle",
		cardsToScan: cardsToScan, agentsToScan: agentsToScan, entries: "100\n",
		identifiers: []Identifier{phone("5511999990001")}}
	out, err := deliverScript.Run(ctx, s.client, args)
	if err != nil {
		t.Fatal(err)
	}
	if out.duplicate || out.messageID != "M1" || out.conversationID != "C1" || out.cardID != "D1" || out.newCardID != "D1" ||
		out.agent != "" || out.cardState != CardWaiting || out.candidates != 1 || out.contactID != "K1" {
		t.Errorf("reply: %+v", out)
	}
	if d := out.decision; d.outcome != "offered" || d.card != "D1" || d.agent != "ana" || d.stillWaiting ||
		d.cardFields["state"] != CardOffered || d.convFields["agent"] != "ana" {
		t.Errorf("decision: %+v", d)
	}
	convFields := []string{"id", "C1", "channel", "whatsapp", "entry_point", "100", "queue", "sales", "state", "open",
		"agent", "ana", "card", "D1", "opened_at", "1000", "contact_id", "K1", "contact_name", "Maria",
		"contact_phone", "+5511999990001", // identifiers the customer has not shown: no field
		"entry_point_display", "+55 11 4000-0000",
		"first_offered_at", "1000", "offers", "1"} // reports: the offer is counted
	cardFields := []string{"id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "offered",
		"agent", "ana", "created_at", "1000", "preview", "oi", "offered_at", "1000", "expires_at", "31000"}
	// Compact: no id field (the key has it), the payload as given (the caller compacts it), no dedup key.
	m1 := wantHash("msg:M1", "conversation_id", "C1", "direction", "in", "channel", "whatsapp",
		"provider_message_id", "wamid.1", "kind", "text", "text", "oi", "x", `{"x":1}`, "at", "900")
	unchanged := []string{
		wantHash("presence:ana", "whatsapp", "online"),
		wantHash("cap:ana", "whatsapp", "2"),
		wantHash("contact:K1", "id", "K1", "channel", "whatsapp", "created_at", "1000", "phone", "5511999990001", "name", "Maria", "convs", "1"),
		wantSet("contactids:K1", "phone:5511999990001"),
		wantZSet("retention", 1000, "C1"), // retention looks at it at once, and schedules it (retention.go)
		wantString("ident:whatsapp:phone:5511999990001", "K1"),
		wantString("convopen:whatsapp:100:K1", "C1"),
		wantHash("card:D1", cardFields...),
		wantZSet("offers", 31000, "D1"),
		wantHash("load:ana", "whatsapp", "1"),
		wantSet("agentcards:ana", "D1"),
		// longest_idle: the agent offered to goes to the back, scored by the offer's time
		wantZSet("avail:sales:whatsapp", 1000, "ana"),
		m1,
	}
	s.want(append(unchanged,
		wantHash("conv:C1", append(convFields, "last_customer_message_at", "900", "window_expires_at", "86400900")...),
		wantList("convmsgs:C1", "M1"))...)

	// The customer writes again: the message joins the open conversation, held by ana; the window moves on.
	args.providerMessageID, args.messageID, args.conversationID, args.cardID, args.newContactID = "wamid.2", "M2", "C2", "D2", "K2"
	args.now, args.at, args.text, args.windowExpires = 2000, 1900, "tudo bem?", "86401900"
	out, err = deliverScript.Run(ctx, s.client, args)
	if err != nil {
		t.Fatal(err)
	}
	if out.duplicate || out.messageID != "M2" || out.conversationID != "C1" || out.cardID != "D1" || out.newCardID != "" ||
		out.agent != "ana" || out.cardState != CardOffered || out.candidates != 0 || out.decision.outcome != "" || out.contactID != "K1" {
		t.Errorf("reply of the second message: %+v", out)
	}
	all := append(unchanged,
		wantHash("conv:C1", append(convFields, "last_customer_message_at", "1900", "window_expires_at", "86401900")...),
		wantList("convmsgs:C1", "M1", "M2"),
		wantHash("msg:M2", "conversation_id", "C1", "direction", "in", "channel", "whatsapp",
			"provider_message_id", "wamid.2", "kind", "text", "text", "tudo bem?", "x", `{"x":1}`, "at", "1900"))
	s.want(all...)

	// Meta redelivers the first notification (the same provider id, so the same message id): recognised,
	// nothing written.
	args.providerMessageID, args.messageID, args.text = "wamid.1", "M1", "changed"
	out, err = deliverScript.Run(ctx, s.client, args)
	if err != nil || !out.duplicate || out.messageID != "M1" {
		t.Errorf("redelivery: %+v, %v; want the duplicate of M1", out, err)
	}
	s.want(all...)
}

// TestOfferScriptRawState: the first waiting card goes to the best eligible candidate that has not
// refused it; an ineligible candidate leaves the set; least_busy scores the load.
func TestOfferScriptRawState(t *testing.T) {
	ctx := context.Background()
	s := newRawState(t)
	s.hash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "waiting",
		"agent", "", "created_at", 100)
	s.hash("conv:C1", "id", "C1", "agent", "", "card", "D1")
	s.zset("waiting:sales:whatsapp", 100, "D1")
	s.zset("refused:D1", 500, "ana")
	s.eligibleAgent("ana", 1, 0)
	s.hash("presence:cid", "whatsapp", "paused")
	s.hash("cap:cid", "whatsapp", 1)
	s.eligibleAgent("bia", 2, 0)
	s.zset("avail:sales:whatsapp", 10, "ana", 15, "cid", 20, "bia")

	d, err := offerScript.Run(ctx, s.client, offerArgs{keys: rawKeys, queue: "sales", channel: "whatsapp", now: 1000,
		offerTimeout: 30000, strategy: "least_busy", audit: true, cardsToScan: cardsToScan, agentsToScan: agentsToScan})
	if err != nil {
		t.Fatal(err)
	}
	if d.outcome != "offered" || d.card != "D1" || d.agent != "bia" || d.stillWaiting || d.cardFields["agent"] != "bia" ||
		d.convFields["id"] != "C1" {
		t.Errorf("decision: %+v", d)
	}
	s.want(
		wantHash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "offered",
			"agent", "bia", "created_at", "100", "offered_at", "1000", "expires_at", "31000"),
		wantHash("conv:C1", "id", "C1", "agent", "bia", "card", "D1", "first_offered_at", "1000", "offers", "1"),
		wantZSet("refused:D1", 500, "ana"),
		wantHash("presence:ana", "whatsapp", "online"),
		wantHash("cap:ana", "whatsapp", "1"),
		wantHash("presence:cid", "whatsapp", "paused"),
		wantHash("cap:cid", "whatsapp", "1"),
		wantHash("presence:bia", "whatsapp", "online"),
		wantHash("cap:bia", "whatsapp", "2"),
		wantHash("load:bia", "whatsapp", "1"),
		wantSet("agentcards:bia", "D1"),
		wantZSet("offers", 31000, "D1"),
		// ana refused the card but stays a candidate; cid, paused, is dropped; bia is scored load·1e13 + now
		wantZSet("avail:sales:whatsapp", 10, "ana", float64(1*leastBusyLoadUnit+1000), "bia"),
		wantList("audit", "D1|bia|online|1|2"),
	)

	// Nothing waits any more.
	d, err = offerScript.Run(ctx, s.client, offerArgs{keys: rawKeys, queue: "sales", channel: "whatsapp", now: 2000,
		offerTimeout: 30000, strategy: "least_busy", cardsToScan: cardsToScan, agentsToScan: agentsToScan})
	if err != nil || d.outcome != "empty" {
		t.Errorf("offer of an empty queue: %+v, %v", d, err)
	}
}

// TestOfferScriptReoffersRawState: a card every eligible candidate refused goes to none of them
// before reoffer_after; then to the one that refused it longest ago, whatever the strategy order;
// a candidate that never refused it comes first.
func TestOfferScriptReoffersRawState(t *testing.T) {
	ctx := context.Background()
	s := newRawState(t)
	s.hash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "waiting",
		"agent", "", "created_at", 100)
	s.hash("conv:C1", "id", "C1", "agent", "", "card", "D1")
	s.zset("waiting:sales:whatsapp", 100, "D1")
	s.zset("refused:D1", 500, "ana", 300, "bia", 400, "cid")
	s.eligibleAgent("ana", 1, 0)
	s.eligibleAgent("bia", 1, 0)
	s.eligibleAgent("cid", 1, 0)
	s.hash("presence:bia", "whatsapp", "paused") // bia refused first, but cannot take it now
	s.zset("avail:sales:whatsapp", 10, "ana", 20, "bia", 30, "cid")
	run := func(now int64) decision {
		t.Helper()
		d, err := offerScript.Run(ctx, s.client, offerArgs{keys: rawKeys, queue: "sales", channel: "whatsapp", now: now,
			offerTimeout: 30000, strategy: "longest_idle", cardsToScan: cardsToScan, agentsToScan: agentsToScan, reofferAfter: 600})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := run(999); d.outcome != "none" {
		t.Errorf("before cid's refusal is reoffer_after old: %+v; want none", d)
	}
	s.zset("avail:sales:whatsapp", 20, "bia") // bia, dropped as paused, is a candidate again (still paused)
	if d := run(1000); d.outcome != "offered" || d.agent != "cid" {
		t.Fatalf("at 1000: %+v; want cid (refused at 400, the oldest of the eligible)", d)
	}
	s.want(
		wantHash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "offered",
			"agent", "cid", "created_at", "100", "offered_at", "1000", "expires_at", "31000"),
		wantHash("conv:C1", "id", "C1", "agent", "cid", "card", "D1", "first_offered_at", "1000", "offers", "1"),
		wantZSet("refused:D1", 300, "bia", 400, "cid", 500, "ana"),
		wantHash("presence:ana", "whatsapp", "online"),
		wantHash("cap:ana", "whatsapp", "1"),
		wantHash("presence:bia", "whatsapp", "paused"),
		wantHash("cap:bia", "whatsapp", "1"),
		wantHash("presence:cid", "whatsapp", "online"),
		wantHash("cap:cid", "whatsapp", "1"),
		wantHash("load:cid", "whatsapp", "1"),
		wantSet("agentcards:cid", "D1"),
		wantZSet("offers", 31000, "D1"),
		// bia, paused, is dropped; cid, at capacity, leaves the set
		wantZSet("avail:sales:whatsapp", 10, "ana"),
	)

	// A candidate that never refused the card is preferred to any due refusal.
	s.hash("card:D2", "id", "D2", "conversation_id", "C2", "queue", "sales", "channel", "whatsapp", "state", "waiting",
		"agent", "", "created_at", 200)
	s.hash("conv:C2", "id", "C2", "agent", "", "card", "D2")
	s.zset("waiting:sales:whatsapp", 200, "D2")
	s.zset("refused:D2", 100, "ana")
	s.eligibleAgent("dan", 1, 0)
	s.zset("avail:sales:whatsapp", 40, "dan")
	if d := run(5000); d.outcome != "offered" || d.card != "D2" || d.agent != "dan" {
		t.Errorf("D2: %+v; want dan, who never refused it", d)
	}
}

// TestMaxWaitOverflowScriptRawState: a card past max_wait with the overflow action leaves its queue
// for the overflow queue, first in line there, and its conversation follows; once.
func TestMaxWaitOverflowScriptRawState(t *testing.T) {
	ctx := context.Background()
	s := newRawState(t)
	s.hash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "waiting",
		"agent", "", "created_at", 100)
	s.hash("conv:C1", "id", "C1", "queue", "sales", "agent", "", "card", "D1")
	s.zset("waiting:sales:whatsapp", 100, "D1")
	s.zset("waiting:help:whatsapp", 50, "D0")
	args := maxWaitArgs{keys: rawKeys, card: "D1", queue: "sales", channel: "whatsapp", now: 1099, maxWait: 1000,
		action: "overflow", overflowQueue: "help"}
	before := s.contents()
	if out, err := maxWaitScript.Run(ctx, s.client, args); err != nil || out.code != "no" || s.contents() != before {
		t.Errorf("before max_wait: %+v, %v (or Redis changed)", out, err)
	}
	args.now = 1100
	if out, err := maxWaitScript.Run(ctx, s.client, args); err != nil || out.code != "overflowed" || out.conversationID != "C1" {
		t.Fatalf("at max_wait: %+v, %v", out, err)
	}
	s.want(
		wantHash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "help", "channel", "whatsapp", "state", "waiting",
			"agent", "", "created_at", "100", "max_wait_at", "1100", "overflowed_from", "sales"),
		wantHash("conv:C1", "id", "C1", "queue", "help", "agent", "", "card", "D1"),
		wantZSet("waiting:help:whatsapp", 100-10000000000000, "D1", 50, "D0"),
	)
	args.queue, args.overflowQueue, args.now = "help", "sales", 5000
	after := s.contents()
	if out, err := maxWaitScript.Run(ctx, s.client, args); err != nil || out.code != "no" || s.contents() != after {
		t.Errorf("max_wait again in the overflow queue: %+v, %v; want no (handled once)", out, err)
	}
}

// offeredCard seeds card D1 of conversation C1 (open, entry point 100, contact K1) offered to ana.
func (s rawState) offeredCard() {
	s.hash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "offered",
		"agent", "ana", "created_at", 100, "offered_at", 1000, "expires_at", 31000)
	s.hash("conv:C1", "id", "C1", "channel", "whatsapp", "entry_point", "100", "contact_id", "K1", "state", "open",
		"agent", "ana", "card", "D1")
	s.str("convopen:whatsapp:100:K1", "C1")
	s.zset("offers", 31000, "D1")
	s.hash("load:ana", "whatsapp", 1)
	s.set("agentcards:ana", "D1")
}

// TestAcceptScriptRawState: only the agent offered the card accepts it, once; accepting clears the
// offer's expiry and the agent's run of unanswered offers.
func TestAcceptScriptRawState(t *testing.T) {
	ctx := context.Background()
	s := newRawState(t)
	s.offeredCard()
	s.str("noanswer:ana", "2")
	before := s.contents()
	for _, tc := range []struct {
		card, agent string
		want        error
	}{{"D1", "bia", ErrNotYours}, {"D9", "ana", ErrNotFound}} {
		out, err := acceptScript.Run(ctx, s.client, acceptArgs{keys: rawKeys, card: tc.card, agent: tc.agent, now: 2000})
		if err != nil || out.err() != tc.want {
			t.Errorf("accept of %s by %s: %+v, %v; want %v", tc.card, tc.agent, out, err, tc.want)
		}
	}
	if after := s.contents(); after != before {
		t.Errorf("a refused accept changed Redis:\n%s\nwant\n%s", after, before)
	}
	out, err := acceptScript.Run(ctx, s.client, acceptArgs{keys: rawKeys, card: "D1", agent: "ana", now: 2000})
	if err != nil || out.err() != nil {
		t.Fatalf("accept: %+v, %v", out, err)
	}
	s.want(
		wantHash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "accepted",
			"agent", "ana", "created_at", "100", "offered_at", "1000", "expires_at", "", "accepted_at", "2000"),
		wantHash("conv:C1", "id", "C1", "channel", "whatsapp", "entry_point", "100", "contact_id", "K1", "state", "open",
			"agent", "ana", "card", "D1", "agents", "ana"),
		wantString("convopen:whatsapp:100:K1", "C1"),
		wantHash("load:ana", "whatsapp", "1"),
		wantSet("agentcards:ana", "D1"),
	)
	out, err = acceptScript.Run(ctx, s.client, acceptArgs{keys: rawKeys, card: "D1", agent: "ana", now: 3000})
	if err != nil || out.err() != ErrWrongState || out.state != CardAccepted {
		t.Errorf("accept again: %+v, %v; want the state accepted", out, err)
	}
}

// TestDeclineScriptRawState: a decline (releaseScript) puts the card back in its old place, never
// to be offered to the agent again, and frees the agent's slot; a timeout also counts the agent's
// unanswered offers, and is not due before the offer expires.
func TestDeclineScriptRawState(t *testing.T) {
	ctx := context.Background()
	released := func(outcome string, at int) []string {
		counter := map[string]string{"declined": "declines", "timed_out": "timeouts"}[outcome]
		return []string{
			wantHash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "waiting",
				"agent", "", "created_at", "100", "offered_at", "", "expires_at", "", "last_outcome", outcome),
			wantHash("conv:C1", "id", "C1", "channel", "whatsapp", "entry_point", "100", "contact_id", "K1", "state", "open",
				"agent", "", "card", "D1", counter, "1"),
			wantString("convopen:whatsapp:100:K1", "C1"),
			wantZSet("refused:D1", at, "ana"),
			wantZSet("reoffers", at+60000, "D1|ana"),
			wantZSet("waiting:sales:whatsapp", 100, "D1"),
			wantHash("load:ana", "whatsapp", "0"),
		}
	}
	t.Run("decline", func(t *testing.T) {
		s := newRawState(t)
		s.offeredCard()
		before := s.contents()
		out, err := releaseScript.Run(ctx, s.client, releaseArgs{keys: rawKeys, card: "D1", agent: "bia", now: 2000, mode: releaseDecline})
		if err != nil || out.err() != ErrNotYours || s.contents() != before {
			t.Errorf("decline by another agent: %+v, %v (or Redis changed)", out, err)
		}
		out, err = releaseScript.Run(ctx, s.client, releaseArgs{keys: rawKeys, card: "D1", agent: "ana", now: 2000, mode: releaseDecline,
			reofferAfter: 60000})
		if err != nil || out.err() != nil || out.holder != "ana" || out.queue != "sales" || out.channel != "whatsapp" || out.noAnswer != 0 {
			t.Fatalf("decline: %+v, %v", out, err)
		}
		s.want(released("declined", 2000)...)
	})
	t.Run("timeout", func(t *testing.T) {
		s := newRawState(t)
		s.offeredCard()
		before := s.contents()
		out, err := releaseScript.Run(ctx, s.client, releaseArgs{keys: rawKeys, card: "D1", now: 30999, mode: releaseTimeout})
		if err != nil || out.code != "not_due" || s.contents() != before {
			t.Errorf("timeout before the expiry: %+v, %v (or Redis changed)", out, err)
		}
		out, err = releaseScript.Run(ctx, s.client, releaseArgs{keys: rawKeys, card: "D1", now: 31000, mode: releaseTimeout, reofferAfter: 60000})
		if err != nil || out.err() != nil || out.holder != "ana" || out.noAnswer != 1 {
			t.Fatalf("timeout: %+v, %v", out, err)
		}
		s.want(append(released("timed_out", 31000), wantString("noanswer:ana", "1"))...)
	})
}

// TestCloseScriptRawState: the holder closes its accepted card: card and conversation closed by it,
// the open-conversation index gone, its slot freed; a supervisor may close a waiting card.
func TestCloseScriptRawState(t *testing.T) {
	ctx := context.Background()
	t.Run("holder", func(t *testing.T) {
		s := newRawState(t)
		s.offeredCard()
		s.hash("card:D1", "state", "accepted", "accepted_at", 2000, "expires_at", "")
		s.client.Del(ctx, "cg:{t}:offers")
		before := s.contents()
		for _, a := range []closeArgs{{card: "D1", agent: "bia"}, {card: "D9", agent: "ana"}} {
			a.keys, a.now = rawKeys, 5000
			out, err := closeScript.Run(ctx, s.client, a)
			if err != nil || out.err() == nil {
				t.Errorf("close of %s by %s: %+v, %v; want refused", a.card, a.agent, out, err)
			}
		}
		if s.contents() != before {
			t.Errorf("a refused close changed Redis")
		}
		out, err := closeScript.Run(ctx, s.client, closeArgs{keys: rawKeys, card: "D1", agent: "ana", now: 5000})
		if err != nil || out.err() != nil || out.holder != "ana" || out.queue != "sales" || out.channel != "whatsapp" || out.conversationID != "C1" {
			t.Fatalf("close: %+v, %v", out, err)
		}
		s.want(
			wantHash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "closed",
				"agent", "ana", "created_at", "100", "offered_at", "1000", "expires_at", "", "accepted_at", "2000",
				"closed_at", "5000", "closed_by", "ana"),
			wantHash("conv:C1", "id", "C1", "channel", "whatsapp", "entry_point", "100", "contact_id", "K1", "state", "closed",
				"agent", "ana", "card", "D1", "closed_at", "5000", "closed_by", "ana"),
			wantHash("load:ana", "whatsapp", "0"),
			// reports: the conversation's row, on the UTC day of its creation (day 0 here)
			wantRow("rpt:conv:0", 100, "v1|C1|whatsapp||100|ana|K1||100||1900||4900|0|0|0|0||handled|ana"),
		)
		out, err = closeScript.Run(ctx, s.client, closeArgs{keys: rawKeys, card: "D1", agent: "ana", now: 6000})
		if err != nil || out.err() != ErrWrongState || out.state != CardClosed {
			t.Errorf("close again: %+v, %v", out, err)
		}
	})
	t.Run("supervisor", func(t *testing.T) {
		s := newRawState(t)
		s.hash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "waiting",
			"agent", "", "created_at", 100)
		s.hash("conv:C1", "id", "C1", "channel", "whatsapp", "entry_point", "100", "contact_id", "K1", "state", "open",
			"agent", "", "card", "D1")
		s.str("convopen:whatsapp:100:K1", "C1")
		s.zset("waiting:sales:whatsapp", 100, "D1", 200, "D2")
		out, err := closeScript.Run(ctx, s.client, closeArgs{keys: rawKeys, card: "D1", agent: "sue", now: 5000})
		if err != nil || out.err() != ErrNotYours {
			t.Errorf("close of a waiting card without force: %+v, %v", out, err)
		}
		out, err = closeScript.Run(ctx, s.client, closeArgs{keys: rawKeys, card: "D1", agent: "sue", now: 5000, force: true})
		if err != nil || out.err() != nil || out.holder != "" || out.conversationID != "C1" {
			t.Fatalf("forced close: %+v, %v", out, err)
		}
		s.want(
			wantHash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "closed",
				"agent", "", "created_at", "100", "expires_at", "", "closed_at", "5000", "closed_by", "sue"),
			wantHash("conv:C1", "id", "C1", "channel", "whatsapp", "entry_point", "100", "contact_id", "K1", "state", "closed",
				"agent", "", "card", "D1", "closed_at", "5000", "closed_by", "sue"),
			wantZSet("waiting:sales:whatsapp", 200, "D2"),
			// closed before anyone accepted it: the customer left
			wantRow("rpt:conv:0", 100, "v1|C1|whatsapp||100||K1||100||||4900|0|0|0|0||abandoned|sue"),
		)
	})
}

// TestRequeueScriptRawState: an agent's logout from a channel gives back its cards of that channel
// to the front of their queues, in their order, and zeroes its load there; other channels' cards stay.
func TestRequeueScriptRawState(t *testing.T) {
	ctx := context.Background()
	s := newRawState(t)
	card := func(id, conv, channel, state string, created int) {
		s.hash("card:"+id, "id", id, "conversation_id", conv, "queue", "sales", "channel", channel, "state", state,
			"agent", "ana", "created_at", created)
		s.hash("conv:"+conv, "id", conv, "agent", "ana", "card", id)
	}
	card("D1", "C1", "whatsapp", "offered", 100)
	s.hash("card:D1", "offered_at", 1000, "expires_at", 31000)
	card("D2", "C2", "whatsapp", "accepted", 200)
	card("D3", "C3", "webchat", "accepted", 300)
	s.zset("offers", 31000, "D1")
	s.zset("waiting:sales:whatsapp", 400, "D4")
	s.set("agentcards:ana", "D1", "D2", "D3")
	s.hash("load:ana", "whatsapp", 2, "webchat", 1)

	out, err := requeueScript.Run(ctx, s.client, requeueArgs{keys: rawKeys, agent: "ana", channel: "whatsapp"})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].card < out[j].card })
	if want := []requeuedCard{{"D1", CardOffered, "sales"}, {"D2", CardAccepted, "sales"}}; !slices.Equal(out, want) {
		t.Errorf("requeued: %+v, want %+v", out, want)
	}
	requeued := func(id, conv, created string) []string {
		return []string{
			wantHash("card:"+id, "id", id, "conversation_id", conv, "queue", "sales", "channel", "whatsapp", "state", "waiting",
				"agent", "", "created_at", created, "offered_at", "", "expires_at", "", "last_outcome", "requeued"),
			wantHash("conv:"+conv, "id", conv, "agent", "", "card", id),
		}
	}
	s.want(append(append(requeued("D1", "C1", "100"), requeued("D2", "C2", "200")...),
		wantHash("card:D3", "id", "D3", "conversation_id", "C3", "queue", "sales", "channel", "webchat", "state", "accepted",
			"agent", "ana", "created_at", "300"),
		wantHash("conv:C3", "id", "C3", "agent", "ana", "card", "D3"),
		// before the cards that waited: created_at − 1e13
		wantZSet("waiting:sales:whatsapp", float64(100-1e13), "D1", float64(200-1e13), "D2", 400, "D4"),
		wantSet("agentcards:ana", "D3"),
		wantHash("load:ana", "whatsapp", "0", "webchat", "1"),
	)...)
}

// TestStartScriptRawState: an agent's start creates the contact the number has none of (counting the
// conversation), or copies the names of the one it has into the conversation; the conversation and
// its card are accepted by the agent, whose load grows and who is a candidate again while below
// capacity; a second start to the same number joins the open conversation; at capacity nothing is written.
func TestStartScriptRawState(t *testing.T) {
	ctx := context.Background()
	s := newRawState(t)
	s.eligibleAgent("ana", 3, 1)
	s.zset("avail:sales:whatsapp", 500, "ana")
	s.zset("waiting:sales:whatsapp", 400, "D9")
	s.hash("contact:K0", "id", "K0", "channel", "whatsapp", "phone", "5511999990002", "name", "Maria",
		"bsuid", "BR.1", "username", "maria", "convs", 1)
	s.str("ident:whatsapp:phone:5511999990002", "K0")
	start := func(phone, conv, card, msg, contact string, now int64) startReply {
		t.Helper()
		out, err := startScript.Run(ctx, s.client, startArgs{keys: rawKeys, agent: "ana", channel: "whatsapp",
			entryPoint: "100", queue: "sales", phone: phone, conversationID: conv, cardID: card, messageID: msg,
			newContactID: contact, now: now, kind: "template", text: "olá", payload: `{"name":"hi"}`, capacity: 3,
			candidateIn: []candidateQueue{{id: "sales", strategy: "least_busy"}}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	conv := func(id, card, contact, name, phone, bsuid, username string, at int) string {
		return wantHash("conv:"+id, "id", id, "channel", "whatsapp", "entry_point", "100", "queue", "sales",
			"contact_id", contact, "contact_name", name, "contact_phone", "+"+phone, "contact_bsuid", bsuid,
			"contact_username", username, "state", "open", "agent", "ana", "card", card, "opened_at", fmt.Sprint(at),
			"origin", "agent")
	}
	card := func(id, conv string, at int) string {
		a := fmt.Sprint(at)
		return wantHash("card:"+id, "id", id, "conversation_id", conv, "queue", "sales", "channel", "whatsapp",
			"state", "accepted", "agent", "ana", "created_at", a, "offered_at", a, "accepted_at", a, "preview", "olá")
	}
	msg := func(id, conv string, at int) string {
		return wantHash("msg:"+id, "id", id, "conversation_id", conv, "direction", "out", "channel", "whatsapp",
			"kind", "template", "text", "olá", "payload", `{"name":"hi"}`, "at", fmt.Sprint(at), "agent", "ana", "status", "queued")
	}

	// A number without a contact: one is created, counting the conversation.
	out := start("5511999990001", "C1", "D1", "M1", "K1", 1000)
	if out.code != "ok" || out.conversationID != "C1" || !out.opened || !slices.Equal(out.dispatch, []string{"sales"}) ||
		out.convFields["contact_id"] != "K1" || out.convFields["card"] != "D1" {
		t.Errorf("first start: %+v", out)
	}
	first := []string{
		wantHash("presence:ana", "whatsapp", "online"),
		wantHash("cap:ana", "whatsapp", "3"),
		wantZSet("waiting:sales:whatsapp", 400, "D9"),
		wantHash("contact:K1", "id", "K1", "channel", "whatsapp", "created_at", "1000", "phone", "5511999990001", "convs", "1"),
		wantString("ident:whatsapp:phone:5511999990001", "K1"),
		wantSet("contactids:K1", "phone:5511999990001"),
		wantString("ident:whatsapp:phone:5511999990002", "K0"),
		conv("C1", "D1", "K1", "", "5511999990001", "", "", 1000),
		wantString("convopen:whatsapp:100:K1", "C1"),
		card("D1", "C1", 1000),
		msg("M1", "C1", 1000),
	}
	s.want(append(first,
		wantHash("contact:K0", "id", "K0", "channel", "whatsapp", "phone", "5511999990002", "name", "Maria",
			"bsuid", "BR.1", "username", "maria", "convs", "1"),
		wantList("convmsgs:C1", "M1"),
		wantZSet("retention", 1000, "C1"),
		wantHash("load:ana", "whatsapp", "2"),
		wantSet("agentcards:ana", "D1"),
		wantZSet("avail:sales:whatsapp", float64(2e13+1000), "ana"), // least_busy: by the load
	)...)

	// The same number again: the message joins the open conversation; nothing else changes.
	out = start("5511999990001", "C2", "D2", "M2", "K2", 2000)
	if out.code != "ok" || out.conversationID != "C1" || out.opened || len(out.dispatch) != 0 {
		t.Errorf("second start: %+v", out)
	}
	// A number with a contact: its names go into the conversation, its count grows; the agent reaches
	// its capacity, so it is no candidate.
	out = start("5511999990002", "C3", "D3", "M3", "K3", 3000)
	if out.code != "ok" || out.conversationID != "C3" || !out.opened || len(out.dispatch) != 0 ||
		out.convFields["contact_name"] != "Maria" {
		t.Errorf("third start: %+v", out)
	}
	all := append(first,
		wantHash("contact:K0", "id", "K0", "channel", "whatsapp", "phone", "5511999990002", "name", "Maria",
			"bsuid", "BR.1", "username", "maria", "convs", "2"),
		wantList("convmsgs:C1", "M1", "M2"),
		msg("M2", "C1", 2000),
		conv("C3", "D3", "K0", "Maria", "5511999990002", "BR.1", "maria", 3000),
		wantString("convopen:whatsapp:100:K0", "C3"),
		card("D3", "C3", 3000),
		msg("M3", "C3", 3000),
		wantList("convmsgs:C3", "M3"),
		wantZSet("retention", 1000, "C1", 3000, "C3"),
		wantHash("load:ana", "whatsapp", "3"),
		wantSet("agentcards:ana", "D1", "D3"),
		wantZSet("avail:sales:whatsapp", float64(2e13+1000), "ana"),
	)
	s.want(all...)

	// At capacity: refused, nothing written.
	if out = start("5511999990003", "C4", "D4", "M4", "K4", 4000); out.code != "at_capacity" {
		t.Errorf("fourth start: %+v", out)
	}
	s.want(all...)
}

// TestReportRowOutcomes: the close reason and whether anyone accepted decide the row's outcome
// (reportOutcome, the one mapping); the other parts' fields (transfers, disposition,
// first_response_at) are read when present; a row whose day is older than the retention is not written.
func TestReportRowOutcomes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		reason   string
		accepted bool
		want     string
	}{
		{"", true, "handled"}, {"", false, "abandoned"}, {"max_wait", false, "closed_max_wait"},
		{"out_of_hours", false, "closed_out_of_hours"}, {"idle", true, "closed_idle"},
	} {
		s := newRawState(t)
		s.hash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "waiting",
			"agent", "", "created_at", 86400000+100)
		s.hash("conv:C1", "id", "C1", "channel", "whatsapp", "entry_point", "100", "queue", "sales", "contact_id", "K1",
			"contact_phone", "+55|11", "state", "open", "agent", "", "card", "D1", "transfers", "2", "disposition", "venda\nfeita",
			"first_response_at", 86400000+700, "offers", "3", "agents", "ana,bob")
		if tc.accepted {
			s.hash("card:D1", "state", "accepted", "accepted_at", 86400000+400, "agent", "bob")
		}
		out, err := closeScript.Run(ctx, s.client, closeArgs{keys: rawKeys, card: "D1", agent: "sue", now: 86400000 + 5000, force: true,
			reportRetention: 3600, reason: tc.reason})
		if err != nil || out.err() != nil {
			t.Fatalf("%+v: %+v, %v", tc, out, err)
		}
		rows := s.client.ZRange(ctx, "cg:{t}:rpt:conv:1", 0, -1).Val()
		accepted := ""
		if tc.accepted {
			accepted = "300"
		}
		want := "v1|C1|whatsapp|sales|100|ana,bob|K1|+55 11|86400100||" + accepted + "|600|4900|3|0|0|2|venda feita|" + tc.want + "|sue"
		if len(rows) != 1 || rows[0] != want {
			t.Errorf("%+v: rows %q, want %q", tc, rows, want)
		}
		// A conversation older than the retention leaves no row.
		s.client.Del(ctx, "cg:{t}:rpt:conv:1")
		s.hash("card:D1", "state", "accepted")
		s.hash("conv:C1", "state", "open")
		if _, err := closeScript.Run(ctx, s.client, closeArgs{keys: rawKeys, card: "D1", agent: "sue", now: 3 * 86400000, force: true,
			reportRetention: 3600, reason: tc.reason}); err != nil {
			t.Fatal(err)
		}
		if n := s.client.Exists(ctx, "cg:{t}:rpt:conv:1").Val(); n != 0 {
			t.Errorf("a row past the retention was written")
		}
	}
}

// TestReportAggregatesZone: the close adds the conversation to its day's aggregates in the reports'
// zone, by the offset in effect at its creation (New York, the night summer time ended: created 00:30
// EDT on 1 November, closed after the change) — one packed group per dimension, every agent that
// accepted it, expiring the summary retention after the day.
func TestReportAggregatesZone(t *testing.T) {
	ctx := context.Background()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	r := &Router{reportLocation: ny, reportSummaryRetention: 400 * 24 * time.Hour}
	created := time.Date(2026, 11, 1, 4, 30, 0, 0, time.UTC) // 00:30 EDT
	now := time.Date(2026, 11, 1, 7, 0, 0, 0, time.UTC)      // 02:00 EST
	s := newRawState(t)
	s.hash("card:D1", "id", "D1", "conversation_id", "C1", "queue", "sales", "channel", "whatsapp", "state", "accepted",
		"agent", "bob", "created_at", created.UnixMilli(), "accepted_at", created.Add(30*time.Second).UnixMilli())
	s.hash("conv:C1", "id", "C1", "channel", "whatsapp", "entry_point", "100", "queue", "sales", "contact_id", "K1",
		"state", "open", "agent", "bob", "card", "D1", "agents", "ana,bob,ana") // ana took it back: counted once
	out, err := closeScript.Run(ctx, s.client, closeArgs{keys: rawKeys, card: "D1", agent: "bob", now: now.UnixMilli(),
		reportRetention: 3600, agg: r.reportAgg(now, time.Minute)})
	if err != nil || out.err() != nil {
		t.Fatalf("%+v, %v", out, err)
	}
	key := fmt.Sprintf("cg:{t}:rpt:agg:%d", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Unix()/86400)
	got := s.client.HGetAll(ctx, key).Val()
	// 1 conversation, handled, in time (30 s ≤ 60 s), wait 30 000 ms, 1 handle of 8 970 000 ms, no
	// first response; wait in [30, 60), handle in [7200, ∞).
	hist := func(i int) string {
		h := make([]string, len(ReportBuckets))
		for j := range h {
			h[j] = "0"
			if j == i {
				h[j] = "1"
			}
		}
		return strings.Join(h, ",")
	}
	want := "1,1,0,0,0,0,1,30000,1,8970000,0,0," + hist(4) + "," + hist(len(ReportBuckets)-1) + "," + hist(-1)
	fields := []string{"*|", "q|sales", "c|whatsapp", "d|", "o|handled", "h|00", "a|ana", "a|bob"}
	if len(got) != len(fields) {
		t.Errorf("aggregates of %s: %v", key, got)
	}
	for _, f := range fields {
		if got[f] != want {
			t.Errorf("%s = %q, want %q", f, got[f], want)
		}
	}
	if ttl := s.client.TTL(ctx, key).Val(); ttl < 400*24*time.Hour || ttl > 401*24*time.Hour {
		t.Errorf("TTL %v", ttl)
	}
}

// TestDeliverScriptWindowNeverMovesBack: the usual message compares its times with the stored ones as
// strings when they have as many digits, as numbers when not; either way a late message moves neither
// last_customer_message_at nor window_expires_at back, and a later one moves both.
func TestDeliverScriptWindowNeverMovesBack(t *testing.T) {
	ctx := context.Background()
	s := newRawState(t)
	args := deliverArgs{keys: rawKeys, channel: "whatsapp", entryPoint: "100", queue: "sales",
		providerMessageID: "wamid.1", messageID: "M1", conversationID: "C1", cardID: "D1", newContactID: "K1",
		now: 1000, at: 900, kind: "text", text: "oi", windowExpires: "86400900", offerTimeout: 30000, strategy: "longest_idle",
		cardsToScan: cardsToScan, agentsToScan: agentsToScan, entries: "100\n", identifiers: []Identifier{phone("5511999990001")}}
	if _, err := deliverScript.Run(ctx, s.client, args); err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		at             int64
		window         string
		wantAt, wantWE string
	}{
		{500, "86400500", "900", "86400900"},       // late, as many digits: string compare
		{10000, "186400900", "10000", "186400900"}, // later, more digits: number compare
		{9999, "99999999", "10000", "186400900"},   // late, fewer digits
		{10001, "", "10001", "186400900"},          // a channel without a window leaves it
	} {
		args.providerMessageID, args.messageID = fmt.Sprintf("wamid.s%d", i), fmt.Sprintf("MS%d", i)
		args.at, args.windowExpires = step.at, step.window
		out, err := deliverScript.Run(ctx, s.client, args)
		if err != nil || out.conversationID != "C1" || out.newCardID != "" {
			t.Fatalf("step %d: %+v, %v", i, out, err)
		}
		got := s.client.HMGet(ctx, "cg:{t}:conv:C1", "last_customer_message_at", "window_expires_at").Val()
		if got[0] != step.wantAt || got[1] != step.wantWE {
			t.Errorf("step %d (at %d, window %q): last_customer_message_at %v window_expires_at %v, want %s %s",
				i, step.at, step.window, got[0], got[1], step.wantAt, step.wantWE)
		}
	}
}

// TestParseDeliverReply: the intake script answers the usual message with one string, a decision
// with a table, and older versions of it a table for everything: all are read alike.
func TestParseDeliverReply(t *testing.T) {
	for _, c := range []struct {
		name string
		in   any
		want deliverReply
	}{
		{"string dup", "dup\nM1", deliverReply{duplicate: true, messageID: "M1"}},
		{"table dup", []any{"dup", "M1"}, deliverReply{duplicate: true, messageID: "M1"}},
		{"string ok", "ok\nM2\nC1\nD1\n\nana\noffered\n0\nK1",
			deliverReply{messageID: "M2", conversationID: "C1", cardID: "D1", agent: "ana", cardState: "offered", contactID: "K1"}},
		{"string ok, a contact id with a line break", "ok\nM2\nC1\nD1\n\n\n\n0\nweb\nchat",
			deliverReply{messageID: "M2", conversationID: "C1", cardID: "D1", contactID: "web\nchat"}},
		{"table ok", []any{"ok", "M2", "C1", "D1", "D1", "", "waiting", "3", []any{}, "K1"},
			deliverReply{messageID: "M2", conversationID: "C1", cardID: "D1", newCardID: "D1", cardState: "waiting", candidates: 3, contactID: "K1"}},
	} {
		got, err := parseDeliverReply(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	for _, bad := range []any{"ok\nM2\nC1", "what\nM1", "ok\nM2\nC1\nD1\n\n\n\nx\nK1", []any{"what"}} {
		if _, err := parseDeliverReply(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
