// Package tasks is the asynq plumbing shared by the packages that enqueue or handle tasks: one
// server per process on the shared Redis client, its queue layout, and asynq logging through slog.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/logging"
)

// Queue names. Replies to customers are never stuck behind a campaign of templates: they have
// workers of their own (see pools).
const (
	QueueReplies   = "replies"
	QueueTemplates = "templates"
	QueueDefault   = "default"
)

// Weights names every queue the gateway's workers poll (the operations view lists them all). Each
// queue belongs to one pool (pools); the weight orders the queues within a pool.
var Weights = map[string]int{QueueReplies: 6, QueueTemplates: 3, QueueDefault: 1}

// pools split the queues between worker pools, each with its own workers and its own dequeue loops
// (asynq servers, see pool.loops). asynq dequeues one task at a time per server, asking each
// queue in turn with one round trip: with all queues on one server, a send cost about two
// dequeue round trips (the empty replies queue asked first six times in ten). A pool asks its
// first queue first, so a busy queue costs one round trip per task; and replies never wait for a
// worker behind a campaign (whose sends may all be waiting in place for the number's rate).
var pools = []pool{
	// An idle pool waits on Redis for its first queue (IdleWait); it looks again every ½–1½
	// check only when it cannot wait (a client or Redis without the blocking command), or after
	// a wait that ended with nothing pending. Replies then look often; a campaign's templates, a
	// few milliseconds late, do not matter.
	{queues: []string{QueueReplies}, check: 5 * time.Millisecond, loops: 4},
	{queues: []string{QueueTemplates, QueueDefault}, check: 20 * time.Millisecond, loops: 4},
}

// handOffsHeld bounds the tasks of one queue held for the loops (handOffs): a task is handed out
// as a handler finishes and taken by the next dequeue, within a millisecond on a busy pool, so a
// few are enough; a finished task finding no room leaves the next to asynq's dequeue.
const handOffsHeld = 4

type pool struct {
	queues []string
	check  time.Duration
	// loops is the pool's dequeue loops: asynq servers sharing its workers. A loop takes one task
	// per round trip, one after the other, which bounded a busy pool's rate (bench/outbound.sh on
	// two cores: 1,639–1,691 sends/s with one loop, 1,738–1,850 with two; four against two in one
	// run: 1,795–2,164 against 1,617–1,990). Each loop idle costs a wait on Redis a second.
	loops int
}

// loopWorkers splits a pool's workers between its loops: they add up to workers, and no loop has
// none (fewer loops when there are fewer workers).
func loopWorkers(workers, loops int) []int {
	loops = max(1, min(loops, workers))
	out := make([]int, loops)
	for i := range out {
		out[i] = workers / loops
		if i < workers%loops {
			out[i]++
		}
	}
	return out
}

// Server is the process's asynq workers (pool.loops asynq servers per pool, sharing one handler mux): Start
// after wiring; at shutdown Stop (no new tasks), Wait for the active ones while HTTP drains, then
// Shutdown.
type Server struct {
	srvs   []*asynq.Server
	waits  []*IdleWait // one per server: closed before it stops, so an idle one stops at once
	hand   *handOffs   // tasks handlers' scripts took for the servers' loops (nil: none)
	mux    *asynq.ServeMux
	logger *slog.Logger
	active inflight
}

// Options tune the server.
type Options struct {
	// Concurrency is the workers of each pool: replies and templates each have this many, shared
	// between the pool's dequeue loops.
	Concurrency int
	// ShutdownTimeout is how long Shutdown waits for active tasks before handing them back. The
	// gateway waits for them itself first (Wait, bounded by what is left of its grace), so this is
	// only the short window of the hand-back; asynq fixes it at construction.
	ShutdownTimeout time.Duration
	RetryDelay      asynq.RetryDelayFunc
	IsFailure       func(error) bool
}

// NewServer builds the asynq servers sharing the process's Redis client.
func NewServer(client redis.UniversalClient, logger *slog.Logger, o Options) *Server {
	logger = logger.With("component", "asynq")
	backoff := o.RetryDelay
	if backoff == nil {
		backoff = asynq.DefaultRetryDelayFunc
	}
	isFailure := o.IsFailure
	if isFailure == nil {
		isFailure = func(error) bool { return true }
	}
	cfg := asynq.Config{
		Concurrency:     o.Concurrency,
		ShutdownTimeout: o.ShutdownTimeout,
		Logger:          newSlogAdapter(logger),
		LogLevel:        asynq.InfoLevel,
		// A pool's queues are asked in their order: its first queue is its work, the others
		// are asked only when it is empty.
		StrictPriority: true,
		// Deferred and retried tasks become due this often: a rate-limit deferral is short.
		DelayedTaskCheckInterval: time.Second,
		RetryDelayFunc: func(n int, err error, task *asynq.Task) time.Duration {
			var d *DelayError
			switch {
			case errors.As(err, &d) && !d.Counted:
				return d.Delay // our own limiter is asked again then; early is harmless
			case errors.As(err, &d) && d.Delay > 0:
				// asynq schedules in whole seconds, which could retry up to a second before the
				// provider asked; the extra second keeps the retry at or after it.
				return d.Delay + time.Second
			}
			return backoff(n, err, task)
		},
		IsFailure: func(err error) bool {
			var d *DelayError
			if errors.As(err, &d) && !d.Counted {
				return false
			}
			return isFailure(err)
		},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, task *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			retried, _ := asynq.GetRetryCount(ctx)
			var d *DelayError
			if errors.As(err, &d) && !d.Counted {
				logger.Debug("task deferred", "type", task.Type(), "task_id", id, "delay", d.Delay, "reason", d.Err)
				return
			}
			logger.Warn("task failed", "type", task.Type(), "task_id", id, "retried", retried, "err", err)
		}),
	}
	s := &Server{mux: asynq.NewServeMux(), logger: logger}
	// A handler's script may complete its task itself (Completion) where it may touch the queue's
	// keys and the servers' client answers asynq's Done then (waitClient).
	completes := SingleNode(client)
	hand := newHandOffs(client, logger, handOffsHeld)
	for _, p := range pools {
		for _, workers := range loopWorkers(cfg.Concurrency, p.loops) {
			c := cfg
			c.Concurrency = workers
			// With no task pending, the loop waits on Redis for one, and asks again after ½–1½
			// of this once the wait ends empty (or at once, polling, where it cannot wait).
			c.TaskCheckInterval = p.check
			c.Queues = map[string]int{}
			for i, q := range p.queues {
				c.Queues[q] = len(p.queues) - i // strict priority: the first queue first
			}
			w := NewIdleWait(client, p.queues)
			w.hand = hand
			_, intercepts := w.Client().(waitClient)
			completes = completes && intercepts
			s.waits = append(s.waits, w)
			s.srvs = append(s.srvs, asynq.NewServerFromRedisClient(w.Client(), c))
		}
	}
	if completes {
		s.hand = hand
	}
	s.mux.Use(func(h asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			s.active.begin()
			defer s.active.end()
			if s.hand != nil {
				ctx = context.WithValue(ctx, completionKey{}, s.hand)
			}
			return h.ProcessTask(ctx, t)
		})
	})
	return s
}

// Backoff is an exponential retry delay with jitter: the n-th retry (n from 0) waits a random
// time in [½, 1]·base·2ⁿ, at most max. asynq's default (n⁴+15 s and more) is meant for batch jobs;
// a customer waiting on a reply wants the first retries within seconds.
func Backoff(base, max time.Duration) asynq.RetryDelayFunc {
	return func(n int, _ error, _ *asynq.Task) time.Duration {
		d := max
		if n < 40 && base<<n > 0 && base<<n < max {
			d = base << n
		}
		return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
}

// DelayError asks for a task to run again after Delay. A deferral (Counted false: a rate limit of
// ours, not a fault) does not use up an attempt; a counted one is a failed attempt whose delay the
// failure itself dictates (a provider's Retry-After), or the usual backoff when Delay is 0.
type DelayError struct {
	Err     error
	Delay   time.Duration
	Counted bool
}

func (e *DelayError) Error() string { return fmt.Sprintf("%v (again in %v)", e.Err, e.Delay) }
func (e *DelayError) Unwrap() error { return e.Err }

// Defer runs the task again after d without counting a failed attempt.
func Defer(d time.Duration, reason error) error { return &DelayError{Err: reason, Delay: d} }

// RetryAfter is a failed attempt to be retried after d (0: the usual backoff).
func RetryAfter(err error, d time.Duration) error {
	return &DelayError{Err: err, Delay: d, Counted: true}
}

// Handle registers the handler of a task type.
func (s *Server) Handle(taskType string, h asynq.Handler) { s.mux.Handle(taskType, h) }

// Start begins processing (never Run: the gateway owns signal handling).
func (s *Server) Start() error {
	for i, srv := range s.srvs {
		if err := srv.Start(s.mux); err != nil {
			for _, w := range s.waits {
				w.Close()
			}
			for _, started := range s.srvs[:i] {
				started.Shutdown()
			}
			return fmt.Errorf("start asynq: %w", err)
		}
	}
	s.logger.Info("workers started")
	return nil
}

// Stop takes no new tasks; the active ones go on. A no-op unless started.
func (s *Server) Stop() {
	for i, srv := range s.srvs {
		s.waits[i].Close()
		srv.Stop()
	}
	// No loop dequeues any more: the tasks handed out for them go back to their queues.
	if s.hand != nil {
		s.hand.close()
	}
}

// Wait returns true once no task is active, or false when ctx ends first.
func (s *Server) Wait(ctx context.Context) bool { return s.active.wait(ctx) }

// Active is the number of tasks being processed.
func (s *Server) Active() int { return s.active.count() }

// Shutdown lets in-flight tasks finish within the timeout and hands the rest back to the queue.
func (s *Server) Shutdown() {
	var wg sync.WaitGroup
	for i, srv := range s.srvs {
		wg.Add(1)
		go func() { defer wg.Done(); s.waits[i].Close(); srv.Shutdown() }()
	}
	wg.Wait()
	if s.hand != nil {
		s.hand.close()
	}
	s.logger.Info("workers stopped")
}

// slogAdapter lets asynq log through slog. Its warnings and errors are paced: while Redis is away,
// each of asynq's loops (forwarding scheduled tasks, heartbeats, the cancelation subscription) fails
// every second or so with the same line, so each line is written once a minute with the count held
// back.
type slogAdapter struct {
	l        *slog.Logger
	throttle *logging.Throttle
}

func newSlogAdapter(l *slog.Logger) slogAdapter {
	return slogAdapter{l: l, throttle: logging.NewThrottle(time.Minute, 64)}
}

func (a slogAdapter) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.paced(slog.LevelWarn, fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.paced(slog.LevelError, fmt.Sprint(args...)) }

func (a slogAdapter) paced(level slog.Level, msg string) {
	switch ok, held := a.throttle.Allow(lineKind(msg)); {
	case ok && held > 0:
		a.l.Log(context.Background(), level, msg, "repeated", held)
	case ok:
		a.l.Log(context.Background(), level, msg)
	}
}

// lineKind is a line without its numbers (addresses, ports, counts, ids), which vary within one kind.
func lineKind(msg string) string {
	const max = 120
	b := make([]byte, 0, min(len(msg), max))
	for i := 0; i < len(msg) && len(b) < max; i++ {
		if c := msg[i]; c < '0' || c > '9' {
			b = append(b, c)
		}
	}
	return string(b)
}

// Fatal follows asynq's contract: the process cannot go on.
func (a slogAdapter) Fatal(args ...any) {
	a.l.Error("fatal: " + fmt.Sprint(args...))
	os.Exit(1)
}

// inflight counts active tasks and lets shutdown wait for none, with a deadline.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
}

func (f *inflight) begin() {
	f.mu.Lock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) end() {
	f.mu.Lock()
	f.n--
	if f.n == 0 {
		close(f.idle)
	}
	f.mu.Unlock()
}

func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *inflight) wait(ctx context.Context) bool {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return true
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}

// NewSlogAdapter lets another asynq server (the integrations' own) log through slog, paced alike.
func NewSlogAdapter(l *slog.Logger) asynq.Logger { return newSlogAdapter(l) }
