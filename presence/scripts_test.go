package presence

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
)

// TestTransitionScriptRawState asserts the raw Redis keys after each transition: the names routing
// relies on, the state HASH fields, the history entry, the totals HASH and its TTL, the last-seen set.
func TestTransitionScriptRawState(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	clk := clock.NewFake(t0)
	s := newTestStore(t, client, clk)
	const (
		stateKey  = "cg:{t}:presence:sam"
		histKey   = "cg:{t}:presence:history:sam"
		seenKey   = "cg:{t}:presence:seen"
		totalsKey = "cg:{t}:presence:totals:sam"
	)
	ms := func(d time.Duration) string { return strconv.FormatInt(t0.Add(d).UnixMilli(), 10) }

	mustSet(t, s, "sam", "whatsapp", Online, "")
	clk.Advance(10 * time.Minute)
	if _, err := s.Set(ctx, "sam", "whatsapp", Paused, "lunch", "sue", CauseToggle); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Minute)
	mustSet(t, s, "sam", "whatsapp", Online, "")
	clk.Advance(time.Minute)
	mustSet(t, s, "sam", "whatsapp", Offline, "")

	if got, want := fmt.Sprint(client.HGetAll(ctx, stateKey).Val()),
		fmt.Sprint(map[string]string{"whatsapp": "offline", "whatsapp:since": ms(16 * time.Minute), "whatsapp:reason": ""}); got != want {
		t.Errorf("state HASH: got %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(client.HGetAll(ctx, totalsKey).Val()),
		// 2026-11-25 is Unix day 20782; "pruned" records that the day's prune of old days ran.
		fmt.Sprint(map[string]string{"20782:whatsapp:online": "660000", "20782:whatsapp:paused:lunch": "300000", "pruned": "20782"}); got != want {
		t.Errorf("totals HASH: got %s, want %s", got, want)
	}
	if ttl := client.TTL(ctx, totalsKey).Val(); ttl <= 29*24*time.Hour || ttl > 30*24*time.Hour {
		t.Errorf("totals TTL: got %v, want the history retention (30 days)", ttl)
	}
	// Every key the script wrote is one of the KEYS it was given (the seen ZSET is gone: nobody is logged in).
	if got := fmt.Sprint(client.Keys(ctx, "*").Val()); len(client.Keys(ctx, "*").Val()) != 3 ||
		client.Exists(ctx, stateKey, histKey, totalsKey).Val() != 3 {
		t.Errorf("keys after the transitions: got %s, want exactly the state, history and totals keys", got)
	}
	if n := client.Exists(ctx, seenKey).Val(); n != 0 {
		t.Errorf("last-seen set still exists after the only channel logged out")
	}
	entries := client.XRange(ctx, histKey, "-", "+").Val()
	want := []map[string]any{
		{"channel": "whatsapp", "from": "offline", "to": "online", "reason": "", "by": "sam", "cause": "toggle", "at": ms(0)},
		{"channel": "whatsapp", "from": "online", "to": "paused", "reason": "lunch", "by": "sue", "cause": "toggle", "at": ms(10 * time.Minute)},
		{"channel": "whatsapp", "from": "paused", "to": "online", "reason": "", "by": "sam", "cause": "toggle", "at": ms(15 * time.Minute)},
		{"channel": "whatsapp", "from": "online", "to": "offline", "reason": "", "by": "sam", "cause": "toggle", "at": ms(16 * time.Minute)},
	}
	if len(entries) != len(want) {
		t.Fatalf("history: got %d entries, want %d", len(entries), len(want))
	}
	for i, e := range entries {
		if got := fmt.Sprint(e.Values); got != fmt.Sprint(want[i]) {
			t.Errorf("history entry %d: got %s, want %s", i, got, fmt.Sprint(want[i]))
		}
	}
}

// TestTotalsPrunedByRetention: the days a transition accrues go into the one totals HASH passed in
// KEYS; fields of days older than the retention (30 days) are dropped once the day changes, and a
// day inside the retention stays.
func TestTotalsPrunedByRetention(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	clk := clock.NewFake(t0)
	s := newTestStore(t, client, clk)
	const totalsKey = "cg:{t}:presence:totals:sam"
	day0 := unixDay(t0)
	mustSet(t, s, "sam", "whatsapp", Online, "")
	clk.Advance(time.Hour)
	mustSet(t, s, "sam", "whatsapp", Offline, "")
	clk.Advance(10 * 24 * time.Hour) // day0+10: inside the retention
	mustSet(t, s, "sam", "webchat", Online, "")
	clk.Advance(time.Minute)
	mustSet(t, s, "sam", "webchat", Offline, "")
	want := map[string]string{totalsField(day0, "whatsapp:online"): "3600000", totalsField(day0+10, "webchat:online"): "60000",
		"pruned": strconv.FormatInt(day0+10, 10)}
	if got := client.HGetAll(ctx, totalsKey).Val(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("totals after 10 days: got %v, want %v", got, want)
	}
	clk.Advance(25 * 24 * time.Hour) // day0+35: day0 is older than 30 days, day0+10 is not
	mustSet(t, s, "sam", "webchat", Online, "")
	clk.Advance(time.Minute)
	mustSet(t, s, "sam", "webchat", Offline, "")
	want = map[string]string{totalsField(day0+10, "webchat:online"): "60000", totalsField(day0+35, "webchat:online"): "60000",
		"pruned": strconv.FormatInt(day0+35, 10)}
	if got := client.HGetAll(ctx, totalsKey).Val(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("totals after 35 days: got %v, want day0 pruned: %v", got, want)
	}
	if ttl := client.TTL(ctx, totalsKey).Val(); ttl <= 29*24*time.Hour || ttl > 30*24*time.Hour {
		t.Errorf("totals TTL: got %v, want the retention (30 days)", ttl)
	}
	// The report still reads the kept day out of the one HASH.
	tot, err := s.Totals(ctx, "sam", t0.Add(10*24*time.Hour))
	if err != nil || tot.Channels["webchat"].OnlineSeconds != 60 || tot.Channels["whatsapp"].OnlineSeconds != 0 {
		t.Errorf("Totals of day0+10: got %+v, %v; want webchat 60s, whatsapp 0", tot, err)
	}
}

func TestLoginEntersTheLastSeenSet(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	clk := clock.NewFake(t0)
	s := newTestStore(t, client, clk)
	if err := s.Heartbeat(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if err := client.ZScore(ctx, "cg:{t}:presence:seen", "ana").Err(); err != redis.Nil {
		t.Errorf("a heartbeat of an agent logged in nowhere: got %v, want no entry", err)
	}
	mustSet(t, s, "ana", "webchat", Online, "")
	clk.Advance(30 * time.Second)
	if err := s.Heartbeat(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if got, want := client.ZScore(ctx, "cg:{t}:presence:seen", "ana").Val(), float64(t0.Add(30*time.Second).UnixMilli()); got != want {
		t.Errorf("last seen after a heartbeat: got %v, want %v", got, want)
	}
	if err := s.Heartbeat(ctx, "zed"); err != ErrUnknownAgent {
		t.Errorf("heartbeat of an unknown agent: got %v, want ErrUnknownAgent", err)
	}
}

// TestHistoryTrimmedByRetention: entries older than the retention go at the next transition. XTRIM
// MINID ~ drops whole stream nodes (100 entries by default), so ancient entries are written in bulk.
func TestHistoryTrimmedByRetention(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	s := newTestStore(t, client, clock.Real{})
	key := s.keys.history("sam")
	const ancient = 300
	for i := 1; i <= ancient; i++ {
		client.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: "1-" + strconv.Itoa(i),
			Values: []any{"channel", "whatsapp", "from", "offline", "to", "offline", "reason", "", "by", "sam", "cause", "toggle", "at", "1"}})
	}
	mustSet(t, s, "sam", "whatsapp", Online, "")
	n := client.XLen(ctx, key).Val()
	if n > ancient+1-100 {
		t.Errorf("history after trimming: %d entries, want at least one node of the %d ancient ones gone", n, ancient)
	}
	last := client.XRevRangeN(ctx, key, "+", "-", 1).Val()
	if len(last) != 1 || last[0].Values["to"] != "online" {
		t.Errorf("the fresh entry did not survive the trim: %v", last)
	}
}

func TestRetentionNeverZero(t *testing.T) {
	cfg := testConfig()
	cfg.Presence.HistoryRetention = 0
	s := NewStore(redistest.Client(t), keyspace.New("t"), topology.New(cfg), Options{HistoryRetention: cfg.Presence.HistoryRetention})
	if s.retention != DefaultHistoryRetention {
		t.Fatalf("retention with none configured: got %v, want %v", s.retention, DefaultHistoryRetention)
	}
	mustSet(t, s, "sam", "whatsapp", Online, "")
	mustSet(t, s, "sam", "whatsapp", Offline, "")
	hist, err := s.History(context.Background(), "sam", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || len(hist) != 2 {
		t.Errorf("history with the default retention: got %d entries, %v; want 2", len(hist), err)
	}
}

// listenerProbe reads the store from inside the callback, to prove changes are stored before
// listeners hear of them, and checks the caller's context is passed through.
type listenerProbe struct {
	s     *Store
	calls [][]Change
	seen  []State
	ctxOK []bool
}

type ctxKey struct{}

func (p *listenerProbe) PresenceChanged(ctx context.Context, cs []Change) {
	p.calls = append(p.calls, cs)
	got, _ := p.s.Get(ctx, cs[0].Agent)
	for _, c := range got.Channels {
		if c.Channel == cs[0].Channel {
			p.seen = append(p.seen, c.State)
		}
	}
	p.ctxOK = append(p.ctxOK, ctx.Value(ctxKey{}) == "request")
}

func TestListenersHearStoredChangesOnly(t *testing.T) {
	ctx := context.WithValue(context.Background(), ctxKey{}, "request")
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	s := NewStore(redistest.Client(t), keyspace.New("t"), topology.New(cfg), Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clock.NewFake(t0), Registerer: reg})
	p := &listenerProbe{s: s}
	s.AddListener(p)
	second := &recorder{}
	s.AddListener(second)
	steps := []struct {
		name    string
		ch      string
		want    State
		reason  string
		changes int // size of the one call the step makes, 0 when no call
	}{
		{"login", "whatsapp", Online, "", 1},
		{"login again (no-op)", "whatsapp", Online, "", 0},
		{"pause a group of one logged-in channel", "webchat", Paused, "lunch", 0}, // ErrChannelOffline
		{"login webchat", "webchat", Online, "", 1},
		{"pause the group", "webchat", Paused, "lunch", 2},
		{"unknown reason", "webchat", Paused, "nap", 0},
		{"resume the group", "whatsapp", Online, "", 2},
	}
	calls := 0
	for _, st := range steps {
		_, _ = s.Set(ctx, "ana", st.ch, st.want, st.reason, "ana", CauseToggle)
		if st.changes > 0 {
			calls++
		}
		if len(p.calls) != calls {
			t.Fatalf("%s: listener called %d times, want %d", st.name, len(p.calls), calls)
		}
		if st.changes > 0 {
			last := p.calls[len(p.calls)-1]
			if len(last) != st.changes {
				t.Errorf("%s: listener got %d changes, want %d", st.name, len(last), st.changes)
			}
			if got := p.seen[len(p.seen)-1]; got != last[0].To {
				t.Errorf("%s: inside the listener the store said %s, want the stored %s", st.name, got, last[0].To)
			}
			if !p.ctxOK[len(p.ctxOK)-1] {
				t.Errorf("%s: listener did not get the caller's context", st.name)
			}
		}
	}
	if families, err := reg.Gather(); err != nil || len(families) != 1 || families[0].GetName() != "chatgate_presence_transitions_total" {
		t.Errorf("registry: got %v, %v; want the transitions counter registered", families, err)
	}
	if len(second.changes) != 6 {
		t.Errorf("second listener: got %d changes, want 6", len(second.changes))
	}
	for _, c := range []struct {
		channel, to string
		want        float64
	}{{"whatsapp", "online", 2}, {"whatsapp", "paused", 1}, {"webchat", "online", 2}, {"webchat", "paused", 1}, {"webchat", "offline", 0}} {
		var m dto.Metric
		if err := s.transition.WithLabelValues(c.channel, c.to).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != c.want {
			t.Errorf("transitions{%s,%s}: got %v, want %v", c.channel, c.to, got, c.want)
		}
	}
}
