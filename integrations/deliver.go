package integrations

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/chatgate/chatgate/internal/tasks"
)

// chainTimeout bounds one run of a chain's task; a longer backlog goes on in a new run.
const chainTimeout = 5 * time.Minute

// chainBatch is how many heads of a chain's list one script call reads (and the next records).
const chainBatch = 16

// retryError asks for the chain's next attempt after delay (0: the backoff); counted attempts only.
type retryError struct {
	err   error
	delay time.Duration
	asked bool // the delay is the receiver's Retry-After
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// errYield ends a run that used its time; the chain goes on at once in a new run (not a failure).
var errYield = errors.New("integrations: chain ran its time; it goes on in a new run")

// startWorkers runs the subscription's own asynq server on its own queue.
func (s *Service) startWorkers(sub *subscription) error {
	logger := s.logger.With("subscription", sub.ID)
	// Idle, the workers wait on Redis for a task rather than poll it every 20 ms.
	idle := tasks.NewIdleWait(s.client, []string{QueuePrefix + sub.ID})
	srv := asynq.NewServerFromRedisClient(idle.Client(), asynq.Config{
		Concurrency:              sub.Workers,
		Queues:                   map[string]int{QueuePrefix + sub.ID: 1},
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: time.Second,
		ShutdownTimeout:          sub.Timeout + time.Second,
		LogLevel:                 asynq.WarnLevel,
		Logger:                   tasks.NewSlogAdapter(logger),
		RetryDelayFunc: func(n int, err error, _ *asynq.Task) time.Duration {
			if errors.Is(err, errYield) {
				return 0
			}
			var r *retryError
			switch {
			case errors.As(err, &r) && r.delay > 0 && r.asked:
				// asynq schedules in whole seconds, which could retry up to a second before the
				// receiver asked; the extra second keeps the retry at or after it.
				return r.delay + time.Second
			case errors.As(err, &r) && r.delay > 0:
				return r.delay
			}
			return s.backoff(n)
		},
		IsFailure: func(err error) bool { return !errors.Is(err, errYield) },
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, _ *asynq.Task, err error) {
			if !errors.Is(err, errYield) {
				logger.Debug("delivery failed; retried later", "err", err)
			}
		}),
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(TaskType, s.processChain)
	if err := srv.Start(mux); err != nil {
		idle.Close()
		return fmt.Errorf("integrations %s workers: %w", sub.ID, err)
	}
	sub.server, sub.idle = srv, idle
	return nil
}

// backoff is the n-th retry's delay: RetryBase·2ⁿ, at most RetryMax, jittered in [½, 1].
func (s *Service) backoff(n int) time.Duration {
	d := s.opts.RetryMax
	if n < 40 && s.opts.RetryBase<<n > 0 && s.opts.RetryBase<<n < d {
		d = s.opts.RetryBase << n
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// processChain delivers a chain's list head by head until it is empty, a delivery fails (retried
// by asynq after the backoff, with the same head), or the run has used its time. It reads the heads
// chainBatch at a time and records their ends in one script call per batch (or at a failure): a
// conversation's events still go one after the other, each only after the one before was
// acknowledged, at one round trip to Redis per batch rather than per event. A process that dies
// mid-batch sends the events it had not recorded again (at least once, same webhook-id).
func (s *Service) processChain(ctx context.Context, t *asynq.Task) error {
	var p chainPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	sub := s.subs[p.Sub]
	taskID, _ := asynq.GetTaskID(ctx)
	if sub == nil {
		return fmt.Errorf("%w: subscription %q is not configured here", asynq.SkipRetry, p.Sub)
	}
	ca := chainArgs{keys: s.keys, sub: p.Sub, key: p.Key, taskID: taskID}
	hr, err := headScript.Run(ctx, s.client, ca)
	if err != nil {
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	started := time.Now()
	var acked []string // delivered, not yet recorded
	// record ends acked (and dead, if any): the next heads, or none when the run stops here
	record := func(dead *doneArgs, next int) (headReply, error) {
		a := doneArgs{chainArgs: ca, elements: acked, now: s.clock.Now().UnixMilli(), next: next}
		if dead != nil {
			a.elements = append(a.elements, dead.elements...)
			a.dead, a.eventID, a.info = true, dead.eventID, dead.info
		}
		acked = acked[:0]
		if len(a.elements) == 0 {
			return headReply{code: "ok"}, nil
		}
		return doneScript.Run(context.WithoutCancel(ctx), s.client, a)
	}
	// flush records what was acknowledged before the run stops with err.
	flush := func(err error) error {
		if _, ferr := record(nil, 0); ferr != nil {
			return ferr
		}
		return err
	}
batches:
	for hr.code == "ok" && len(hr.heads) > 0 {
		for _, h := range hr.heads {
			if time.Since(started) > chainTimeout {
				return flush(errYield)
			}
			now := s.clock.Now()
			born := time.UnixMilli(max(h.at, h.again))
			age := now.Sub(born)
			var sendErr error
			if len(h.body) == 0 {
				sendErr = errors.New("the event expired before it could be delivered")
			} else if age <= sub.MaxAge {
				sendErr = s.send(ctx, sub, h.eventID, h.body)
			} else {
				sendErr = fmt.Errorf("not acknowledged within max_age (%v)", sub.MaxAge)
			}
			var gone *goneError
			switch {
			case sendErr == nil:
				s.health(ctx, sub, nil)
				s.metrics.delivered.WithLabelValues(sub.ID, "ok").Inc()
				retried = 0
				acked = append(acked, h.element)
			case errors.As(sendErr, &gone):
				s.metrics.delivered.WithLabelValues(sub.ID, "gone").Inc()
				return s.disable(context.WithoutCancel(ctx), sub, sendErr) // drops the list, acknowledged or not
			case age > sub.MaxAge || len(h.body) == 0:
				s.metrics.delivered.WithLabelValues(sub.ID, "dead").Inc()
				info := mustJSON(map[string]any{"key": p.Key, "type": h.typ, "error": shortErr(sendErr), "attempts": retried + 1})
				s.logger.Warn("event dead-lettered", "subscription", sub.ID, "webhook_id", h.eventID, "type", h.typ, "err", sendErr)
				retried = 0
				if hr, err = record(&doneArgs{elements: []string{h.element}, eventID: h.eventID, info: info}, chainBatch); err != nil {
					return err
				}
				continue batches // the heads after it are read again
			default:
				s.health(ctx, sub, sendErr)
				s.metrics.delivered.WithLabelValues(sub.ID, "failed").Inc()
				var r *retryError
				if errors.As(sendErr, &r) && r.delay > 0 {
					// a Retry-After past max_age is cut to it: the event is dead-lettered then
					if left := born.Add(sub.MaxAge).Sub(now); left < r.delay {
						r.delay, r.asked = max(left, time.Second), false
					}
					return flush(sendErr)
				}
				// the backoff never waits past max_age either
				if left := born.Add(sub.MaxAge).Sub(now); left < s.backoff(retried) {
					return flush(&retryError{err: sendErr, delay: max(left, time.Second)})
				}
				return flush(sendErr)
			}
		}
		if hr, err = record(nil, chainBatch); err != nil {
			return err
		}
	}
	return nil
}

// goneError is a 410 Gone: the receiver asks for no more events.
type goneError struct{ status int }

func (e *goneError) Error() string { return "the receiver answered 410 Gone" }

// send POSTs one event, signed, and reads the answer: nil for a 2xx.
func (s *Service) send(ctx context.Context, sub *subscription, id string, body []byte) error {
	ts := s.clock.Now()
	sig, err := sub.signer.Sign(id, ts, body)
	if err != nil {
		return err
	}
	// sub.client's Timeout bounds the attempt, the answer's body included
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	// canonical names, as Header.Set would write them
	req.Header = http.Header{"Content-Type": {"application/json"}, "User-Agent": {"chatgate-webhooks/1"},
		"Webhook-Id": {id}, "Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)}, "Webhook-Signature": {sig}}
	resp, err := sub.client.Do(req)
	if err != nil {
		return &retryError{err: fmt.Errorf("POST failed: %w", err)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusGone:
		return &goneError{status: resp.StatusCode}
	}
	d := retryAfter(resp.Header.Get("Retry-After"), ts)
	return &retryError{err: fmt.Errorf("the receiver answered %d", resp.StatusCode), delay: d, asked: d > 0}
}

// retryAfter reads a Retry-After header (seconds or an HTTP date); 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// health records an attempt's outcome; a change of health is logged once (whichever process saw it).
// Successes are recorded at most once a second per subscription and process (a success after a
// failure at once): the common case costs no round trip per event.
func (s *Service) health(ctx context.Context, sub *subscription, failure error) {
	now := time.Now().UnixNano()
	if failure == nil {
		if last := sub.okAt.Load(); last != 0 && now-last < int64(time.Second) {
			return
		}
		sub.okAt.Store(now)
	} else {
		sub.okAt.Store(0)
	}
	msg := ""
	if failure != nil {
		msg = shortErr(failure)
	}
	changed, err := healthScript.Run(context.WithoutCancel(ctx), s.client, healthArgs{key: s.keys.health(sub.ID), ok: failure == nil,
		now: s.clock.Now().UnixMilli(), err: msg, threshold: s.opts.UnhealthyAfter})
	if err != nil {
		s.logger.Warn("could not record a subscription's health", "subscription", sub.ID, "err", err)
		return
	}
	switch changed {
	case "unhealthy":
		s.logger.Warn("subscription unhealthy: its deliveries keep failing", "subscription", sub.ID, "failures", s.opts.UnhealthyAfter, "err", msg)
	case "healthy":
		s.logger.Info("subscription healthy again", "subscription", sub.ID)
	}
}

// disable marks the subscription disabled after a 410 and drops what it was still owed.
func (s *Service) disable(ctx context.Context, sub *subscription, reason error) error {
	n, err := dropScript.Run(ctx, s.client, dropArgs{keys: s.keys, sub: sub.ID, mode: "disabled", reason: shortErr(reason), now: s.clock.Now().UnixMilli()})
	if err != nil {
		return err
	}
	s.logger.Warn("subscription disabled: the receiver answered 410 Gone; enable it again from the operations API", "subscription", sub.ID, "dropped", n)
	return nil
}
