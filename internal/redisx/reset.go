package redisx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reasons a reset is detected.
const (
	ResetMarkerMissing = "marker_missing" // Redis came back empty (restarted without persistence, flushed)
	ResetMarkerChanged = "marker_changed" // another replica saw it empty first, or an older snapshot was restored
	ResetRunIDChanged  = "run_id_changed" // another server answers: a restart, a failover, a restore
)

// Rebuild is one step of what is derived from configuration and presence, rewritten after a reset.
// Every step is idempotent: all replicas run it, possibly at the same moment.
type Rebuild struct {
	Name string
	Run  func(ctx context.Context) error
}

// ResetStatus is what readiness reports about resets.
type ResetStatus struct {
	Resets     int       // detected since start
	Reason     string    // of the last one
	ResetAt    time.Time // when the last one was detected
	RebuiltAt  time.Time // when its rebuild finished (zero while rebuilding)
	Rebuilding bool
}

// ResetWatcher notices that Redis lost or replaced its state and rebuilds what the gateway wrote
// there from its configuration (agents' capacities, candidate sets from presence, …), which would
// otherwise be written only at start. Two signs, checked every interval:
//   - a marker key: at start a random value is stored once for all replicas (SET NX); a missing
//     marker means Redis came back empty, a different value that some replica (or a restored
//     snapshot) set another;
//   - the server's run_id (INFO server, on the node that holds the marker): it changes when
//     another process answers, which also covers a restart with persistence and a failover.
//
// A rebuild that fails is retried at the next check.
type ResetWatcher struct {
	client   redis.UniversalClient
	marker   string
	logger   *slog.Logger
	interval time.Duration
	steps    []Rebuild

	mu      sync.Mutex
	known   bool // a baseline was taken
	epoch   string
	runID   string
	pending string // reason of a reset whose rebuild has not succeeded yet
	status  ResetStatus

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewResetWatcher watches marker (a key of the tenant) every interval and runs steps after a reset.
func NewResetWatcher(client redis.UniversalClient, marker string, logger *slog.Logger, interval time.Duration, steps ...Rebuild) *ResetWatcher {
	return &ResetWatcher{client: client, marker: marker, logger: logger, interval: interval, steps: steps, stop: make(chan struct{})}
}

// Start takes the baseline (when Redis answers) and checks every interval until Shutdown.
func (w *ResetWatcher) Start() error {
	w.check()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.check()
			}
		}
	}()
	return nil
}

// Shutdown stops the checks.
func (w *ResetWatcher) Shutdown() {
	close(w.stop)
	w.wg.Wait()
}

// Status reports the resets seen so far.
func (w *ResetWatcher) Status() ResetStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

func (w *ResetWatcher) check() {
	ctx, cancel := context.WithTimeout(context.Background(), max(w.interval, 2*time.Second))
	defer cancel()
	epoch, missing, err := w.readMarker(ctx)
	if err != nil {
		return // unreachable: Health reports it; the next check after it returns decides
	}
	runID := w.serverRunID(ctx)

	w.mu.Lock()
	if !w.known {
		w.known, w.epoch, w.runID = true, epoch, runID
		w.mu.Unlock()
		return
	}
	reason := w.pending
	switch {
	case epoch != w.epoch && missing:
		reason = ResetMarkerMissing
	case epoch != w.epoch:
		reason = ResetMarkerChanged
	case runID != "" && w.runID != "" && runID != w.runID:
		reason = ResetRunIDChanged
	}
	if reason == "" {
		if w.runID == "" {
			w.runID = runID // INFO did not answer before: from now on it counts
		}
		w.mu.Unlock()
		return
	}
	first := w.pending == ""
	w.epoch, w.runID, w.pending = epoch, runID, reason
	if first {
		w.status = ResetStatus{Resets: w.status.Resets + 1, Reason: reason, ResetAt: time.Now().UTC(), Rebuilding: true}
	}
	w.mu.Unlock()

	if first {
		w.logger.Warn("redis lost or replaced its state; rebuilding what comes from configuration and presence", "reason", reason)
	}
	start := time.Now()
	for _, s := range w.steps {
		if err := s.Run(ctx); err != nil {
			w.logger.Warn("rebuild after redis reset failed; retrying", "step", s.Name, "err", err)
			return
		}
	}
	w.mu.Lock()
	w.pending = ""
	w.status.Rebuilding, w.status.RebuiltAt = false, time.Now().UTC()
	w.mu.Unlock()
	w.logger.Info("rebuilt after redis reset", "reason", reason, "took", time.Since(start).Round(time.Millisecond))
}

// readMarker returns the marker's value, storing a new one when it is missing (one replica wins).
func (w *ResetWatcher) readMarker(ctx context.Context) (value string, missing bool, err error) {
	v, err := w.client.Get(ctx, w.marker).Result()
	if err == nil {
		return v, false, nil
	}
	if !errors.Is(err, redis.Nil) {
		return "", false, err
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	if err := w.client.SetNX(ctx, w.marker, hex.EncodeToString(b), 0).Err(); err != nil {
		return "", false, err
	}
	v, err = w.client.Get(ctx, w.marker).Result()
	return v, true, err
}

// serverRunID is the run_id of the server holding the marker, or "" when it cannot be read (an
// embedded store without INFO): then the marker alone decides.
func (w *ResetWatcher) serverRunID(ctx context.Context) string {
	var info string
	var err error
	switch c := w.client.(type) {
	case *redis.ClusterClient:
		var node *redis.Client
		if node, err = c.MasterForKey(ctx, w.marker); err == nil {
			info, err = node.Info(ctx, "server").Result()
		}
	default:
		info, err = c.Info(ctx, "server").Result()
	}
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v
		}
	}
	return ""
}
