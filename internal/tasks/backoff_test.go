package tasks

import (
	"testing"
	"time"
)

func TestBackoffDoublesWithinJitterAndStopsAtTheMaximum(t *testing.T) {
	delay := Backoff(time.Second, 30*time.Second)
	for _, tc := range []struct {
		retry    int
		min, max time.Duration
	}{
		{0, 500 * time.Millisecond, time.Second},
		{1, time.Second, 2 * time.Second},
		{3, 4 * time.Second, 8 * time.Second},
		{5, 15 * time.Second, 30 * time.Second},  // 32 s capped at 30 s
		{64, 15 * time.Second, 30 * time.Second}, // no overflow on a huge retry count
	} {
		for range 200 {
			if got := delay(tc.retry, nil, nil); got < tc.min || got > tc.max {
				t.Fatalf("retry %d: got %v, want within [%v, %v]", tc.retry, got, tc.min, tc.max)
			}
		}
	}
}
