package presence

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// testConfig: ana serves sales (whatsapp+webchat: one group); sam serves q-wa and q-web (separate
// groups); cid serves q-ab and q-bc over channels a, b, c (a chain: one group of three).
func testConfig() *configs.Config {
	return &configs.Config{
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}, {ID: "training", Label: "Training"}, {ID: "no_answer", Label: "No answer"}},
		Queues: []configs.Queue{
			{ID: "sales", Channels: []string{"whatsapp", "webchat"}},
			{ID: "q-wa", Channels: []string{"whatsapp"}},
			{ID: "q-web", Channels: []string{"webchat"}},
			{ID: "q-ab", Channels: []string{"a", "b"}},
			{ID: "q-bc", Channels: []string{"b", "c"}},
		},
		Agents: []configs.Agent{
			{ID: "ana", Name: "Ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 3}, "webchat": {Capacity: 5}}},
			{ID: "sam", Queues: []string{"q-wa", "q-web"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 1}, "webchat": {Capacity: 1}}},
			{ID: "cid", Queues: []string{"q-ab", "q-bc"}, Channels: map[string]configs.AgentChannel{"a": {Capacity: 1}, "b": {Capacity: 1}, "c": {Capacity: 1}}},
		},
		Presence: configs.Presence{HistoryRetention: 30 * 24 * time.Hour},
	}
}

type recorder struct {
	mu      sync.Mutex
	changes []Change
}

func (r *recorder) PresenceChanged(_ context.Context, cs []Change) {
	r.mu.Lock()
	r.changes = append(r.changes, cs...)
	r.mu.Unlock()
}

func newTestStore(t testing.TB, client redis.UniversalClient, clk clock.Clock) *Store {
	t.Helper()
	cfg := testConfig()
	return NewStore(client, keyspace.New("t"), topology.New(cfg), Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clk})
}

func mustSet(t *testing.T, s *Store, agent, ch string, want State, reason string) Result {
	t.Helper()
	res, err := s.Set(context.Background(), agent, ch, want, reason, agent, CauseToggle)
	if err != nil {
		t.Fatalf("Set(%s, %s, %s, %q): %v", agent, ch, want, reason, err)
	}
	return res
}

func states(t *testing.T, s *Store, agent string) map[string]string {
	t.Helper()
	p, err := s.Get(context.Background(), agent)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range p.Channels {
		v := string(c.State)
		if c.Reason != "" {
			v += ":" + c.Reason
		}
		out[c.Channel] = v
	}
	return out
}

func wantStates(t *testing.T, s *Store, agent string, want map[string]string) {
	t.Helper()
	got := states(t, s, agent)
	for ch, w := range want {
		if got[ch] != w {
			t.Errorf("%s on %s: got %q, want %q (all: %v)", agent, ch, got[ch], w, got)
		}
	}
}

func TestEveryAgentStartsOffline(t *testing.T) {
	s := newTestStore(t, redistest.Client(t), clock.NewFake(t0))
	p, err := s.Get(context.Background(), "ana")
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != Offline || p.Logged != 0 || p.Enabled != 2 || p.CanStartConversation {
		t.Fatalf("fresh agent: got %+v, want offline 0/2 without new conversations", p)
	}
}

func TestStateMachine(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, redistest.Client(t), clock.NewFake(t0))
	// sam's channels are in separate groups, so each step touches one channel.
	steps := []struct {
		ch      string
		want    State
		reason  string
		err     error
		result  string
		changes int
	}{
		{"whatsapp", Paused, "lunch", ErrChannelOffline, "offline", 0},
		{"whatsapp", Offline, "", nil, "offline", 0},
		{"whatsapp", Online, "", nil, "online", 1},
		{"whatsapp", Online, "", nil, "online", 0},
		{"whatsapp", Offline, "", nil, "offline", 1},
		{"whatsapp", Online, "", nil, "online", 1},
		{"whatsapp", Paused, "", ErrReasonRequired, "online", 0},
		{"whatsapp", Paused, "nap", ErrUnknownReason, "online", 0},
		{"whatsapp", Paused, "lunch", nil, "paused:lunch", 1},
		{"whatsapp", Paused, "lunch", nil, "paused:lunch", 0},
		{"whatsapp", Paused, "training", nil, "paused:training", 1},
		{"whatsapp", Online, "", nil, "online", 1},
		{"whatsapp", Paused, "lunch", nil, "paused:lunch", 1},
		{"whatsapp", Offline, "", nil, "offline", 1},
		{"whatsapp", State("asleep"), "", ErrInvalidState, "offline", 0},
		{"sms", Online, "", ErrChannelNotEnabled, "offline", 0},
	}
	for i, st := range steps {
		res, err := s.Set(ctx, "sam", st.ch, st.want, st.reason, "sam", CauseToggle)
		if !errors.Is(err, st.err) {
			t.Fatalf("step %d %s→%s: got err %v, want %v", i, st.ch, st.want, err, st.err)
		}
		if len(res.Changes) != st.changes {
			t.Errorf("step %d: got %d changes, want %d", i, len(res.Changes), st.changes)
		}
		if got := states(t, s, "sam")["whatsapp"]; got != st.result {
			t.Errorf("step %d: whatsapp is %q, want %q", i, got, st.result)
		}
	}
	if _, err := s.Set(ctx, "nobody", "whatsapp", Online, "", "nobody", CauseToggle); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("unknown agent: got %v", err)
	}
}

func TestIdempotentToggleKeepsTheClock(t *testing.T) {
	clk := clock.NewFake(t0)
	s := newTestStore(t, redistest.Client(t), clk)
	first := mustSet(t, s, "sam", "whatsapp", Online, "")
	clk.Advance(time.Minute)
	again := mustSet(t, s, "sam", "whatsapp", Online, "")
	if len(again.Changes) != 0 {
		t.Fatalf("second login made %d changes", len(again.Changes))
	}
	if !first.Presence.Channels[1].Since.Equal(*again.Presence.Channels[1].Since) {
		t.Fatalf("since moved from %v to %v on a repeated toggle", first.Presence.Channels[1].Since, again.Presence.Channels[1].Since)
	}
}

func TestSharedQueueRuleTopologies(t *testing.T) {
	s := newTestStore(t, redistest.Client(t), clock.NewFake(t0))

	// Two channels in one queue: pausing one pauses both with the same reason; resuming one resumes both.
	mustSet(t, s, "ana", "whatsapp", Online, "")
	mustSet(t, s, "ana", "webchat", Online, "")
	res := mustSet(t, s, "ana", "webchat", Paused, "lunch")
	if len(res.Changes) != 2 {
		t.Errorf("pausing ana's webchat changed %d channels, want 2", len(res.Changes))
	}
	wantStates(t, s, "ana", map[string]string{"whatsapp": "paused:lunch", "webchat": "paused:lunch"})
	mustSet(t, s, "ana", "whatsapp", Online, "")
	wantStates(t, s, "ana", map[string]string{"whatsapp": "online", "webchat": "online"})

	// Separate queues: each channel on its own.
	mustSet(t, s, "sam", "whatsapp", Online, "")
	mustSet(t, s, "sam", "webchat", Online, "")
	mustSet(t, s, "sam", "webchat", Paused, "training")
	wantStates(t, s, "sam", map[string]string{"whatsapp": "online", "webchat": "paused:training"})

	// A chain a–b–c through two queues: one group of three, transitively.
	for _, ch := range []string{"a", "b", "c"} {
		mustSet(t, s, "cid", ch, Online, "")
	}
	mustSet(t, s, "cid", "a", Paused, "lunch")
	wantStates(t, s, "cid", map[string]string{"a": "paused:lunch", "b": "paused:lunch", "c": "paused:lunch"})
	mustSet(t, s, "cid", "c", Online, "")
	wantStates(t, s, "cid", map[string]string{"a": "online", "b": "online", "c": "online"})
}

func TestLoginIntoPausedGroupLandsPaused(t *testing.T) {
	s := newTestStore(t, redistest.Client(t), clock.NewFake(t0))
	mustSet(t, s, "cid", "a", Online, "")
	mustSet(t, s, "cid", "a", Paused, "training")
	res := mustSet(t, s, "cid", "c", Online, "")
	if len(res.Changes) != 1 || res.Changes[0].To != Paused || res.Changes[0].Reason != "training" {
		t.Fatalf("login into a paused group: got %+v, want c paused with training", res.Changes)
	}
	// b stays logged out: the rule pauses channels that are logged in, it logs nobody in.
	wantStates(t, s, "cid", map[string]string{"a": "paused:training", "b": "offline", "c": "paused:training"})
	// Logging one channel of a paused group out leaves the rest paused.
	mustSet(t, s, "cid", "a", Offline, "")
	wantStates(t, s, "cid", map[string]string{"a": "offline", "c": "paused:training"})
}

func TestOnlySelfMayLogIn(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, redistest.Client(t), clock.NewFake(t0))
	if _, err := s.Set(ctx, "ana", "whatsapp", Online, "", "sue", CauseToggle); !errors.Is(err, ErrLoginDenied) {
		t.Fatalf("a supervisor logging ana in: got %v, want ErrLoginDenied", err)
	}
	mustSet(t, s, "ana", "whatsapp", Online, "")
	res, err := s.Set(ctx, "ana", "whatsapp", Paused, "training", "sue", CauseToggle)
	if err != nil || res.Changes[0].By != "sue" {
		t.Fatalf("a supervisor pausing ana: got %+v %v, want a change by sue", res.Changes, err)
	}
	if _, err := s.Set(ctx, "ana", "whatsapp", Online, "", "sue", CauseToggle); err != nil {
		t.Fatalf("a supervisor resuming ana: %v", err)
	}
	hist, _ := s.History(ctx, "ana", t0.Add(-time.Hour), t0.Add(time.Hour))
	if len(hist) != 3 || hist[1].By != "sue" || hist[2].By != "sue" {
		t.Fatalf("history does not record who acted: %+v", hist)
	}
}

func TestAggregate(t *testing.T) {
	s := newTestStore(t, redistest.Client(t), clock.NewFake(t0))
	get := func() AgentPresence {
		p, err := s.Get(context.Background(), "sam")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(step string, status State, logged int, canStart bool) {
		t.Helper()
		p := get()
		if p.Status != status || p.Logged != logged || p.Enabled != 2 || p.CanStartConversation != canStart {
			t.Errorf("%s: got %s %d/%d start=%v, want %s %d/2 start=%v", step, p.Status, p.Logged, p.Enabled, p.CanStartConversation, status, logged, canStart)
		}
	}
	check("start", Offline, 0, false)
	mustSet(t, s, "sam", "webchat", Online, "")
	check("webchat online", Online, 1, false)
	mustSet(t, s, "sam", "whatsapp", Online, "")
	check("both online", Online, 2, true)
	mustSet(t, s, "sam", "whatsapp", Paused, "lunch")
	check("one paused", Online, 2, true)
	mustSet(t, s, "sam", "webchat", Paused, "lunch")
	check("all logged paused", Paused, 2, true)
	mustSet(t, s, "sam", "webchat", Offline, "")
	check("the only logged one paused", Paused, 1, true)
	mustSet(t, s, "sam", "whatsapp", Offline, "")
	check("all out", Offline, 0, false)
}

func TestCountersAcrossTransitionsAndMidnight(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC))
	s := newTestStore(t, redistest.Client(t), clk)
	mustSet(t, s, "sam", "whatsapp", Online, "")
	clk.Advance(40 * time.Minute) // 23:40
	mustSet(t, s, "sam", "whatsapp", Paused, "lunch")
	clk.Advance(30 * time.Minute) // 00:10 next day: 20 min of lunch before midnight, 10 after
	mustSet(t, s, "sam", "whatsapp", Online, "")
	clk.Advance(5 * time.Minute) // 00:15, still online: counted up to now
	day1, err := s.Totals(context.Background(), "sam", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	day2, _ := s.Totals(context.Background(), "sam", time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"day 1 online", day1.Channels["whatsapp"].OnlineSeconds, 40 * 60},
		{"day 1 lunch", day1.Channels["whatsapp"].PausedSeconds["lunch"], 20 * 60},
		{"day 2 lunch", day2.Channels["whatsapp"].PausedSeconds["lunch"], 10 * 60},
		{"day 2 online (open span)", day2.Channels["whatsapp"].OnlineSeconds, 5 * 60},
		{"day 2 webchat", day2.Channels["webchat"].OnlineSeconds, 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %vs, want %vs", c.name, c.got, c.want)
		}
	}
}

func TestReaperLogsOutSilentAgents(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(t0)
	s := newTestStore(t, redistest.Client(t), clk)
	rec := &recorder{}
	s.AddListener(rec)
	r := NewReaper(s, time.Second, time.Minute)
	mustSet(t, s, "ana", "whatsapp", Online, "")
	mustSet(t, s, "sam", "webchat", Online, "")
	clk.Advance(50 * time.Second)
	if err := s.Heartbeat(ctx, "sam"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Second) // ana silent 70s, sam 20s
	n, err := r.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep: got %d, %v, want 1 agent logged out", n, err)
	}
	wantStates(t, s, "ana", map[string]string{"whatsapp": "offline"})
	wantStates(t, s, "sam", map[string]string{"webchat": "online"})
	hist, _ := s.History(ctx, "ana", t0, clk.Now())
	if last := hist[len(hist)-1]; last.Reason != "disconnected" || last.Cause != CauseDisconnected || last.By != BySystem || last.To != Offline {
		t.Errorf("last history entry: got %+v, want offline with reason disconnected by system", last)
	}
	// The raw entry, as a report reads it; the channel's stored state keeps no reason.
	raw := s.client.XRevRangeN(ctx, "cg:{t}:presence:history:ana", "+", "-", 1).Val()
	if len(raw) != 1 || raw[0].Values["reason"] != "disconnected" || raw[0].Values["to"] != "offline" {
		t.Errorf("raw history entry: got %v, want to=offline reason=disconnected", raw)
	}
	if r := s.client.HGet(ctx, "cg:{t}:presence:ana", "whatsapp:reason").Val(); r != "" {
		t.Errorf("stored reason of the logged-out channel: got %q, want none", r)
	}
	// A heartbeat after the logout does not log ana back in.
	if err := s.Heartbeat(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	wantStates(t, s, "ana", map[string]string{"whatsapp": "offline"})
	if n, _ := r.Sweep(ctx); n != 0 {
		t.Errorf("second sweep logged out %d agents, want 0", n)
	}
	if got := rec.changes[len(rec.changes)-1]; got.Agent != "ana" || got.To != Offline || got.Reason != "disconnected" {
		t.Errorf("listener's last change: got %+v, want ana offline, reason disconnected", got)
	}
}

// TestEmbeddedStoreRunsTheScripts runs the transitions on miniredis, the development store.
func TestEmbeddedStoreRunsTheScripts(t *testing.T) {
	m := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	s := newTestStore(t, client, clock.NewFake(t0))
	mustSet(t, s, "ana", "whatsapp", Online, "")
	mustSet(t, s, "ana", "webchat", Online, "")
	mustSet(t, s, "ana", "whatsapp", Paused, "lunch")
	wantStates(t, s, "ana", map[string]string{"whatsapp": "paused:lunch", "webchat": "paused:lunch"})
	if _, err := s.Totals(context.Background(), "ana", t0); err != nil {
		t.Fatal(err)
	}
	hist, err := s.History(context.Background(), "ana", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil || len(hist) != 4 {
		t.Fatalf("history on miniredis: got %d entries, %v; want 4", len(hist), err)
	}
}
