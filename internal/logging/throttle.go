package logging

import (
	"sync"
	"time"
)

// Throttle lets a repeated log line through once per interval for each key, and says how many it
// held back meanwhile: an outage or an attack is seen when it starts and then at a steady pace, not
// at the rate of the events. Keys are bounded: past maxKeys distinct keys in one interval, the
// newcomers share one key, so varying the key (an attacker's made-up origins) cannot flood either.
type Throttle struct {
	interval time.Duration
	maxKeys  int
	now      func() time.Time
	mu       sync.Mutex
	keys     map[string]*throttled
}

type throttled struct {
	last time.Time
	held int
}

// overflowKey is the key shared by keys beyond maxKeys.
const overflowKey = "\x00overflow"

// NewThrottle lets each key through once per interval, tracking at most maxKeys keys.
func NewThrottle(interval time.Duration, maxKeys int) *Throttle {
	return &Throttle{interval: interval, maxKeys: max(maxKeys, 1), now: time.Now, keys: map[string]*throttled{}}
}

// Allow reports whether a line for key may be written now and, if so, how many lines for it were
// held back since the last one written.
func (t *Throttle) Allow(key string) (ok bool, held int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e := t.keys[key]
	if e == nil {
		if len(t.keys) >= t.maxKeys {
			t.forget(now)
		}
		if len(t.keys) >= t.maxKeys {
			key = overflowKey
			e = t.keys[key]
		}
		if e == nil {
			t.keys[key] = &throttled{last: now}
			return true, 0
		}
	}
	if now.Sub(e.last) < t.interval {
		e.held++
		return false, 0
	}
	held, e.held, e.last = e.held, 0, now
	return true, held
}

// forget drops the keys quiet for an interval whose held-back count is nothing.
func (t *Throttle) forget(now time.Time) {
	for k, e := range t.keys {
		if now.Sub(e.last) >= t.interval && e.held == 0 {
			delete(t.keys, k)
		}
	}
}
