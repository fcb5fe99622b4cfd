package ordered

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
)

const taskType = "test:ordered"

// journal records what the handler did, per key, in the order it happened.
type journal struct {
	mu       sync.Mutex
	done     map[string][]int // key → item numbers finished for good (sent or failed)
	attempts map[string]int   // task id → attempts
	active   map[string]int   // key → handlers running now
	overlap  atomic.Int32     // a key with two handlers at once
	keysBusy atomic.Int32     // keys running at the same moment
	maxBusy  atomic.Int32
}

func newJournal() *journal {
	return &journal{done: map[string][]int{}, attempts: map[string]int{}, active: map[string]int{}}
}

type payload struct {
	Key string
	N   int
}

// env is one Redis, one sequencer on a client, and asynq servers ("processes") each on its own
// connection running the wrapped handler.
type env struct {
	t      *testing.T
	client *redis.Client
	seq    *Sequencer
	j      *journal
}

func newEnv(t *testing.T, o Options) *env {
	client := redistest.Client(t)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &env{t: t, client: client, j: newJournal()}
	e.seq = New(client, keyspace.New("t"), "test", asynq.NewClientFromRedisClient(client), o)
	return e
}

// process starts an asynq server with its own connection and sequencer, as another replica would.
func (e *env) process(concurrency int, o Options, h func(ctx context.Context, p payload, attempt int) error) *tasks.Server {
	client := redis.NewClient(e.client.Options())
	e.t.Cleanup(func() { _ = client.Close() })
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	seq := New(client, keyspace.New("t"), "test", asynq.NewClientFromRedisClient(client), o)
	srv := tasks.NewServer(client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: concurrency, ShutdownTimeout: time.Second,
		RetryDelay: func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond }})
	srv.Handle(taskType, seq.Handler(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		var p payload
		if _, err := fmt.Sscanf(string(task.Payload()), "%s %d", &p.Key, &p.N); err != nil {
			return err
		}
		id, _ := asynq.GetTaskID(ctx)
		e.j.mu.Lock()
		e.j.attempts[id]++
		attempt := e.j.attempts[id]
		e.j.active[p.Key]++
		if e.j.active[p.Key] > 1 {
			e.j.overlap.Add(1)
		}
		if e.j.active[p.Key] == 1 {
			if n := e.j.keysBusy.Add(1); n > e.j.maxBusy.Load() {
				e.j.maxBusy.Store(n)
			}
		}
		e.j.mu.Unlock()
		err := h(ctx, p, attempt)
		e.j.mu.Lock()
		e.j.active[p.Key]--
		if e.j.active[p.Key] == 0 {
			e.j.keysBusy.Add(-1)
		}
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if err == nil || errors.Is(err, asynq.SkipRetry) || retried >= maxRetry {
			e.j.done[p.Key] = append(e.j.done[p.Key], p.N)
		}
		e.j.mu.Unlock()
		return err
	})))
	if err := srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(srv.Shutdown)
	return srv
}

func (e *env) enqueue(key string, n int) {
	e.t.Helper()
	err := e.seq.Enqueue(context.Background(), Task{Key: key, Queue: tasks.QueueReplies, ID: fmt.Sprintf("%s-%d", key, n),
		Type: taskType, Payload: fmt.Appendf(nil, "%s %d", key, n), Opts: []asynq.Option{asynq.MaxRetry(20)}})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) waitDone(keys map[string]int, d time.Duration) {
	e.t.Helper()
	finished := testutil.Within(d, func() bool {
		e.j.mu.Lock()
		defer e.j.mu.Unlock()
		for k, n := range keys {
			if len(e.j.done[k]) < n {
				return false
			}
		}
		return true
	})
	if finished {
		return
	}
	e.j.mu.Lock()
	defer e.j.mu.Unlock()
	e.t.Fatalf("not finished in %v: %v", d, e.j.done)
}

func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// Three keys of 20 items, enqueued back to back, on two processes of four workers each, with a
// handler that takes a random time and fails a third of its attempts: each key's items finish in
// their order, never two of one key at a time, and the keys run side by side.
func TestKeysRunInOrderThroughRandomFailures(t *testing.T) {
	e := newEnv(t, Options{})
	flaky := func(ctx context.Context, p payload, _ int) error {
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond) // the work a handler takes, of random length
		if rand.IntN(3) == 0 {
			return errors.New("provider hiccup")
		}
		return nil
	}
	e.process(4, Options{}, flaky)
	e.process(4, Options{}, flaky)
	keys := map[string]int{"conv-a": 20, "conv-b": 20, "conv-c": 20}
	for n := 1; n <= 20; n++ {
		for k := range keys {
			e.enqueue(k, n)
		}
	}
	e.waitDone(keys, 90*time.Second)
	for k := range keys {
		if got := e.j.done[k]; !slices.Equal(got, upTo(20)) {
			t.Errorf("%s finished as %v", k, got)
		}
	}
	if e.j.overlap.Load() != 0 {
		t.Errorf("%d times two items of one key ran at once", e.j.overlap.Load())
	}
	if e.j.maxBusy.Load() < 2 {
		t.Errorf("the keys never ran side by side (at most %d at once)", e.j.maxBusy.Load())
	}
	if n, _ := e.client.Keys(context.Background(), "cg:{t}:ord:*").Result(); len(n) != 0 {
		t.Errorf("finished sequences left keys behind: %v", n)
	}
}

// An item failing for good (no retry) ends its turn: the next ones go on, in order.
func TestPermanentFailureLetsTheNextGo(t *testing.T) {
	e := newEnv(t, Options{})
	e.process(4, Options{}, func(ctx context.Context, p payload, _ int) error {
		if p.N == 3 {
			return fmt.Errorf("%w: rejected", asynq.SkipRetry)
		}
		return nil
	})
	for n := 1; n <= 6; n++ {
		e.enqueue("k", n)
	}
	e.waitDone(map[string]int{"k": 6}, 30*time.Second)
	if got := e.j.done["k"]; !slices.Equal(got, upTo(6)) {
		t.Errorf("finished as %v", got)
	}
}

// A head admitted but never enqueued (its process died in between) is skipped once it is older
// than LostAfter, reported, and the items after it run in order.
func TestLostHeadIsSkipped(t *testing.T) {
	var skipped []string
	var mu sync.Mutex
	o := Options{LostAfter: 300 * time.Millisecond, Recheck: time.Second, OnSkip: func(_ context.Context, it Item, state string) {
		mu.Lock()
		skipped = append(skipped, it.TaskID+" "+state)
		mu.Unlock()
	}}
	e := newEnv(t, o)
	lost := Item{Key: "k", Queue: tasks.QueueReplies, TaskID: "k-0"}
	if _, err := admitScript.Run(context.Background(), e.client, admitArgs{sequence: e.seq.sequence("k"), member: lost.member(),
		now: time.Now().UnixMilli(), idleTTL: time.Hour.Milliseconds()}); err != nil {
		t.Fatal(err)
	}
	e.process(2, o, func(context.Context, payload, int) error { return nil })
	for n := 1; n <= 3; n++ {
		e.enqueue("k", n)
	}
	e.waitDone(map[string]int{"k": 3}, 30*time.Second)
	if got := e.j.done["k"]; !slices.Equal(got, upTo(3)) {
		t.Errorf("finished as %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(skipped, []string{"k-0 missing"}) {
		t.Errorf("skipped %v", skipped)
	}
}

// A head whose lease is held (its worker died mid-task) makes the next wait; once the lease
// expires and the head runs again, the sequence goes on in order.
func TestDeadWorkersLeaseExpires(t *testing.T) {
	o := Options{Lease: 600 * time.Millisecond}
	e := newEnv(t, o)
	// The first item's earlier execution died holding the lease.
	first := Item{Key: "k", Queue: tasks.QueueReplies, TaskID: "k-1"}
	e.enqueue("k", 1)
	out, err := claimScript.Run(context.Background(), e.client, claimArgs{sequence: e.seq.sequence("k"), member: first.member(),
		token: "dead-worker", lease: o.Lease.Milliseconds()})
	if err != nil || out.state != "go" {
		t.Fatalf("claim: %v %v", out, err)
	}
	start := time.Now()
	var firstRan time.Duration
	e.process(4, o, func(_ context.Context, p payload, _ int) error {
		if p.N == 1 {
			firstRan = time.Since(start)
		}
		return nil
	})
	for n := 2; n <= 4; n++ {
		e.enqueue("k", n)
	}
	e.waitDone(map[string]int{"k": 4}, 30*time.Second)
	if got := e.j.done["k"]; !slices.Equal(got, upTo(4)) {
		t.Errorf("finished as %v", got)
	}
	if firstRan < 400*time.Millisecond {
		t.Errorf("the head ran %v after start, inside the dead worker's lease", firstRan)
	}
}

// Enqueuing the same task again keeps its place and runs it once.
func TestEnqueueAgainKeepsThePlace(t *testing.T) {
	e := newEnv(t, Options{})
	e.enqueue("k", 1)
	e.enqueue("k", 2)
	e.enqueue("k", 1)
	members, err := e.client.ZRange(context.Background(), e.seq.keys.list("test", "k"), 0, -1).Result()
	if err != nil || !slices.Equal(members, []string{"replies k-1", "replies k-2"}) {
		t.Fatalf("sequence %v %v", members, err)
	}
	e.process(2, Options{}, func(context.Context, payload, int) error { return nil })
	e.waitDone(map[string]int{"k": 2}, 30*time.Second)
	if got := e.j.done["k"]; !slices.Equal(got, []int{1, 2}) {
		t.Errorf("finished as %v", got)
	}
}

// counting is a Prefetcher whose function counts a turn only when the claim granted it.
type counting struct {
	key     string
	mu      sync.Mutex
	ran     []string // payloads, in the order they ran
	granted []int64  // per run: the count the prefetch made
	missed  int      // runs without their prefetch's reply
	wakes   []string // per run: the turn's wake flag (Advance.Wake)
	// succeed: each run declares it succeeds (Advance.Succeeds) and records its completion argument.
	succeed     bool
	completions []string
}

type prefetchedCount struct{}

func (c *counting) PrefetchLua() string {
	return `
local function prefetch(keys, argv, granted)
  if not granted then return -1 end
  return redis.call('INCRBY', keys[1], argv[1])
end
`
}

func (c *counting) Prefetch(ctx context.Context, _ *asynq.Task) (Prefetch, bool) {
	return Prefetch{Keys: []string{c.key}, Args: []any{1}, Done: func(ctx context.Context, reply any) context.Context {
		return context.WithValue(ctx, prefetchedCount{}, reply)
	}}, true
}

func (c *counting) ProcessTask(ctx context.Context, t *asynq.Task) error {
	n, ok := ctx.Value(prefetchedCount{}).(int64)
	time.Sleep(20 * time.Millisecond) // the work, long enough for the next items to wake and find it busy
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.missed++
	}
	c.ran = append(c.ran, string(t.Payload()))
	c.granted = append(c.granted, n)
	if adv := AdvanceOf(ctx); adv != nil {
		c.wakes = append(c.wakes, adv.Wake())
		if c.succeed {
			adv.Succeeds()
			c.completions = append(c.completions, fmt.Sprint(adv.CompletionArgs()[0]))
		}
	}
	return nil
}

// A Prefetcher's function runs in the claim's script and knows whether the turn was granted: items
// that wake out of turn (a short recheck) count nothing, each item in turn counts once, also when
// Redis has forgotten the scripts (NOSCRIPT: the script is sent again, and runs once).
func TestPrefetchRunsWithTheClaimAndSeesTheTurn(t *testing.T) {
	e := newEnv(t, Options{Recheck: 5 * time.Millisecond})
	counter := keyspace.New("t").Key("test", "turns")
	h := &counting{key: counter}
	seq := New(e.client, keyspace.New("t"), "test", asynq.NewClientFromRedisClient(e.client), Options{Recheck: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	srv := tasks.NewServer(e.client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: 4, ShutdownTimeout: time.Second,
		RetryDelay: func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond }})
	srv.Handle(taskType, seq.Handler(h))
	const items = 6
	for n := 1; n <= items; n++ {
		if err := e.seq.Enqueue(context.Background(), Task{Key: "k", Queue: tasks.QueueReplies, ID: fmt.Sprintf("k-%d", n),
			Type: taskType, Payload: fmt.Appendf(nil, "%d", n), Opts: []asynq.Option{asynq.MaxRetry(20)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Every item runnable at once: all but the head run out of turn (busy or waiting) first.
	insp := asynq.NewInspectorFromRedisClient(e.client)
	for n := 2; n <= items; n++ {
		if err := insp.RunTask(tasks.QueueReplies, fmt.Sprintf("k-%d", n)); err != nil {
			t.Fatal(err)
		}
	}
	// The first claims meet NOSCRIPT, as after a Redis restart.
	if err := e.client.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	if !testutil.Within(30*time.Second, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.ran) == items }) {
		t.Fatalf("ran %v", h.ran)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := []string{"1", "2", "3", "4", "5", "6"}; !slices.Equal(h.ran, want) {
		t.Errorf("ran in the order %v", h.ran)
	}
	if want := []int64{1, 2, 3, 4, 5, 6}; !slices.Equal(h.granted, want) {
		t.Errorf("the prefetch counted %v on the granted turns, want %v", h.granted, want)
	}
	if n, _ := e.client.Get(context.Background(), counter).Int(); n != items {
		t.Errorf("counted %d turns, want %d: out-of-turn runs counted", n, items)
	}
	if h.missed != 0 {
		t.Errorf("%d runs without their prefetch's reply", h.missed)
	}
}

// advancing ends each turn in its own script (RemoveLua after its write), as a handler whose last
// write is a script does.
var writeAndAdvance = redis.NewScript(RemoveLua + `
redis.call('RPUSH', KEYS[5], ARGV[3])
return orderedRemove(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], 'done', ARGV[2])
`)

// A handler that ends its turn in its own script (Advance) has moved the sequence on when that
// script returns, and the next item is woken at once (the recheck timer is far longer than the test).
func TestAdvanceInTheHandlersScript(t *testing.T) {
	o := Options{Recheck: time.Minute, Logger: slog.New(slog.DiscardHandler)}
	e := newEnv(t, o)
	log := keyspace.New("t").Key("test", "written")
	var mu sync.Mutex
	var stillQueued []string
	seq := New(e.client, keyspace.New("t"), "test", asynq.NewClientFromRedisClient(e.client), o)
	srv := tasks.NewServer(e.client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: 4, ShutdownTimeout: time.Second})
	srv.Handle(taskType, seq.Handler(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		adv := AdvanceOf(ctx)
		if adv == nil {
			return fmt.Errorf("%w: no turn in the context", asynq.SkipRetry)
		}
		reply, err := writeAndAdvance.Run(ctx, e.client, append(adv.Keys(), log), adv.Member(), adv.Token(), string(task.Payload())).Result()
		if err != nil {
			return err
		}
		if err := adv.Done(reply); err != nil {
			return err
		}
		if _, err := e.client.ZScore(ctx, adv.Keys()[0], adv.Member()).Result(); !errors.Is(err, redis.Nil) {
			mu.Lock()
			stillQueued = append(stillQueued, string(task.Payload()))
			mu.Unlock()
		}
		return nil
	})))
	enqueueFiveAndWaitInOrder(t, e, srv, log)
	mu.Lock()
	defer mu.Unlock()
	if len(stillQueued) > 0 {
		t.Errorf("items %v were still in the sequence after their handler's script", stillQueued)
	}
	if n, _ := e.client.Exists(context.Background(), seq.keys.all("test", "k")...).Result(); n != 0 {
		t.Errorf("%d keys of the emptied sequence are left", n)
	}
}

// A script that admits a task itself (Admission) names the sequence's keys as the sequencer does,
// and EnqueueAdmitted then runs it in its turn.
func TestAdmissionByAnotherScript(t *testing.T) {
	e := newEnv(t, Options{})
	admitInScript := redis.NewScript(KeysLua + AdmitLua + `
local items, at, counter, lease = orderedKeys(ARGV[1], ARGV[2])
return {orderedAdmit(items, at, counter, ARGV[3], ARGV[4], ARGV[5]), items, at, counter, lease}
`)
	var ran []int
	var mu sync.Mutex
	srv := tasks.NewServer(e.client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: 2, ShutdownTimeout: time.Second})
	srv.Handle(taskType, e.seq.Handler(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		var n int
		fmt.Sscanf(string(task.Payload()), "%d", &n)
		mu.Lock()
		ran = append(ran, n)
		mu.Unlock()
		return nil
	})))
	for n := 1; n <= 3; n++ {
		id := fmt.Sprintf("k-%d", n)
		a := e.seq.Admission(tasks.QueueReplies, id)
		out, err := admitInScript.Run(context.Background(), e.client, nil, a.Prefix, "k", a.Member, a.Now, a.IdleTTL).Slice()
		if err != nil {
			t.Fatal(err)
		}
		want := e.seq.keys.all("test", "k")
		for i, k := range want {
			if out[i+1] != k {
				t.Fatalf("the script's key %d is %v, the sequencer's %s", i, out[i+1], k)
			}
		}
		if head := out[0] == int64(1); head != (n == 1) {
			t.Fatalf("item %d admitted as head: %v", n, head)
		}
		if err := e.seq.EnqueueAdmitted(context.Background(), Task{Key: "k", Queue: tasks.QueueReplies, ID: id, Type: taskType,
			Payload: fmt.Appendf(nil, "%d", n)}, out[0] == int64(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	if !testutil.Within(20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(ran) == 3 }) {
		t.Fatalf("ran %v", ran)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(ran, upTo(3)) {
		t.Errorf("ran in the order %v", ran)
	}
}

// hooked is a client of e's Redis counting its RunNow wakes of the replies queue
// (a script given asynq's pending list of queue as a key), as against the wakes the sequence's own
// scripts make.
func (e *env) hooked() (*redis.Client, *redistest.CommandCounter) {
	c := redis.NewClient(e.client.Options())
	e.t.Cleanup(func() { _ = c.Close() })
	pending := "asynq:{" + tasks.QueueReplies + "}:pending"
	h := &redistest.CommandCounter{Match: func(cmd redis.Cmder) bool {
		name := cmd.Name()
		return (name == "evalsha" || name == "eval") && slices.Contains(cmd.Args(), any(pending))
	}}
	c.AddHook(h)
	return c, h
}

// admitTaskInScript admits (and enqueues) the task of ARGV[2…] with key ARGV[1], as a script that
// decides the key itself does.
var admitTaskInScript = redis.NewScript(AdmitTaskLua + `
return {orderedAdmitAt(ARGV, 2, ARGV[1])}
`)

// A script that admits a task with its asynq task (AdmitTask) enqueues it too: the head pending,
// the others asleep, with the key the script gave put in the payload and the header; they run in
// order, each woken by the script that ended the turn before it (the recheck is far longer than the
// test, and no wake goes through RunNow).
func TestAdmitTaskEnqueuesInTheScript(t *testing.T) {
	o := Options{Recheck: time.Minute, Logger: slog.New(slog.DiscardHandler)}
	e := newEnv(t, o)
	client, wakes := e.hooked()
	seq := New(client, keyspace.New("t"), "test", asynq.NewClientFromRedisClient(client), o)
	ins := asynq.NewInspectorFromRedisClient(e.client)
	const items = 4
	for n := 1; n <= items; n++ {
		id := fmt.Sprintf("k-%d", n)
		a := seq.AdmitTask(Task{Key: KeyPlaceholder, Queue: tasks.QueueReplies, ID: id, Type: taskType,
			Payload: fmt.Appendf(nil, "%s %d", KeyPlaceholder, n), Opts: []asynq.Option{asynq.MaxRetry(3)}})
		out, err := admitTaskInScript.Run(context.Background(), e.client, nil, append([]any{"k"}, a.Args()...)...).Slice()
		if err != nil {
			t.Fatal(err)
		}
		if head := out[0] == int64(1); head != (n == 1) || out[1] != int64(1) {
			t.Fatalf("item %d: head %v, enqueued %v", n, out[0], out[1])
		}
		info, err := ins.GetTaskInfo(tasks.QueueReplies, id)
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]asynq.TaskState{true: asynq.TaskStatePending, false: asynq.TaskStateScheduled}[n == 1]
		if info.State != want || string(info.Payload) != fmt.Sprintf("k %d", n) || info.MaxRetry != 3 {
			t.Fatalf("item %d as asynq sees it: %v %q retry %d", n, info.State, info.Payload, info.MaxRetry)
		}
	}
	srv := tasks.NewServer(e.client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: 4, ShutdownTimeout: time.Second})
	var mu sync.Mutex
	var ran []string
	srv.Handle(taskType, seq.Handler(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		mu.Lock()
		ran = append(ran, task.Headers()[HeaderKey]+" "+string(task.Payload()))
		mu.Unlock()
		return nil
	})))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	if !testutil.Within(20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(ran) == items }) {
		t.Fatalf("ran %v: the next items were not woken", ran)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"k k 1", "k k 2", "k k 3", "k k 4"}; !slices.Equal(ran, want) {
		t.Errorf("ran %q, want %q", ran, want)
	}
	if n := wakes.N(); n != 0 {
		t.Errorf("%d wakes through RunNow, want none (the advance's script wakes)", n)
	}
}

// advanceAndWake ends each turn in the handler's own script with orderedRemoveWake, as routing's
// status script does.
var advanceAndWake = redis.NewScript(RemoveLua + `
redis.call('RPUSH', KEYS[5], ARGV[3])
return orderedRemoveWake(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], 'done', ARGV[2], ARGV[4])
`)

// The handler's own script that ends the turn wakes the next item in the same step: no wake goes
// through RunNow, and the items run in order though the recheck is far longer than the test.
func TestAdvanceWakesTheNextInTheHandlersScript(t *testing.T) {
	o := Options{Recheck: time.Minute, Logger: slog.New(slog.DiscardHandler)}
	e := newEnv(t, o)
	client, wakes := e.hooked()
	log := keyspace.New("t").Key("test", "written")
	seq := New(client, keyspace.New("t"), "test", asynq.NewClientFromRedisClient(client), o)
	srv := tasks.NewServer(e.client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: 4, ShutdownTimeout: time.Second})
	srv.Handle(taskType, seq.Handler(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		adv := AdvanceOf(ctx)
		if adv == nil || adv.Wake() != "1" {
			return fmt.Errorf("%w: no turn that may wake in the context", asynq.SkipRetry)
		}
		reply, err := advanceAndWake.Run(ctx, e.client, append(adv.Keys(), log), adv.Member(), adv.Token(), string(task.Payload()), adv.Wake()).Result()
		if err != nil {
			return err
		}
		return adv.Done(reply)
	})))
	enqueueFiveAndWaitInOrder(t, e, srv, log)
	if n := wakes.N(); n != 0 {
		t.Errorf("%d wakes through RunNow, want none", n)
	}
}

// advanceAndComplete ends each turn as advanceAndWake does and completes the task in asynq too
// (AdvanceLua), as routing's status script does for a sent message.
var advanceAndComplete = redis.NewScript(AdvanceLua + `
redis.call('RPUSH', KEYS[5], ARGV[3])
return {orderedRemoveWake(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], 'done', ARGV[2], ARGV[4]), asynqCompleteAt(ARGV, 5)}
`)

// A handler that succeeds completes its task in its own script that ends the turn: asynq's
// completion of the task never reaches Redis, and asynq counts every task processed.
func TestAdvanceCompletesTheTaskInTheHandlersScript(t *testing.T) {
	o := Options{Recheck: time.Minute, Logger: slog.New(slog.DiscardHandler)}
	e := newEnv(t, o)
	log := keyspace.New("t").Key("test", "written")
	active := "asynq:{" + tasks.QueueReplies + "}:active"
	asynqDone := &redistest.CommandCounter{Match: func(cmd redis.Cmder) bool {
		a, n := cmd.Args(), cmd.Name()
		return (n == "evalsha" || n == "eval") && len(a) > 3 && a[3] == active
	}}
	client := redis.NewClient(e.client.Options())
	t.Cleanup(func() { _ = client.Close() })
	client.AddHook(asynqDone)
	seq := New(client, keyspace.New("t"), "test", asynq.NewClientFromRedisClient(client), o)
	srv := tasks.NewServer(client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: 4, ShutdownTimeout: time.Second})
	srv.Handle(taskType, seq.Handler(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		adv := AdvanceOf(ctx)
		if adv == nil {
			return fmt.Errorf("%w: no turn in the context", asynq.SkipRetry)
		}
		adv.Succeeds()
		args := append([]any{adv.Member(), adv.Token(), string(task.Payload()), adv.Wake()}, adv.CompletionArgs()...)
		reply, err := advanceAndComplete.Run(ctx, e.client, append(adv.Keys(), log), args...).Slice()
		if err != nil {
			return err
		}
		// 1, or {1, id, msg} with the queue's next task handed out too
		if r, ok := reply[1].([]any); reply[1] != int64(1) && (!ok || len(r) != 3 || r[0] != int64(1)) {
			return fmt.Errorf("%w: the script did not complete the task: %v", asynq.SkipRetry, reply[1])
		}
		return errors.Join(adv.Done(reply[0]), adv.Completed(reply[1]))
	})))
	enqueueFiveAndWaitInOrder(t, e, srv, log)
	ins := asynq.NewInspectorFromRedisClient(e.client)
	testutil.Eventually(t, 5*time.Second, "asynq to count the tasks processed", func() bool {
		info, err := ins.GetQueueInfo(tasks.QueueReplies)
		return err == nil && info.Processed == 5 && info.Failed == 0 && info.Size == 0
	})
	time.Sleep(100 * time.Millisecond)
	if n := asynqDone.N(); n != 0 {
		t.Errorf("asynq's completion reached Redis %d times, want none", n)
	}
}

// On Redis Cluster, where asynq's keys are of other slots than the sequence's, the admission carries
// no task (the caller enqueues it), the advance does not wake in its script nor complete the task:
// the old paths, which run there in order. The claim's script runs with the handler's prefetch (its
// keys of the tenant's slot), which counts each granted turn once.
func TestClusterKeepsToTheClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cluster := redistest.StartCluster(t)
	client := cluster.Client(t)
	o := Options{Recheck: time.Minute, Logger: slog.New(slog.DiscardHandler)}
	seq := New(client, keyspace.New("t"), "test", asynq.NewClientFromRedisClient(client), o)
	srv := tasks.NewServer(client, slog.New(slog.DiscardHandler), tasks.Options{Concurrency: 4, ShutdownTimeout: time.Second})
	h := &counting{key: keyspace.New("t").Key("test", "turns"), succeed: true}
	srv.Handle(taskType, seq.Handler(h))
	const items = 3
	for n := 1; n <= items; n++ {
		id := fmt.Sprintf("k-%d", n)
		task := Task{Key: KeyPlaceholder, Queue: tasks.QueueReplies, ID: id, Type: taskType, Payload: fmt.Appendf(nil, "%s %d", KeyPlaceholder, n)}
		a := seq.AdmitTask(task)
		if args := a.Args(); args[4] != "" {
			t.Fatalf("the admission carries its task on a cluster: %v", args)
		}
		// The script's keys are the sequence's (one slot): it admits, and enqueues nothing.
		out, err := admitTaskInScript.Run(context.Background(), client, seq.keys.all("test", "k"), append([]any{"k"}, a.Args()...)...).Slice()
		if err != nil {
			t.Fatal(err)
		}
		if out[1] != int64(0) {
			t.Fatalf("item %d enqueued by the script on a cluster", n)
		}
		task.Key, task.Payload = "k", fmt.Appendf(nil, "k %d", n)
		if err := seq.EnqueueAdmitted(context.Background(), task, out[0] == int64(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	if !testutil.Within(30*time.Second, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.ran) == items }) {
		t.Fatalf("ran %v", h.ran)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := []string{"k 1", "k 2", "k 3"}; !slices.Equal(h.ran, want) {
		t.Errorf("ran %q, want %q", h.ran, want)
	}
	if want := []int64{1, 2, 3}; !slices.Equal(h.granted, want) {
		t.Errorf("the prefetch counted %v on the granted turns, want %v", h.granted, want)
	}
	if !slices.Equal(h.wakes, []string{"0", "0", "0"}) {
		t.Errorf("the turns' wake flags on a cluster: %v, want all 0", h.wakes)
	}
	if !slices.Equal(h.completions, []string{"", "", ""}) {
		t.Errorf("the turns' completions on a cluster: %q, want none (asynq completes the tasks)", h.completions)
	}
}

// enqueueFiveAndWaitInOrder enqueues five items of one key, starts srv, and checks that its handler
// wrote them to log in order, each woken by the one before.
func enqueueFiveAndWaitInOrder(t *testing.T, e *env, srv *tasks.Server, log string) {
	t.Helper()
	const items = 5
	for n := 1; n <= items; n++ {
		if err := e.seq.Enqueue(context.Background(), Task{Key: "k", Queue: tasks.QueueReplies, ID: fmt.Sprintf("k-%d", n),
			Type: taskType, Payload: fmt.Appendf(nil, "%d", n), Opts: []asynq.Option{asynq.MaxRetry(3)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	var written []string
	if !testutil.Within(20*time.Second, func() bool {
		written, _ = e.client.LRange(context.Background(), log, 0, -1).Result()
		return len(written) == items
	}) {
		t.Fatalf("written %v: the next items were not woken", written)
	}
	if want := []string{"1", "2", "3", "4", "5"}; !slices.Equal(written, want) {
		t.Errorf("written in the order %v, want %v", written, want)
	}
}

// The claim's answers: an item behind the head waits (and learns whether the head is leased), the
// head goes once per lease token (again for the same token, as when a claim is retried), another
// token finds it busy, and an item not in the sequence is gone.
func TestClaimAnswers(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	for n := 1; n <= 2; n++ {
		if err := e.seq.Enqueue(ctx, Task{Key: "k", Queue: tasks.QueueReplies, ID: fmt.Sprintf("k-%d", n), Type: taskType,
			Payload: fmt.Appendf(nil, "%d", n)}); err != nil {
			t.Fatal(err)
		}
	}
	item := func(n int) Item { return Item{Key: "k", Queue: tasks.QueueReplies, TaskID: fmt.Sprintf("k-%d", n)} }
	claim := func(n int, token string) claimResult {
		t.Helper()
		r, err := e.seq.claim(ctx, item(n), token)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := claim(2, "a"); r.state != "wait" || r.head != item(1).member() || r.leased || time.Since(r.admittedAt) > time.Minute {
		t.Fatalf("the second item's claim: %+v, want a wait for the unleased head", r)
	}
	if r := claim(1, "a"); r.state != "go" {
		t.Fatalf("the head's claim: %+v", r)
	}
	if r := claim(1, "a"); r.state != "go" {
		t.Fatalf("the head's claim again under its own lease: %+v", r)
	}
	if r := claim(1, "b"); r.state != "busy" || r.leaseLeft <= 0 {
		t.Fatalf("the head's claim under another token: %+v, want busy", r)
	}
	if r := claim(2, "c"); r.state != "wait" || !r.leased {
		t.Fatalf("the second item's claim: %+v, want a wait for the leased head", r)
	}
	if r := claim(9, "a"); r.state != "gone" {
		t.Fatalf("a claim of an item not in the sequence: %+v", r)
	}
}
