package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestMessageIDsAreScopedToTheirSender: WebChat message ids are chosen by whoever sends them, so one
// sender's id must not suppress another's message. A widget visitor sends m-2001; the site's signed
// webhook for another visitor with the same id is recorded, not answered "duplicates: 1"; a second
// widget visitor's m-2001 is recorded too. A true redelivery from the same sender (the same way in,
// site and visitor) is still recognised, answered as a duplicate and changes nothing in Redis.
func TestMessageIDsAreScopedToTheirSender(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{agents: 1})
	r1, r2 := e.replicas[0].url(), e.replicas[1].url()
	origin := map[string]string{"Origin": "http://127.0.0.1"}

	visitor := func(base string) (token, id string) {
		t.Helper()
		r, err := e.do("POST", base+"/webchat/v1/sessions", []byte(`{"site":"shop"}`), origin)
		if err != nil || r.status != 201 {
			t.Fatalf("widget session: %d %s %v", r.status, r.body, err)
		}
		var s struct {
			Token     string `json:"token"`
			VisitorID string `json:"visitor_id"`
		}
		if err := json.Unmarshal(r.body, &s); err != nil {
			t.Fatal(err)
		}
		return s.Token, s.VisitorID
	}
	widgetSend := func(base, token, id, text string) response {
		t.Helper()
		r, err := e.do("POST", base+"/webchat/v1/messages", []byte(`{"id":"`+id+`","text":"`+text+`"}`),
			map[string]string{"Origin": "http://127.0.0.1", "Authorization": "Bearer " + token})
		if err != nil {
			t.Fatalf("widget message: %v", err)
		}
		return r
	}
	signed := func(visitorID, id, text string) ([]byte, map[string]string) {
		body := simulate.WebChatBody(simulate.WebChatMessage{Site: "shop", VisitorID: visitorID, ID: id, Text: text})
		ts, sig := simulate.SignWebChat(body, siteSecret, time.Now())
		return body, map[string]string{"X-Chatgate-Timestamp": ts, "X-Chatgate-Signature": sig}
	}
	receipt := func(r response) (recorded, duplicates int) {
		var out struct {
			Recorded   int `json:"recorded"`
			Duplicates int `json:"duplicates"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatalf("receipt %s: %v", r.body, err)
		}
		return out.Recorded, out.Duplicates
	}

	// The attack: a widget visitor picks the id another visitor's site will send.
	attacker, attackerID := visitor(r1)
	if r := widgetSend(r1, attacker, "m-2001", "first, from the widget"); r.status != 202 {
		t.Fatalf("widget m-2001: %d %s", r.status, r.body)
	}
	body, headers := signed("v-other", "m-2001", "the site's message for another visitor")
	r, err := e.do("POST", r2+"/webhooks/webchat", body, headers)
	if err != nil || r.status != 200 {
		t.Fatalf("signed webhook: %d %s %v", r.status, r.body, err)
	}
	if rec, dup := receipt(r); rec != 1 || dup != 0 {
		t.Errorf("signed webhook for another visitor with the widget's id: recorded %d, duplicates %d; want 1, 0", rec, dup)
	}
	// Two widget visitors cannot suppress each other either.
	second, secondID := visitor(r2)
	if r := widgetSend(r2, second, "m-2001", "second widget visitor"); r.status != 202 || !strings.Contains(string(r.body), `"recorded"`) {
		t.Errorf("second widget visitor's m-2001: %d %s, want 202 recorded", r.status, r.body)
	}
	// The same id from the signed webhook for the attacker's own visitor id is another way in: recorded.
	body2, headers2 := signed(attackerID, "m-2001", "the site, for the widget visitor's id")
	if r, err := e.do("POST", r1+"/webhooks/webchat", body2, headers2); err != nil || r.status != 200 {
		t.Fatalf("signed webhook for the widget visitor's id: %d %v", r.status, err)
	} else if rec, dup := receipt(r); rec != 1 || dup != 0 {
		t.Errorf("signed webhook with the widget visitor's id: recorded %d, duplicates %d; want 1, 0 (the way in differs)", rec, dup)
	}

	st := e.routedState(time.Minute)
	if n := st.byProviderID["shop:m-2001"]; n != 4 {
		t.Errorf("messages with id m-2001 recorded: %d, want 4 (one per sender)", n)
	}
	contacts := map[string]bool{}
	for _, k := range e.keys("conv:*") {
		c, _ := e.client.HGet(t.Context(), k, "contact_id").Result()
		contacts[c] = true
	}
	for _, v := range []string{attackerID, "v-other", secondID} {
		if !contacts[v] {
			t.Errorf("no conversation for %s: its message was suppressed", v)
		}
	}

	// True redeliveries from the same sender are still recognised and change nothing.
	redeliverBody, redeliverHeaders := signed("v-other", "m-2001", "the site's message for another visitor")
	cases := []hostile{
		{name: "signed webhook redelivered (same site, visitor, id)", method: "POST", path: "/webhooks/webchat", body: redeliverBody, headers: redeliverHeaders, status: 200},
		{name: "widget message redelivered by its visitor", method: "POST", path: "/webchat/v1/messages", body: []byte(`{"id":"m-2001","text":"first, from the widget"}`),
			headers: map[string]string{"Origin": "http://127.0.0.1", "Authorization": "Bearer " + attacker}, status: 200},
	}
	runHostile(t, e, cases, func(c hostile, r response) {
		if strings.HasPrefix(c.path, "/webhooks/") {
			if rec, dup := receipt(r); rec != 0 || dup != 1 {
				t.Errorf("%s: recorded %d, duplicates %d; want 0, 1", c.name, rec, dup)
			}
		} else if !strings.Contains(string(r.body), `"duplicate"`) {
			t.Errorf("%s: %s, want status duplicate", c.name, r.body)
		}
	})
}

// TestSupervisorCloseRecordsWhoDidIt: a supervisor closing an agent's card records closed_by on the
// card and its conversation (visible in their JSON) and logs an audit line with actor and holder;
// another agent cannot close it and changes nothing.
func TestSupervisorCloseRecordsWhoDidIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{agents: 3})
	r1, r2 := e.replicas[0].url(), e.replicas[1].url()
	e.mustOnline(r1, "whatsapp", agentID(1))
	if r, err := e.postWhatsApp(r1, whatsAppMessage(customer(1), "wamid.close.1", "oi")); err != nil || r.status != 200 {
		t.Fatalf("webhook: %d %v", r.status, err)
	}
	a01, a02 := bearer(t, "a01", auth.RoleAgent), bearer(t, "a02", auth.RoleAgent)
	cardID, convID := e.acceptOnlyCard(r1, "a01", 5*time.Second)
	runHostile(t, e, []hostile{
		{name: "another agent closes a01's card", method: "POST", path: "/v1/cards/" + cardID + "/close", headers: a02, status: 403, code: "not_your_card"},
	}, nil)

	// a03 is a supervisor here: a role in its token, not in the configuration.
	supervisor := bearer(t, "a03", auth.RoleSupervisor)
	r, err := e.do("POST", r2+"/v1/cards/"+cardID+"/close", nil, supervisor)
	if err != nil || r.status != 200 {
		t.Fatalf("supervisor close: %d %s %v", r.status, r.body, err)
	}
	var card struct {
		State    string `json:"state"`
		ClosedBy string `json:"closed_by"`
		ClosedAt string `json:"closed_at"`
	}
	if err := json.Unmarshal(r.body, &card); err != nil {
		t.Fatal(err)
	}
	if card.State != "closed" || card.ClosedBy != "a03" || card.ClosedAt == "" {
		t.Errorf("closed card: %s, want state closed, closed_by a03 and closed_at", r.body)
	}
	r, err = e.do("GET", r1+"/v1/conversations/"+convID, nil, supervisor)
	if err != nil || r.status != 200 {
		t.Fatalf("conversation: %d %s %v", r.status, r.body, err)
	}
	var conv struct {
		State    string `json:"state"`
		ClosedBy string `json:"closed_by"`
	}
	_ = json.Unmarshal(r.body, &conv)
	if conv.State != "closed" || conv.ClosedBy != "a03" {
		t.Errorf("closed conversation: %s, want state closed, closed_by a03", r.body)
	}
	if by, _ := e.client.HGet(t.Context(), prefix+"card:"+cardID, "closed_by").Result(); by != "a03" {
		t.Errorf("card's closed_by in Redis: %q, want a03", by)
	}
	// The audit line: one structured record naming the actor, the holder and the card.
	found := testutil.Within(2*time.Second, func() bool {
		for _, line := range strings.Split(e.replicas[1].logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if rec["audit"] == "card.closed" && rec["actor"] == "a03" && rec["holder"] == "a01" && rec["card"] == cardID && rec["conversation"] == convID {
				return true
			}
		}
		return false
	})
	if !found {
		t.Errorf("no audit line with actor a03, holder a01 and the card in serve2's log:\n%s", e.replicas[1].logs.String())
	}
	// An agent closing its own card is recorded too (closed_by is always who did it).
	if r, err := e.postWhatsApp(r1, whatsAppMessage(customer(2), "wamid.close.2", "oi de novo")); err != nil || r.status != 200 {
		t.Fatalf("webhook: %d %v", r.status, err)
	}
	own, _ := e.acceptOnlyCard(r1, "a01", 5*time.Second)
	r, err = e.do("POST", r1+"/v1/cards/"+own+"/close", nil, a01)
	if err != nil || r.status != 200 || !strings.Contains(string(r.body), `"closed_by":"a01"`) {
		t.Errorf("agent's own close: %d %s, want closed_by a01", r.status, r.body)
	}
}

// runHostile sends each request to the replicas in turn and checks its answer and that Redis holds
// nothing new afterwards (check, when given, looks further at each answer).
func runHostile(t *testing.T, e *env, cases []hostile, check func(hostile, response)) {
	t.Helper()
	ignored := []string{"asynq:servers", "asynq:workers", "rate:" + prefix + "wcrate:", prefix + "retention", prefix + "board:"} // background: see hostile_test.go
	for i, c := range cases {
		base := e.replicas[i%len(e.replicas)].url()
		before := snapshot(t, e.client, ignored)
		r, err := e.do(c.method, base+c.path, c.body, c.headers)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if r.status != c.status || r.code != c.code {
			t.Errorf("%s: got %d %q, want %d %q (%s)", c.name, r.status, r.code, c.status, c.code, truncate(r.body))
		}
		if leaked := leaks(r.body); leaked != "" {
			t.Errorf("%s: the answer echoes a secret (%s)", c.name, leaked)
		}
		if check != nil {
			check(c, r)
		}
		if after := snapshot(t, e.client, ignored); after != before {
			t.Errorf("%s: Redis changed:\n%s", c.name, diff(before, after))
		}
	}
}
