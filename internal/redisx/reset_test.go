package redisx

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestResetWatcherRebuildsOnEveryReplica: two watchers (two replicas) on one Redis. Nothing is
// rebuilt while Redis keeps its state; when it comes back empty (restarted without persistence) both
// notice within seconds, one by the missing marker and the other by the marker another set, or both
// by the run_id, and each runs its rebuild once; a restart that kept the data (AOF) is noticed by the
// run_id; the status says what happened.
func TestResetWatcherRebuildsOnEveryReplica(t *testing.T) {
	srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: 1})
	defer client.Close()
	ctx := context.Background()
	marker := MarkerKey(keyspace.New("t1"))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var runs [2]atomic.Int32
	var watchers [2]*ResetWatcher
	for i := range watchers {
		i := i
		watchers[i] = NewResetWatcher(client, marker, logger, 100*time.Millisecond,
			Rebuild{Name: "probe", Run: func(ctx context.Context) error {
				runs[i].Add(1)
				return client.Set(ctx, "derived", "rebuilt", 0).Err()
			}})
		if err := watchers[i].Start(); err != nil {
			t.Fatal(err)
		}
		defer watchers[i].Shutdown()
	}
	time.Sleep(400 * time.Millisecond) // proving that nothing happens: four checks of a Redis that kept its state
	if runs[0].Load()+runs[1].Load() != 0 {
		t.Fatalf("rebuilt while Redis kept its state: %d %d", runs[0].Load(), runs[1].Load())
	}
	if st := watchers[0].Status(); st.Resets != 0 {
		t.Fatalf("status before any reset: %+v", st)
	}

	// Emptied (as a restart without persistence leaves it): both replicas rebuild once.
	if err := client.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// runs counts a rebuild as it starts; its status says so once it has finished
	testutil.Eventually(t, 3*time.Second, "both replicas rebuilt after FLUSHALL", func() bool {
		return runs[0].Load() == 1 && runs[1].Load() == 1 && !watchers[0].Status().Rebuilding && !watchers[1].Status().Rebuilding
	})
	if v, _ := client.Get(ctx, "derived").Result(); v != "rebuilt" {
		t.Errorf("the rebuild's key: %q", v)
	}
	reasons := map[string]bool{watchers[0].Status().Reason: true, watchers[1].Status().Reason: true}
	if !reasons[ResetMarkerMissing] && !reasons[ResetMarkerChanged] {
		t.Errorf("reasons %v, want the marker's", reasons)
	}
	for i, w := range watchers {
		st := w.Status()
		if st.Resets != 1 || st.Rebuilding || st.ResetAt.IsZero() || st.RebuiltAt.Before(st.ResetAt) {
			t.Errorf("replica %d status %+v", i, st)
		}
	}
	time.Sleep(300 * time.Millisecond) // proving that nothing happens: three more checks, no new reset
	if runs[0].Load() != 1 || runs[1].Load() != 1 {
		t.Errorf("rebuilt again without a new reset: %d %d", runs[0].Load(), runs[1].Load())
	}

	// Restarted with its data (AOF): the marker is the same, the run_id is not.
	srv.Stop(t)
	srv.Start(t)
	testutil.Eventually(t, 3*time.Second, "both replicas rebuilt after a restart", func() bool { return runs[0].Load() == 2 && runs[1].Load() == 2 })
	if r := watchers[0].Status().Reason; r != ResetRunIDChanged {
		t.Errorf("reason after a restart that kept the data: %q, want %q", r, ResetRunIDChanged)
	}
}

// TestResetWatcherRetriesAFailedRebuild: a step that fails is run again at the next check, and the
// status says "rebuilding" until it succeeds.
func TestResetWatcherRetriesAFailedRebuild(t *testing.T) {
	client := redistest.Client(t)
	ctx := context.Background()
	marker := MarkerKey(keyspace.New("t2"))
	var calls atomic.Int32
	w := NewResetWatcher(client, marker, slog.New(slog.NewTextHandler(io.Discard, nil)), 50*time.Millisecond,
		Rebuild{Name: "flaky", Run: func(context.Context) error {
			if calls.Add(1) < 3 {
				return context.DeadlineExceeded
			}
			return nil
		}})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	client.Del(ctx, marker)
	testutil.Eventually(t, 2*time.Second, "a rebuild attempt", func() bool { return calls.Load() >= 1 })
	if st := w.Status(); calls.Load() < 3 && !st.Rebuilding {
		t.Errorf("status while the rebuild fails: %+v", st)
	}
	testutil.Eventually(t, 2*time.Second, "the rebuild's success", func() bool { return !w.Status().Rebuilding && calls.Load() == 3 })
	if st := w.Status(); st.Resets != 1 || st.Reason != ResetMarkerMissing {
		t.Errorf("status %+v: one reset, marker_missing", st)
	}
}

// TestResetWatcherOnACluster: on a three-master cluster the run_id is read from the master holding
// the marker, so a steady cluster never looks reset; emptying the masters is noticed.
func TestResetWatcherOnACluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	client := cluster.Client(t)
	ctx := context.Background()
	var runs atomic.Int32
	w := NewResetWatcher(client, MarkerKey(keyspace.New("t3")), slog.New(slog.NewTextHandler(io.Discard, nil)), 50*time.Millisecond,
		Rebuild{Name: "probe", Run: func(context.Context) error { runs.Add(1); return nil }})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	time.Sleep(500 * time.Millisecond) // proving that nothing happens: ten checks of a steady cluster
	if n := runs.Load(); n != 0 {
		t.Fatalf("a steady cluster looked reset %d times", n)
	}
	if err := client.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 3*time.Second, "the rebuild after the masters were emptied", func() bool { return runs.Load() == 1 })
	if st := w.Status(); st.Reason != ResetMarkerMissing {
		t.Errorf("reason %q, want %q", st.Reason, ResetMarkerMissing)
	}
}
