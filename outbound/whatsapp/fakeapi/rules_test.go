package fakeapi

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// TestRulesSeenByTheClient: each injected failure reaches the client as the
// class a worker acts on, for exactly the sends the rule matches.
func TestRulesSeenByTheClient(t *testing.T) {
	text := whatsapp.TextMessage{To: phone, Body: "x"}
	other := whatsapp.TextMessage{To: "+5511988880002", Body: "x"}
	tpl := func(name string) whatsapp.TemplateMessage {
		return whatsapp.TemplateMessage{To: phone, Name: name, Language: "pt_BR", BodyParams: []string{"Ana"}}
	}
	type send struct {
		number string
		msg    whatsapp.Message
		class  whatsapp.Class // 0: accepted
		code   int
		wait   time.Duration
	}
	tests := []struct {
		name  string
		rule  Rule
		sends []send
	}{
		{"fail the next two", FailNext(2), []send{
			{numberID, text, whatsapp.Transient, 131000, 0},
			{numberID, text, whatsapp.Transient, 131000, 0},
			{numberID, text, 0, 0, 0},
		}},
		{"throttle with Retry-After", Throttle(whatsapp.CodeThroughput, 1500*time.Millisecond, 1), []send{
			{numberID, text, whatsapp.RateLimited, 130429, 2 * time.Second},
			{numberID, text, 0, 0, 0},
		}},
		{"spam rate without Retry-After", Throttle(whatsapp.CodeSpamRateLimit, 0, 1), []send{
			{numberID, text, whatsapp.RateLimited, 131048, 5 * time.Minute},
		}},
		{"pair rate", Throttle(whatsapp.CodePairRateLimit, 0, 1), []send{
			{numberID, text, whatsapp.RateLimited, 131056, 6 * time.Second},
		}},
		{"unknown template, that template only", RejectTemplate("promo", whatsapp.CodeTemplateNotFound), []send{
			{numberID, tpl("promo"), whatsapp.Permanent, 132001, 0},
			{numberID, tpl("order_update"), 0, 0, 0},
			{numberID, tpl("promo"), whatsapp.Permanent, 132001, 0},
		}},
		{"24-hour window, that recipient only", RejectRecipient(phone, whatsapp.CodeReengagement), []send{
			{numberID, text, whatsapp.Permanent, 131047, 0},
			{numberID, other, 0, 0, 0},
		}},
		{"recipient matched without +", RejectRecipient("5511999990001", whatsapp.CodeUndeliverable), []send{
			{numberID, text, whatsapp.Permanent, 131026, 0},
		}},
		{"one sending number", Rule{PhoneNumberID: otherID, Status: 503}, []send{
			{numberID, text, 0, 0, 0},
			{otherID, text, whatsapp.Transient, 131016, 0},
		}},
		{"expired token", Rule{Code: whatsapp.CodeAccessTokenExpired, Times: 1}, []send{
			{numberID, text, whatsapp.Auth, 190, 0},
			{numberID, text, 0, 0, 0},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, c := newFake(t, Options{})
			if _, err := s.AddRule(tc.rule); err != nil {
				t.Fatal(err)
			}
			accepted := 0
			for i, sd := range tc.sends {
				tok := token
				if sd.number == otherID {
					tok = otherTok
				}
				_, err := c.Send(context.Background(), sd.number, tok, sd.msg)
				if sd.class == 0 {
					if err != nil {
						t.Errorf("send %d: %v, want accepted", i, err)
					}
					accepted++
					continue
				}
				var e *whatsapp.Error
				if !errors.As(err, &e) || e.Class != sd.class || e.Code != sd.code || e.RetryAfter != sd.wait {
					t.Errorf("send %d: got %v (retry after %v), want class %v code %d wait %v", i, err, whatsapp.RetryAfter(err), sd.class, sd.code, sd.wait)
				}
			}
			if got := len(s.Calls()); got != accepted {
				t.Errorf("accepted calls: got %d, want %d", got, accepted)
			}
			if got, want := len(s.Failures()), len(tc.sends)-accepted; got != want {
				t.Errorf("failures: got %d, want %d", got, want)
			}
			for _, f := range s.Failures() {
				if !f.Injected {
					t.Errorf("failure not marked injected: %+v", f)
				}
			}
		})
	}
}

func TestSlowAndRuleOrder(t *testing.T) {
	s, _, c := newFake(t, Options{})
	slow, _ := s.AddRule(Slow(80 * time.Millisecond))
	s.AddRule(Rule{Delay: Duration(40 * time.Millisecond), Code: whatsapp.CodeThroughput, Times: 1})
	s.AddRule(FailNext(1)) // behind the throttle: not reached by the first send

	start := time.Now()
	_, err := c.Send(context.Background(), numberID, token, whatsapp.TextMessage{To: phone, Body: "x"})
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Errorf("first send answered after %v, want the two delays (120ms)", d)
	}
	if e := (*whatsapp.Error)(nil); !errors.As(err, &e) || e.Code != whatsapp.CodeThroughput {
		t.Errorf("first send: got %v, want the throttle", err)
	}
	_, err = c.Send(context.Background(), numberID, token, whatsapp.TextMessage{To: phone, Body: "x"})
	if e := (*whatsapp.Error)(nil); !errors.As(err, &e) || e.Code != whatsapp.CodeSomethingWentWrong {
		t.Errorf("second send: got %v, want the 500", err)
	}
	rules := s.Rules()
	if len(rules) != 1 || rules[0].ID != slow || rules[0].Applied != 2 {
		t.Errorf("rules left: %+v, want only the slow rule applied twice", rules)
	}
	if !s.RemoveRule(slow) || s.RemoveRule(slow) {
		t.Error("RemoveRule: want true once, then false")
	}
	start = time.Now()
	if _, err := c.Send(context.Background(), numberID, token, whatsapp.TextMessage{To: phone, Body: "x"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 60*time.Millisecond {
		t.Errorf("after removing the rules a send took %v", d)
	}
	s.AddRule(FailNext(0))
	s.AddRule(Slow(time.Second))
	s.ClearRules()
	if len(s.Rules()) != 0 {
		t.Error("ClearRules left rules")
	}
}

// TestFailNextIsExactUnderConcurrency: 40 concurrent sends against
// FailNext(10) fail exactly 10 times.
func TestFailNextIsExactUnderConcurrency(t *testing.T) {
	s, _, c := newFake(t, Options{})
	s.AddRule(FailNext(10))
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range 40 {
		wg.Go(func() {
			_, err := c.Send(context.Background(), numberID, token, whatsapp.TextMessage{To: phone, Body: "x"})
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed != 10 || s.Accepted() != 30 || len(s.Rules()) != 0 {
		t.Errorf("failed %d accepted %d rules %d; want 10, 30, 0", failed, s.Accepted(), len(s.Rules()))
	}
}

// TestBadRulesAreRefused: a rule that would do nothing or hang a run is an
// error and changes nothing.
func TestBadRulesAreRefused(t *testing.T) {
	s := New(Options{})
	for _, r := range []Rule{
		{},
		{Recipient: phone},
		{Status: 200},
		{Status: 302},
		{Status: 600},
		{Code: -1},
		{Code: 100, Subcode: -1},
		{Delay: Duration(-time.Second)},
		{Delay: Duration(time.Hour)},
		{Code: 130429, RetryAfter: Duration(48 * time.Hour)},
		{RetryAfter: Duration(time.Second)},
		{Code: 100, Times: -1},
	} {
		if _, err := s.AddRule(r); err == nil {
			t.Errorf("AddRule(%+v): got nil error", r)
		}
	}
	if n := len(s.Rules()); n != 0 {
		t.Errorf("rules: got %d, want 0", n)
	}
}

func TestRuleStatusAndCodeImplyEachOther(t *testing.T) {
	tests := []struct {
		rule         Rule
		status, code int
		retryAfter   string
	}{
		{Rule{Code: 130429}, 429, 130429, ""},
		{Rule{Code: 131047}, 400, 131047, ""},
		{Rule{Code: 132001}, 404, 132001, ""},
		{Rule{Code: 190}, 401, 190, ""},
		{Rule{Code: 131016}, 503, 131016, ""},
		{Rule{Status: 429}, 429, 130429, ""},
		{Rule{Status: 500}, 500, 131000, ""},
		{Rule{Status: 503}, 503, 131016, ""},
		{Rule{Status: 401}, 401, 190, ""},
		{Rule{Status: 400}, 400, 100, ""},
		{Rule{Status: 429, Code: 131056, RetryAfter: Duration(1100 * time.Millisecond)}, 429, 131056, "2"},
	}
	for _, tc := range tests {
		e := tc.rule.failure()
		if e.status != tc.status || e.code != tc.code || e.retryAfter != tc.retryAfter {
			t.Errorf("%+v: got %d %d %q, want %d %d %q", tc.rule, e.status, e.code, e.retryAfter, tc.status, tc.code, tc.retryAfter)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var r Rule
	if err := json.Unmarshal([]byte(`{"delay":"250ms","retry_after":"2s","code":130429}`), &r); err != nil {
		t.Fatal(err)
	}
	if time.Duration(r.Delay) != 250*time.Millisecond || time.Duration(r.RetryAfter) != 2*time.Second {
		t.Errorf("got %+v", r)
	}
	b, _ := json.Marshal(Rule{Delay: Duration(time.Second)})
	if !strings.Contains(string(b), `"delay":"1s"`) {
		t.Errorf("marshal: %s", b)
	}
	for _, bad := range []string{`{"delay":250}`, `{"delay":"soon"}`, `{"delay":true}`} {
		var r Rule
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s: got nil error", bad)
		}
	}
	r = Rule{}
	if err := json.Unmarshal([]byte(`{"delay":null}`), &r); err != nil || r.Delay != 0 {
		t.Errorf("null delay: got %v, %v; want 0, nil", r.Delay, err)
	}
}
