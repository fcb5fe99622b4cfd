package presence

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for a reaper built with a non-positive interval or grace (a ticker panics on zero, and a
// zero grace would log out everyone between two heartbeats).
const (
	DefaultReaperInterval  = 5 * time.Second
	DefaultDisconnectGrace = 60 * time.Second
)

// Reaper logs out agents whose client has been silent longer than the grace (no cards for ghosts).
// Several replicas may run one: the script re-checks the heartbeat, so an agent is logged out once.
type Reaper struct {
	store     *Store
	interval  time.Duration
	grace     time.Duration
	stop      chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
	wg        sync.WaitGroup
}

// NewReaper builds a reaper that sweeps every interval.
func NewReaper(s *Store, interval, grace time.Duration) *Reaper {
	if interval <= 0 {
		interval = DefaultReaperInterval
	}
	if grace <= 0 {
		grace = DefaultDisconnectGrace
	}
	return &Reaper{store: s, interval: interval, grace: grace, stop: make(chan struct{})}
}

// Start begins the sweeps; a second Start does nothing.
func (r *Reaper) Start() error {
	r.startOnce.Do(func() {
		r.wg.Add(1)
		go r.loop()
	})
	return nil
}

func (r *Reaper) loop() {
	defer r.wg.Done()
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), r.interval)
			if _, err := r.Sweep(ctx); err != nil {
				r.store.logger.Warn("presence reaper sweep failed", "err", err)
			}
			cancel()
		}
	}
}

// Shutdown stops the sweeps and waits for the current one; it may be called more than once.
func (r *Reaper) Shutdown() {
	r.stopOnce.Do(func() { close(r.stop) })
	r.wg.Wait()
}

// Sweep logs out every agent silent for longer than the grace and returns how many it logged out.
func (r *Reaper) Sweep(ctx context.Context) (int, error) {
	s := r.store
	cutoff := s.clock.Now().Add(-r.grace).UnixMilli()
	stale, err := s.client.ZRangeByScore(ctx, s.keys.seen(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(cutoff, 10)}).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, agent := range stale {
		t, ok := s.agents[agent]
		if !ok {
			// Removed from the configuration since it logged in: nothing of it to log out.
			s.client.ZRem(ctx, s.keys.seen(), agent)
			continue
		}
		// The history's reason says why the agent left, as a pause's says why it paused.
		res, err := s.run(ctx, agent, t, "", "logout_all", ReasonDisconnected, BySystem, CauseDisconnected, false, strconv.FormatInt(cutoff, 10))
		if err != nil {
			return n, err
		}
		if len(res.Changes) > 0 {
			n++
			s.logger.Info("agent logged out: event stream gone longer than the grace", "agent", agent, "grace", r.grace)
		}
	}
	return n, nil
}
