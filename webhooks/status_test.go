package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/routing"
)

// statusesBody is one notification carrying the statuses, in this order, of the message wamid
// (Meta's shape; failed and warning carry errors[] in Meta's words).
func statusesBody(wamid string, states ...string) []byte {
	var sts []any
	for i, s := range states {
		st := map[string]any{"id": wamid, "status": s, "timestamp": fmt.Sprint(1750000000 + i), "recipient_id": "5511999990001"}
		switch s {
		case "failed":
			st["errors"] = []any{map[string]any{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
				"error_data": map[string]any{"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}}
		case "warning":
			st["errors"] = []any{map[string]any{"code": 2026, "title": "Some products could not be sent"}}
		}
		sts = append(sts, st)
	}
	b, _ := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{"id": "1", "changes": []any{
		map[string]any{"field": "messages", "value": map[string]any{"messaging_product": "whatsapp",
			"metadata": map[string]any{"display_phone_number": "5511", "phone_number_id": "100200300"}, "statuses": sts}}}}}})
	return b
}

// outbound records a message ana sends in a conversation with a customer; when wamid is set, the
// send's answer is recorded too (status sent).
func outbound(t *testing.T, client *redis.Client, url string, router *routing.Router, wamid string) routing.Message {
	t.Helper()
	ctx := context.Background()
	in := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Text: "oi"})
	if status, resp := post(t, url, in, signed(in)); status != 200 {
		t.Fatalf("customer message: %d %s", status, resp)
	}
	contact := client.Get(ctx, "cg:{t}:ident:whatsapp:phone:5511999990001").Val()
	convID := client.Get(ctx, "cg:{t}:convopen:whatsapp:100200300:"+contact).Val()
	m, err := router.RecordOutbound(ctx, convID, "ana", "text", "olá", nil)
	if err != nil {
		t.Fatal(err)
	}
	if wamid != "" {
		if _, _, err := router.UpdateStatus(ctx, m.ID, routing.StatusUpdate{State: "sent", ProviderMessageID: wamid}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// statusEvents are the message.status events of ana's stream after the first skip entries.
func statusEvents(t *testing.T, client *redis.Client, skip int) []routing.Message {
	t.Helper()
	evs, err := routing.NewStreamLog(client, keyspace.New("t"), 0).Since(context.Background(), "ana", "0", 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []routing.Message
	for _, ev := range evs[min(skip, len(evs)):] {
		if ev.Type != routing.EventMessageStatus {
			continue
		}
		b, _ := json.Marshal(ev.Message)
		var m routing.Message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func streamLen(t *testing.T, client *redis.Client) int {
	return int(client.XLen(context.Background(), "cg:{t}:events:ana").Val())
}

// TestEveryStatusIsUnderstood: played (a voice message heard) after read, deleted and warning as
// marks beside the status, an unknown status acknowledged, counted and logged with digits masked.
// Each is answered 200; none is a 5xx that Meta would redeliver forever.
func TestEveryStatusIsUnderstood(t *testing.T) {
	client := redistest.Client(t)
	srv := start(t, client, "")
	ctx := context.Background()
	m := outbound(t, client, srv.url, srv.router, "wamid.VOICE")
	key := "cg:{t}:msg:" + m.ID
	skip := streamLen(t, client)

	for _, step := range []struct {
		states  []string
		receipt string
		status  string
	}{
		{[]string{"read"}, `"statuses":1`, "read"},
		{[]string{"played"}, `"statuses":1`, "played"},
		{[]string{"read"}, `"statuses":0`, "played"}, // a late read never moves played back
		{[]string{"warning"}, `"statuses":1`, "played"},
		{[]string{"deleted"}, `"statuses":1`, "played"},
		{[]string{"deleted"}, `"statuses":0`, "played"}, // once
	} {
		body := statusesBody("wamid.VOICE", step.states...)
		status, resp := post(t, srv.url, body, signed(body))
		if status != 200 || !strings.Contains(resp, step.receipt) {
			t.Fatalf("%v: got %d %s, want 200 with %s", step.states, status, resp, step.receipt)
		}
		if got := client.HGet(ctx, key, "status").Val(); got != step.status {
			t.Fatalf("%v: message status %q, want %q", step.states, got, step.status)
		}
	}
	h := client.HGetAll(ctx, key).Val()
	if h["warning_code"] != "2026" || h["warning_title"] != "Some products could not be sent" || h["deleted_at"] != "1750000000000" {
		t.Errorf("marks: warning %q %q deleted_at %q, want 2026, its title and the deleted status's time", h["warning_code"], h["warning_title"], h["deleted_at"])
	}
	evs := statusEvents(t, client, skip)
	if len(evs) != 4 || evs[0].Status != "read" || evs[1].Status != "played" || evs[2].Warning == nil || evs[2].Warning.Code != 2026 ||
		evs[3].DeletedAt == nil || !evs[3].DeletedAt.Equal(time.Unix(1750000000, 0)) {
		t.Errorf("ana's message.status events: got %+v, want read, played, the warning, the deletion", evs)
	}

	// A status this version does not know: 200, nothing changes, counted and logged without the number.
	before := redistest.Contents(t, client)
	body := statusesBody("wamid.VOICE", "seen_on_glasses")
	if status, resp := post(t, srv.url, body, signed(body)); status != 200 || !strings.Contains(resp, `"statuses":0`) {
		t.Fatalf("unknown status: got %d %s, want 200", status, resp)
	}
	if redistest.Contents(t, client) != before {
		t.Error("an unknown status changed Redis")
	}
	if n := metric(t, srv.reg, "chatgate_webhook_statuses_total", map[string]string{"provider": "whatsapp", "status": "other", "outcome": "unknown"}); n != 1 {
		t.Errorf("unknown statuses counted: %v, want 1", n)
	}
	if n := metric(t, srv.reg, "chatgate_webhook_statuses_total", map[string]string{"provider": "whatsapp", "status": "played", "outcome": "applied"}); n != 1 {
		t.Errorf("played statuses applied: %v, want 1", n)
	}
	recs := srv.logs.find(t, "status of an unknown kind; acknowledged and not applied")
	if len(recs) != 1 || recs[0]["status"] != "seen_on_glasses" || strings.Contains(fmt.Sprint(recs[0]), "5511999990001") {
		t.Errorf("unknown status log: %v, want one line naming it, the recipient's number masked", recs)
	}
}

// TestPlayedReadBatch: [played, read] in one notification (before, played failed the whole
// request with a 500 and the read was never applied) and [read, played].
func TestPlayedReadBatch(t *testing.T) {
	client := redistest.Client(t)
	srv := start(t, client, "")
	ctx := context.Background()
	for _, tc := range []struct {
		states  []string
		receipt string
	}{
		{[]string{"played", "read"}, `"statuses":1`}, // played already says it was read
		{[]string{"read", "played"}, `"statuses":2`},
	} {
		wamid := simulate.NewMessageID()
		m := outbound(t, client, srv.url, srv.router, wamid)
		body := statusesBody(wamid, tc.states...)
		if status, resp := post(t, srv.url, body, signed(body)); status != 200 || !strings.Contains(resp, tc.receipt) {
			t.Fatalf("%v: got %d %s, want 200 with %s", tc.states, status, resp, tc.receipt)
		}
		if got := client.HGet(ctx, "cg:{t}:msg:"+m.ID, "status").Val(); got != "played" {
			t.Errorf("%v: status %q, want played", tc.states, got)
		}
	}
}

// TestStatusBeforeTheSendsAnswer: Meta's statuses for a message whose send's answer has not
// recorded the wamid yet are kept (bounded, with a TTL) and applied, in the machine's order, the
// moment the answer records it — here delivered, read and a late sent, in that order.
func TestStatusBeforeTheSendsAnswer(t *testing.T) {
	client := redistest.Client(t)
	srv := start(t, client, "")
	ctx := context.Background()
	m := outbound(t, client, srv.url, srv.router, "")
	skip := streamLen(t, client)
	body := statusesBody("wamid.EARLY", "read", "delivered")
	if status, resp := post(t, srv.url, body, signed(body)); status != 200 || !strings.Contains(resp, `"pending":2`) {
		t.Fatalf("statuses before the send's answer: got %d %s, want 200 with pending 2", status, resp)
	}
	pending := "cg:{t}:pstatus:whatsapp:wamid.EARLY"
	if n := client.LLen(ctx, pending).Val(); n != 2 {
		t.Fatalf("kept statuses: %d, want 2", n)
	}
	if ttl := client.TTL(ctx, pending).Val(); ttl <= 0 || ttl > 15*time.Minute {
		t.Errorf("kept statuses' TTL: %v, want within 15 minutes", ttl)
	}
	if got := client.HGet(ctx, "cg:{t}:msg:"+m.ID, "status").Val(); got != "queued" {
		t.Fatalf("message status before the answer: %q, want queued", got)
	}
	// The worker records the provider's answer, as outbound.Worker does.
	got, changed, err := srv.router.UpdateStatus(ctx, m.ID, routing.StatusUpdate{State: "sent", ProviderMessageID: "wamid.EARLY"})
	if err != nil || !changed || got.Status != "read" || got.ProviderMessageID != "wamid.EARLY" {
		t.Fatalf("the send's answer: got %+v %v %v, want read with the wamid", got, changed, err)
	}
	if client.Exists(ctx, pending).Val() != 0 || client.ZCard(ctx, "cg:{t}:pstatuses").Val() != 0 {
		t.Error("the kept statuses outlived their application")
	}
	if evs := statusEvents(t, client, skip); len(evs) != 1 || evs[0].Status != "read" {
		t.Errorf("ana's message.status events: %+v, want one, read", evs)
	}
	// Later statuses find the message directly.
	body = statusesBody("wamid.EARLY", "played")
	if status, resp := post(t, srv.url, body, signed(body)); status != 200 || !strings.Contains(resp, `"statuses":1`) {
		t.Fatalf("played after: got %d %s", status, resp)
	}

	// Bounds: at most 8 statuses per wamid; the rest are dropped (and answered 200).
	var states []string
	for i := 0; i < 12; i++ {
		states = append(states, "delivered")
	}
	body = statusesBody("wamid.FLOOD", states...)
	if status, resp := post(t, srv.url, body, signed(body)); status != 200 || !strings.Contains(resp, `"pending":8`) {
		t.Fatalf("12 statuses for one wamid: got %d %s, want 200 with 8 kept", status, resp)
	}
	if n := client.LLen(ctx, "cg:{t}:pstatus:whatsapp:wamid.FLOOD").Val(); n != 8 {
		t.Errorf("kept for one wamid: %d, want 8", n)
	}
}

// TestFailedOnAnInboundIDChangesNothing: a status carrying a customer's message id (never one the
// gateway sent) leaves Redis exactly as it was.
func TestFailedOnAnInboundIDChangesNothing(t *testing.T) {
	client := redistest.Client(t)
	url, _ := server(t, client)
	in := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", ID: "wamid.INBOUND", Text: "oi"})
	if status, resp := post(t, url, in, signed(in)); status != 200 || !strings.Contains(resp, `"recorded":1`) {
		t.Fatalf("customer message: %d %s", status, resp)
	}
	before := redistest.Contents(t, client)
	for _, st := range []string{"failed", "read", "deleted", "warning", "played"} {
		body := statusesBody("wamid.INBOUND", st)
		if status, resp := post(t, url, body, signed(body)); status != 200 || !strings.Contains(resp, `"statuses":0`) {
			t.Fatalf("%s on an inbound id: got %d %s, want 200 changing nothing", st, status, resp)
		}
	}
	if after := redistest.Contents(t, client); after != before {
		t.Errorf("a status on a customer's message changed Redis:\n%s\n---\n%s", before, after)
	}
}

// TestFlowReplyWithNumericTimestamp: a Flow reply whose timestamp is a JSON number is recorded
// (it was dropped with recorded 0).
func TestFlowReplyWithNumericTimestamp(t *testing.T) {
	client := redistest.Client(t)
	body := testutil.Fixture(t, "testdata", "whatsapp", "built_nfm_reply_numeric_timestamp.json")
	body = []byte(strings.ReplaceAll(string(body), "1122334455667", "100200300"))
	url, router := server(t, client)
	if status, resp := post(t, url, body, signed(body)); status != 200 || !strings.Contains(resp, `"recorded":1`) {
		t.Fatalf("got %d %s, want the Flow reply recorded", status, resp)
	}
	ctx := context.Background()
	m, err := router.Message(ctx, routing.InboundMessageID("whatsapp", "", "wamid.wegrchytvwcggt=="))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Reply struct{ Type, ID, Payload string }
	}
	_ = json.Unmarshal(m.Payload, &p)
	if m.Kind != "interactive" || !m.At.Equal(time.Unix(1702502473, 0)) || p.Reply.Type != "nfm_reply" || !strings.Contains(p.Reply.Payload, `"delivery_rating":"4"`) {
		t.Errorf("stored: %+v reply %+v, want the nfm_reply at its time with its response", m, p.Reply)
	}
}

// TestLargeNotification: Meta sends notifications up to 3 MB; one of 1.6 MB is recorded whole,
// one over the webhook's 4 MB limit is refused with nothing recorded.
func TestLargeNotification(t *testing.T) {
	client := redistest.Client(t)
	url, _ := server(t, client)
	var msgs []any
	text := strings.Repeat("Preciso de ajuda com o pedido. ", 130) // about Meta's 4096-character text limit
	for i := 0; len(msgs)*len(text) < 1700<<10; i++ {
		msgs = append(msgs, map[string]any{"from": "5511999990001", "id": fmt.Sprintf("wamid.BIG%04d", i), "timestamp": "1750000000",
			"type": "text", "text": map[string]any{"body": text}})
	}
	value := map[string]any{"messaging_product": "whatsapp", "metadata": map[string]any{"display_phone_number": "5511", "phone_number_id": "100200300"},
		"contacts": []any{map[string]any{"profile": map[string]any{"name": "Bia"}, "wa_id": "5511999990001"}}, "messages": msgs}
	body, _ := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{"id": "1",
		"changes": []any{map[string]any{"field": "messages", "value": value}}}}})
	if len(body) < 1600<<10 || len(body) > 3<<20 {
		t.Fatalf("built %d bytes, want between 1.6 and 3 MB", len(body))
	}
	status, resp := post(t, url, body, signed(body))
	if status != 200 || !strings.Contains(resp, fmt.Sprintf(`"recorded":%d`, len(msgs))) {
		t.Fatalf("%d-byte notification: got %d %.200s, want all %d messages recorded", len(body), status, resp, len(msgs))
	}
	before := redistest.Contents(t, client)
	big := append([]byte(`{"object":"whatsapp_business_account","entry":[],"pad":"`), []byte(strings.Repeat("x", 4<<20))...)
	big = append(big, `"}`...)
	if status, resp := post(t, url, big, signed(big)); status != 413 || errCode(resp) != "body_too_large" {
		t.Errorf("%d bytes: got %d %s, want 413 body_too_large", len(big), status, resp)
	}
	if redistest.Contents(t, client) != before {
		t.Error("the refused notification changed Redis")
	}
}
