package redisx

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// pingTimeout bounds one ping: long enough for a busy machine, short enough that an outage shows
// in readiness within about a second and a half.
const pingTimeout = time.Second

// ErrUnreachable is what readiness reports while pings fail.
var ErrUnreachable = errors.New("redis is unreachable")

// Health pings Redis in the background so readiness answers without a round trip and an outage is
// logged once when it starts and once when it ends, not once per request.
type Health struct {
	client   redis.UniversalClient
	logger   *slog.Logger
	interval time.Duration
	// remind is how often a continuing outage is logged again after its first line.
	remind time.Duration
	up     atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
	// Touched by the ping loop only.
	downSince, reported time.Time
}

// OutageReminder is how often a continuing outage is logged again.
const OutageReminder = time.Minute

// NewHealth builds a watcher; interval bounds how late an outage is noticed.
func NewHealth(client redis.UniversalClient, logger *slog.Logger, interval time.Duration) *Health {
	h := &Health{client: client, logger: logger, interval: interval, remind: OutageReminder, stop: make(chan struct{})}
	h.up.Store(true)
	return h
}

// Start pings once synchronously, then every interval until Shutdown.
func (h *Health) Start() {
	h.check()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.check()
			}
		}
	}()
}

// Shutdown stops the pings.
func (h *Health) Shutdown() {
	close(h.stop)
	h.wg.Wait()
}

func (h *Health) check() {
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	// A ping that does not answer within the interval counts as a failure, whatever the client's own
	// dial retries and back-offs do meanwhile.
	answer := make(chan error, 1)
	go func() { answer <- h.client.Ping(ctx).Err() }()
	var err error
	select {
	case err = <-answer:
	case <-ctx.Done():
		err = ctx.Err()
	}
	wasUp := h.up.Swap(err == nil)
	now := time.Now()
	// The error goes in as text: these lines are paced here, not by the outage pacing of the log.
	switch {
	case err != nil && wasUp:
		h.downSince, h.reported = now, now
		h.logger.Error("redis became unreachable; webhooks and toggles answer 503 until it returns", "err", err.Error())
	case err != nil && now.Sub(h.reported) >= h.remind:
		h.reported = now
		h.logger.Error("redis is still unreachable", "down_for", now.Sub(h.downSince).Round(time.Second).String(), "err", err.Error())
	case err == nil && !wasUp:
		h.logger.Info("redis is reachable again", "down_for", now.Sub(h.downSince).Round(time.Millisecond).String())
	}
}

// Err is nil while the last ping succeeded.
func (h *Health) Err() error {
	if h.up.Load() {
		return nil
	}
	return ErrUnreachable
}
