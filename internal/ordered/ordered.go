// Package ordered runs the asynq tasks of one key (a conversation, a subscription's conversation…)
// one at a time, in the order they were enqueued, across any number of workers and processes.
//
// Enqueue admits a task at the end of its key's sequence (a Redis ZSET numbered by a per-key
// counter) and then enqueues it; a task that is not the head is enqueued scheduled, to sleep until
// its turn. The handler wrapper lets only the head through, under a lease renewed while it works.
// When the head finishes for good (done, or failed with no retry left) it leaves the sequence and
// wakes the next; when it fails and will be retried it keeps its place and frees the lease. A task
// that runs out of turn (its fallback timer fired) is put back without using up an attempt. Keys of
// different values are independent, so they run in parallel.
//
// Crashes: a lease left by a dead worker expires after Lease; asynq gives the dead worker's task
// back (its own lease expiry and recoverer) and the head runs again. A head whose task asynq no
// longer holds as runnable (never enqueued because the process died between admission and enqueue,
// archived by asynq's recoverer, deleted by an operator) is skipped by the next task that finds it
// unleased LostAfter after its admission, and reported through Options.OnSkip.
//
// The handlers must run on an internal/tasks server, whose retry policy honours the uncounted
// deferral (tasks.Defer) the wrapper uses for a task out of turn.
package ordered

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/luascript"
	"github.com/chatgate/chatgate/internal/tasks"
)

// HeaderKey is the task header carrying the sequence key; a task without it runs unordered.
const HeaderKey = "chatgate-ordered-key"

// Options tune a sequencer; zero values take the defaults.
type Options struct {
	// Lease is how long the head's claim lasts without renewal (renewed every third of it while
	// the handler runs): the longest a crashed worker holds its key up by itself. Default 15 s.
	Lease time.Duration
	// Recheck is how long a task out of turn sleeps before it looks again, should no wake-up
	// reach it. Default 5 s.
	Recheck time.Duration
	// LostAfter is how long after its admission an unleased head may be checked and skipped when
	// asynq holds no runnable task for it. Default 30 s.
	LostAfter time.Duration
	// IdleTTL bounds how long a sequence's keys live without an admission. Default 7 days.
	IdleTTL time.Duration
	// OnSkip is told of a head skipped as lost (state: "missing", "archived", "completed").
	OnSkip func(ctx context.Context, it Item, state string)
	Logger *slog.Logger
}

// Item is one task of a sequence.
type Item struct {
	Key    string
	Queue  string
	TaskID string
}

func (it Item) member() string { return it.Queue + " " + it.TaskID }

func itemOf(key, member string) Item {
	q, id, _ := strings.Cut(member, " ")
	return Item{Key: key, Queue: q, TaskID: id}
}

// Task is what Enqueue puts on asynq: Opts must not set the queue or the task id (they are Queue
// and ID here).
type Task struct {
	Key     string
	Queue   string
	ID      string
	Type    string
	Payload []byte
	Opts    []asynq.Option
}

// Enqueuer puts tasks on asynq (*asynq.Client).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Sequencer admits, gates and advances the sequences of one name (its keys: ord:<name>:<key>:…).
type Sequencer struct {
	client    redis.UniversalClient
	keys      keys
	name      string
	enqueuer  Enqueuer
	inspector *asynq.Inspector
	opts      Options
	logger    *slog.Logger
	// inScript: the scripts may touch asynq's keys beside the sequence's (not Redis Cluster, where
	// they are of other slots): admission enqueues the task, and the advance wakes the next, itself.
	inScript bool
}

// New builds a sequencer on the shared Redis client.
func New(client redis.UniversalClient, space keyspace.Space, name string, enqueuer Enqueuer, o Options) *Sequencer {
	if o.Lease <= 0 {
		o.Lease = 15 * time.Second
	}
	if o.Recheck <= 0 {
		o.Recheck = 5 * time.Second
	}
	if o.LostAfter <= 0 {
		o.LostAfter = 30 * time.Second
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = 7 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Sequencer{client: client, keys: keys{space}, name: name, enqueuer: enqueuer,
		inspector: asynq.NewInspectorFromRedisClient(client), opts: o, logger: o.Logger.With("component", "ordered", "sequence", name),
		inScript: tasks.SingleNode(client)}
}

// ErrNotYourTurn is the reason of a deferral: an earlier task of the key is not finished.
var ErrNotYourTurn = errors.New("waiting for an earlier task of the same key")

// Enqueue admits t at the end of its key's sequence and enqueues it. Enqueuing the same task again
// (its id already taken) keeps its place and succeeds. On an error nothing stays admitted.
func (s *Sequencer) Enqueue(ctx context.Context, t Task) error {
	if t.Key == "" || t.ID == "" || t.Queue == "" || strings.Contains(t.Queue, " ") {
		return fmt.Errorf("ordered: a task needs a key, an id and a queue without spaces")
	}
	it := Item{Key: t.Key, Queue: t.Queue, TaskID: t.ID}
	head, err := admitScript.Run(ctx, s.client, admitArgs{sequence: s.sequence(t.Key), member: it.member(),
		now: time.Now().UnixMilli(), idleTTL: s.opts.IdleTTL.Milliseconds()})
	if err != nil {
		return fmt.Errorf("ordered: admit: %w", err)
	}
	return s.EnqueueAdmitted(ctx, t, head)
}

// Admission is what a script needs to admit a task whose key it decides itself (a conversation
// found or opened by the same script), in the same step as its own writes: it includes AdmitTaskLua,
// gives Args as ARGV from index i, and calls orderedAdmitAt(ARGV, i, key), then the caller gives
// EnqueueAdmitted its first answer (1: the head) unless its second says the script enqueued the
// task itself (AdmitTask).
type Admission struct {
	Prefix, Member string
	Now, IdleTTL   int64 // ms
	at             time.Time
	task           tasks.Keyed // zero: the caller enqueues the task (EnqueueAdmitted)
	recheck        time.Duration
}

// Admission is the admission of the task queue/id in one of this sequencer's sequences.
func (s *Sequencer) Admission(queue, id string) Admission {
	now := time.Now()
	return Admission{Prefix: s.keys.keyPrefix(s.name), Member: Item{Queue: queue, TaskID: id}.member(),
		Now: now.UnixMilli(), IdleTTL: s.opts.IdleTTL.Milliseconds(), at: now, recheck: s.opts.Recheck}
}

// KeyPlaceholder stands for the task's key in the payload of a task given to AdmitTask: the script
// puts the key it decides there.
const KeyPlaceholder = "(ordered-key)"

// AdmitTask is the admission of t with its enqueue: the script writes t's asynq task itself, as
// EnqueueAdmitted would have (pending when it heads its sequence, else asleep until woken), one round
// trip for both and no window between them. t.Key is KeyPlaceholder, which t.Payload holds once. When
// the script cannot write it (Redis Cluster, an option or payload tasks.NewKeyed does not take) it is
// the plain Admission, and the caller enqueues t with the key put in (EnqueueAdmitted).
func (s *Sequencer) AdmitTask(t Task) Admission {
	a := s.Admission(t.Queue, t.ID)
	if !s.inScript || t.Key != KeyPlaceholder || strings.Contains(t.Queue, " ") {
		return a
	}
	opts := append(append([]asynq.Option{}, t.Opts...), asynq.Queue(t.Queue), asynq.TaskID(t.ID))
	if k, err := tasks.NewKeyed(t.Type, t.Payload, KeyPlaceholder, HeaderKey, opts...); err == nil {
		a.task = k
	}
	return a
}

// AdmissionArgs is how many ARGV an admission takes (Args).
const AdmissionArgs = 4 + tasks.KeyedArgs

// Args are the admission's ARGV for orderedAdmitAt; a nil admission's admit nothing.
func (a *Admission) Args() []any {
	if a == nil {
		return append([]any{"", "", 0, 0}, tasks.Keyed{}.Args(time.Time{}, 0)...)
	}
	return append([]any{a.Prefix, a.Member, a.Now, a.IdleTTL}, a.task.Args(a.at, a.recheck)...)
}

// EnqueueAdmitted enqueues t, already admitted (Admission) as its sequence's head or not. On an
// error nothing stays admitted.
func (s *Sequencer) EnqueueAdmitted(ctx context.Context, t Task, head bool) error {
	if t.Key == "" || t.ID == "" || t.Queue == "" || strings.Contains(t.Queue, " ") {
		return fmt.Errorf("ordered: a task needs a key, an id and a queue without spaces")
	}
	it := Item{Key: t.Key, Queue: t.Queue, TaskID: t.ID}
	opts := append(append([]asynq.Option{}, t.Opts...), asynq.Queue(t.Queue), asynq.TaskID(t.ID))
	if !head {
		// Asleep until the task before it wakes it; the timer only covers a lost wake-up.
		opts = append(opts, asynq.ProcessIn(s.opts.Recheck))
	}
	task := asynq.NewTaskWithHeaders(t.Type, t.Payload, map[string]string{HeaderKey: t.Key})
	if _, err := s.enqueuer.EnqueueContext(ctx, task, opts...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		next, rerr := s.remove(context.WithoutCancel(ctx), it, removeCancel, "")
		if rerr != nil {
			s.logger.Warn("could not withdraw an item that was not enqueued", "key", t.Key, "task_id", t.ID, "err", rerr)
		}
		s.wake(ctx, next)
		return fmt.Errorf("ordered: enqueue: %w", err)
	}
	if !head {
		// The task before may have finished between admission and enqueue, and found nothing to
		// wake: look again now that the task exists.
		if s.isHead(ctx, it) {
			s.wake(ctx, it)
		}
	}
	return nil
}

// Prefetcher is a handler whose first Redis work runs inside the script that claims its task's
// turn: one call for both (the claim is one of a handful of calls per task). PrefetchLua, the same
// for every task of the handler, defines the Lua function prefetch(keys, argv, granted), which runs
// right after the claim whatever its answer, on Prefetch's Keys and Args; granted is true exactly
// when the turn was granted, and whatever prefetch spends it must spend only then. Its keys must
// share the sequence's hash slot (the tenant's hash tag), for Redis Cluster. Prefetch returns false
// for a task that needs nothing prefetched (the claim runs alone).
type Prefetcher interface {
	PrefetchLua() string
	Prefetch(ctx context.Context, t *asynq.Task) (Prefetch, bool)
}

// Prefetch is what a Prefetcher's function gets for one task, and where its reply goes.
type Prefetch struct {
	Keys []string
	Args []any
	// Done gets prefetch's reply (nil when it returned none) and returns the context the handler
	// runs with.
	Done func(ctx context.Context, reply any) context.Context
}

// Handler wraps h so that the tasks enqueued by Enqueue run in their key's order. When h is a
// Prefetcher, its first work goes in the first claim's script.
func (s *Sequencer) Handler(h asynq.Handler) asynq.Handler {
	pre, _ := h.(Prefetcher)
	var claimPre *luascript.Script[prefetchClaimArgs, prefetchClaimReply]
	if pre != nil {
		claimPre = prefetchingClaim(pre.PrefetchLua())
	}
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		key := t.Headers()[HeaderKey]
		if key == "" {
			return h.ProcessTask(ctx, t)
		}
		id, _ := asynq.GetTaskID(ctx)
		queue, _ := asynq.GetQueueName(ctx)
		it := Item{Key: key, Queue: queue, TaskID: id}
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		// asynq archives a task whose attempts are used up whatever it returns, a deferral too.
		last := retried >= maxRetry
		token := newToken()
		for first := true; ; first = false {
			var st claimResult
			var err error
			// What was prefetched holds for the claim it travelled with only.
			hctx := ctx
			if first && pre != nil {
				st, hctx, err = s.claimPrefetching(ctx, it, token, pre, claimPre, t)
			} else {
				st, err = s.claim(ctx, it, token)
			}
			if err != nil {
				return err
			}
			var wait time.Duration
			switch st.state {
			case "gone":
				// Not (or no longer) in the sequence: it finished before and runs again after a
				// crash, or an operator runs it again. The handler knows what was already done.
				return h.ProcessTask(hctx, t)
			case "go":
				return s.run(hctx, it, token, last, h, t)
			case "busy":
				wait = st.leaseLeft
			case "wait":
				if !st.leased && s.skipLost(ctx, key, st.head, st.admittedAt) {
					continue
				}
				wait = s.opts.Recheck
			}
			if !last {
				return tasks.Defer(wait, ErrNotYourTurn)
			}
			if err := sleep(ctx, min(wait, 250*time.Millisecond)); err != nil {
				return err
			}
		}
	})
}

// Advance lets a handler end its turn in its own last Redis script, so that its last write (a
// message recorded sent) and the sequence's advance are one step: one round trip, and no crash can
// fall between them. That script includes RemoveLua and, after its write, calls
// orderedRemoveWake(KEYS…, Member, "done", Token, Wake) with Keys as four of its KEYS, and the
// handler gives Done the reply. Use it only for the task's final outcome (the handler then returns
// nil or a final error); the sequencer then only wakes the next item, unless the script did.
//
// When the handler is to return nil (Succeeds), the script (with AdvanceLua) may also complete the
// task in asynq: asynqCompleteAt(ARGV, i) with CompletionArgs at ARGV[i…], its answer to Completed.
type Advance struct {
	keys                []string
	member, token, wake string
	done, woken         bool
	next                string
	complete            tasks.Completion // zero: asynq completes the task (Redis Cluster, another server)
	succeeds, completed bool
}

type advanceKey struct{}

// AdvanceOf is the turn the handler runs in (nil outside an ordered turn).
func AdvanceOf(ctx context.Context) *Advance {
	a, _ := ctx.Value(advanceKey{}).(*Advance)
	return a
}

// Keys are the sequence's four keys (items, admitted, counter, lease), for orderedRemove.
func (a *Advance) Keys() []string { return a.keys }

// Member and Token are orderedRemove's member and token.
func (a *Advance) Member() string { return a.member }
func (a *Advance) Token() string  { return a.token }

// Wake is orderedRemoveWake's wake: "1" when the script may wake the next task itself.
func (a *Advance) Wake() string { return a.wake }

// Succeeds tells the advance that the handler returns nil after its script: the script may
// complete the task in asynq too (CompletionArgs).
func (a *Advance) Succeeds() { a.succeeds = true }

// CompletionArgs are asynqCompleteAt's ARGV (tasks.CompletionArgs of them): the task's completion
// once the handler Succeeds, where the script may write it; else they ask for nothing.
func (a *Advance) CompletionArgs() []any {
	if !a.succeeds {
		return tasks.Completion{}.Args()
	}
	return a.complete.Args()
}

// Completed records asynqCompleteAt's reply: the script completed the task in asynq (and may have
// taken the queue's next task for the server: tasks.Completion.Completed).
func (a *Advance) Completed(reply any) error {
	if !a.succeeds {
		_, err := luascript.Integer(reply) // asked for nothing: 0
		return err
	}
	done, err := a.complete.Completed(reply)
	a.completed = done
	return err
}

// Done records orderedRemove's reply: the turn is over.
func (a *Advance) Done(reply any) error {
	r, err := removeScript.Reply(reply, nil)
	if err != nil {
		return err
	}
	a.done, a.next, a.woken = true, r.next, r.woken
	return nil
}

// run executes the head under its lease, then advances the sequence or keeps the head's place.
func (s *Sequencer) run(ctx context.Context, it Item, token string, last bool, h asynq.Handler, t *asynq.Task) error {
	stop := s.keepLease(ctx, it, token)
	adv := &Advance{keys: s.keys.all(s.name, it.Key), member: it.member(), token: token, wake: luascript.Flag(s.inScript)}
	if s.inScript {
		adv.complete = tasks.CompletionOf(ctx)
	}
	err := h.ProcessTask(context.WithValue(ctx, advanceKey{}, adv), t)
	stop()
	if adv.completed && err != nil {
		// Gone from asynq already: a retry or an archive would find nothing.
		s.logger.Error("a handler failed after its script completed its task", "key", it.Key, "task_id", it.TaskID, "err", err)
		err = nil
	}
	final := err == nil || last || errors.Is(err, asynq.SkipRetry) || errors.Is(err, asynq.RevokeTask)
	bg := context.WithoutCancel(ctx)
	if adv.done {
		// The handler's last script advanced the sequence.
		if next := adv.next; next != "" && !adv.woken {
			s.wake(bg, itemOf(it.Key, next))
		}
		return err
	}
	if !final {
		if _, rerr := releaseScript.Run(bg, s.client, releaseArgs{sequence: s.sequence(it.Key), token: token}); rerr != nil {
			s.logger.Warn("could not release a lease; it expires by itself", "key", it.Key, "err", rerr)
		}
		return err
	}
	next, aerr := s.remove(bg, it, removeDone, token)
	if aerr != nil {
		s.logger.Warn("could not advance a sequence", "key", it.Key, "task_id", it.TaskID, "err", aerr)
		if err == nil {
			// Run again: the handler finds its work done and the sequence advances then.
			return fmt.Errorf("ordered: advance: %w", aerr)
		}
		return err
	}
	s.wake(bg, next)
	return err
}

// keepLease renews the lease every third of its time until stop is called.
func (s *Sequencer) keepLease(ctx context.Context, it Item, token string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(s.opts.Lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				held, err := renewScript.Run(context.WithoutCancel(ctx), s.client, leaseArgs{sequence: s.sequence(it.Key),
					token: token, lease: s.opts.Lease.Milliseconds()})
				if err == nil && !held {
					s.logger.Warn("lost the lease of a sequence while working", "key", it.Key, "task_id", it.TaskID)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (s *Sequencer) claim(ctx context.Context, it Item, token string) (claimResult, error) {
	r, err := claimScript.Run(ctx, s.client, claimArgs{sequence: s.sequence(it.Key), member: it.member(), token: token,
		lease: s.opts.Lease.Milliseconds()})
	if err != nil {
		return claimResult{}, fmt.Errorf("ordered: %w", err)
	}
	return r, nil
}

// claimPrefetching claims the turn with the handler's prefetch in the same script.
func (s *Sequencer) claimPrefetching(ctx context.Context, it Item, token string, pre Prefetcher,
	script *luascript.Script[prefetchClaimArgs, prefetchClaimReply], t *asynq.Task) (claimResult, context.Context, error) {
	p, ok := pre.Prefetch(ctx, t)
	if !ok {
		r, err := s.claim(ctx, it, token)
		return r, ctx, err
	}
	r, err := script.Run(ctx, s.client, prefetchClaimArgs{pre: p, claimArgs: claimArgs{sequence: s.sequence(it.Key),
		member: it.member(), token: token, lease: s.opts.Lease.Milliseconds()}})
	if err != nil {
		return claimResult{}, ctx, fmt.Errorf("ordered: %w", err)
	}
	return r.claim, p.Done(ctx, r.prefetch), nil
}

// isHead reports whether it heads its sequence now.
func (s *Sequencer) isHead(ctx context.Context, it Item) bool {
	head, err := s.client.ZRange(ctx, s.keys.list(s.name, it.Key), 0, 0).Result()
	return err == nil && len(head) == 1 && head[0] == it.member()
}

// skipLost skips the head when asynq holds no runnable task for it, and reports whether it did.
func (s *Sequencer) skipLost(ctx context.Context, key, member string, admittedAt time.Time) bool {
	if time.Since(admittedAt) < s.opts.LostAfter {
		return false
	}
	head := itemOf(key, member)
	state := "missing"
	info, err := s.inspector.GetTaskInfo(head.Queue, head.TaskID)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
	case err != nil:
		return false
	case info.State == asynq.TaskStateArchived:
		state = "archived"
	case info.State == asynq.TaskStateCompleted:
		state = "completed"
	default:
		return false // pending, active, scheduled, retry: it will come
	}
	next, err := s.remove(ctx, head, removeSkip, "")
	if err != nil {
		return false // errHeld: it came back meanwhile
	}
	s.logger.Warn("skipped a lost head of a sequence", "key", key, "task_id", head.TaskID, "state", state)
	if s.opts.OnSkip != nil {
		s.opts.OnSkip(context.WithoutCancel(ctx), head, state)
	}
	s.wake(ctx, next)
	return true
}

var errHeld = errors.New("ordered: the head is held")

// remove runs removeScript and returns the item to wake (zero when none, or when the script woke it).
func (s *Sequencer) remove(ctx context.Context, it Item, mode, token string) (Item, error) {
	out, err := removeScript.Run(ctx, s.client, removeArgs{sequence: s.sequence(it.Key), member: it.member(), mode: mode, token: token,
		wake: s.inScript})
	if err != nil {
		return Item{}, err
	}
	if out.held {
		return Item{}, errHeld
	}
	if out.next == "" || out.woken {
		return Item{}, nil
	}
	return itemOf(it.Key, out.next), nil
}

// sequence names the sequence of a task key for the scripts.
func (s *Sequencer) sequence(key string) sequence {
	return sequence{keys: s.keys, name: s.name, key: key}
}

// wake makes a sleeping task runnable now, one round trip (tasks.RunNow). A task just deferring
// itself (active for a moment) is asked again briefly; one already pending needs nothing; a missing
// one wakes itself after its enqueue (see Enqueue).
func (s *Sequencer) wake(ctx context.Context, it Item) {
	if it.TaskID == "" {
		return
	}
	for _, d := range []time.Duration{0, 10 * time.Millisecond, 40 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond} {
		if sleep(ctx, d) != nil {
			return
		}
		_, err := tasks.RunNow(ctx, s.client, it.Queue, it.TaskID)
		if errors.Is(err, tasks.ErrTaskGrouped) {
			err = s.inspector.RunTask(it.Queue, it.TaskID)
		}
		if !errors.Is(err, tasks.ErrTaskActive) {
			if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				s.logger.Debug("could not wake the next task; its timer will", "key", it.Key, "task_id", it.TaskID, "err", err)
			}
			return
		}
	}
	s.logger.Debug("could not wake the next task; its timer will", "key", it.Key, "task_id", it.TaskID)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
