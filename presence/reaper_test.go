package presence

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestReapersOnTwoReplicasLogOutOnce: two replicas sweep the same stale agent at once; it is logged
// out of each channel once, with one history entry per channel.
func TestReapersOnTwoReplicasLogOutOnce(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	clk := clock.NewFake(t0)
	a, b := newTestStore(t, client, clk), newTestStore(t, client, clk)
	mustSet(t, a, "ana", "whatsapp", Online, "")
	mustSet(t, a, "ana", "webchat", Online, "")
	clk.Advance(2 * time.Minute)
	reapers := []*Reaper{NewReaper(a, time.Second, time.Minute), NewReaper(b, time.Second, time.Minute)}
	counts := make([]int, len(reapers))
	var wg sync.WaitGroup
	for i, r := range reapers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := r.Sweep(ctx)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		}()
	}
	wg.Wait()
	if got := counts[0] + counts[1]; got != 1 {
		t.Errorf("agents logged out by both reapers: got %d, want 1", got)
	}
	hist, err := a.History(ctx, "ana", t0, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	disconnected := 0
	for _, c := range hist {
		if c.Cause == CauseDisconnected {
			disconnected++
		}
	}
	if disconnected != 2 {
		t.Errorf("history entries with cause disconnected: got %d, want 2 (one per channel): %+v", disconnected, hist)
	}
}

// TestReaperYieldsToALateHeartbeat: a heartbeat landing between the sweep's read of stale agents and
// the logout wins, because the script re-checks the last-seen score against the sweep's cutoff.
func TestReaperYieldsToALateHeartbeat(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(t0)
	s := newTestStore(t, redistest.Client(t), clk)
	mustSet(t, s, "ana", "whatsapp", Online, "")
	clk.Advance(70 * time.Second)
	cutoff := strconv.FormatInt(clk.Now().Add(-time.Minute).UnixMilli(), 10) // what the sweep read with
	if err := s.Heartbeat(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	res, err := s.run(ctx, "ana", s.agents["ana"], "", "logout_all", "", BySystem, CauseDisconnected, false, cutoff)
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("logout after a fresh heartbeat: got %+v, %v; want skipped", res.Changes, err)
	}
	wantStates(t, s, "ana", map[string]string{"whatsapp": "online"})
}

// TestLoginRefreshesLastSeen: an agent silent on one channel that logs into another is not reaped
// for the old silence.
func TestLoginRefreshesLastSeen(t *testing.T) {
	clk := clock.NewFake(t0)
	s := newTestStore(t, redistest.Client(t), clk)
	mustSet(t, s, "sam", "webchat", Online, "")
	clk.Advance(59 * time.Second)
	mustSet(t, s, "sam", "whatsapp", Online, "")
	clk.Advance(11 * time.Second)
	if n, err := NewReaper(s, time.Second, time.Minute).Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep 11s after a login: got %d, %v; want nobody logged out", n, err)
	}
	wantStates(t, s, "sam", map[string]string{"webchat": "online", "whatsapp": "online"})
}

// TestReaperLifecycle: Start sweeps on its own, Start and Shutdown may repeat, nothing leaks.
func TestReaperLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clk := clock.NewFake(t0)
	s := newTestStore(t, redistest.Client(t), clk)
	mustSet(t, s, "ana", "whatsapp", Online, "")
	clk.Advance(2 * time.Minute)
	r := NewReaper(s, 10*time.Millisecond, time.Minute)
	_ = r.Start()
	_ = r.Start()
	testutil.Eventually(t, 5*time.Second, "the running reaper to log out a silent agent", func() bool {
		return states(t, s, "ana")["whatsapp"] == "offline"
	})
	r.Shutdown()
	r.Shutdown()
}

func TestReaperDefaults(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := newTestStore(t, redistest.Client(t), clock.NewFake(t0))
	for _, c := range []struct{ interval, grace time.Duration }{{0, 0}, {-time.Second, -time.Minute}} {
		r := NewReaper(s, c.interval, c.grace)
		if r.interval != DefaultReaperInterval || r.grace != DefaultDisconnectGrace {
			t.Errorf("NewReaper(%v, %v): got %v, %v; want the defaults", c.interval, c.grace, r.interval, r.grace)
		}
		_ = r.Start() // a zero interval would panic in time.NewTicker
		r.Shutdown()
	}
	NewReaper(s, time.Second, time.Minute).Shutdown() // never started
}

// TestEmbeddedStoreReaps runs heartbeats and the reaper on miniredis, the development store.
func TestEmbeddedStoreReaps(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	clk := clock.NewFake(t0)
	s := newTestStore(t, client, clk)
	mustSet(t, s, "ana", "whatsapp", Online, "")
	mustSet(t, s, "sam", "webchat", Online, "")
	clk.Advance(50 * time.Second)
	if err := s.Heartbeat(ctx, "sam"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Second)
	if n, err := NewReaper(s, time.Second, time.Minute).Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep on miniredis: got %d, %v; want ana logged out", n, err)
	}
	wantStates(t, s, "ana", map[string]string{"whatsapp": "offline"})
	wantStates(t, s, "sam", map[string]string{"webchat": "online"})
}
