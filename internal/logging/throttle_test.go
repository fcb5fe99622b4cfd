package logging

import (
	"fmt"
	"testing"
	"time"
)

func TestThrottleLetsEachKeyThroughOncePerInterval(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	th := NewThrottle(time.Minute, 4)
	th.now = func() time.Time { return now }
	if ok, _ := th.Allow("a"); !ok {
		t.Fatal("the first line of a key is held back")
	}
	for i := 0; i < 100; i++ {
		if ok, _ := th.Allow("a"); ok {
			t.Fatalf("repeat %d within the interval let through", i)
		}
	}
	if ok, _ := th.Allow("b"); !ok {
		t.Fatal("another key is held back by the first")
	}
	now = now.Add(time.Minute)
	if ok, held := th.Allow("a"); !ok || held != 100 {
		t.Fatalf("after the interval: ok %v held %d, want a line saying 100 were held back", ok, held)
	}
	// Made-up keys beyond the bound share one: one line for all of them per interval.
	through := 0
	for i := 0; i < 1000; i++ {
		if ok, _ := th.Allow(fmt.Sprintf("origin-%d", i)); ok {
			through++
		}
	}
	if through > 4 {
		t.Fatalf("%d lines for 1000 distinct keys within one interval; want at most the bound", through)
	}
}
