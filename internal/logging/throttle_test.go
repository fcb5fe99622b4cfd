package logging

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

func TestPaceOutagesWritesEachOutageLineOncePerInterval(t *testing.T) {
	var out strings.Builder
	outage := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	logger := slog.New(PaceOutages(slog.NewJSONHandler(&out, nil), 150*time.Millisecond, func(err error) bool { return errors.Is(err, outage) }))
	sweeps, reaper := logger.With("component", "routing"), logger.With("component", "presence")
	for i := 0; i < 50; i++ {
		sweeps.Warn("offer sweep failed", "err", fmt.Errorf("sweep: %w", outage))
		reaper.Warn("reaper sweep failed", "err", outage)
		sweeps.Warn("conversation not found", "err", errors.New("not an outage"))
		sweeps.Info("request", "err", outage) // below warning: traffic, not paced
	}
	count := func(s string) int { return strings.Count(out.String(), s) }
	if count(`"offer sweep failed"`) != 1 || count(`"reaper sweep failed"`) != 1 {
		t.Fatalf("50 failures of each loop wrote %d and %d lines, want one each:\n%s", count(`"offer sweep failed"`), count(`"reaper sweep failed"`), out.String())
	}
	if count(`"conversation not found"`) != 50 || count(`"msg":"request"`) != 50 {
		t.Fatalf("lines not caused by an outage were held back:\n%s", out.String())
	}
	time.Sleep(200 * time.Millisecond) // the pacing interval under test passes
	sweeps.Warn("offer sweep failed", "err", outage)
	if !strings.Contains(out.String(), `"msg":"offer sweep failed","component":"routing","err":"dial tcp 127.0.0.1:1: connect: connection refused","repeated":49`) {
		t.Fatalf("the line after the interval does not say how many were held back:\n%s", out.String())
	}
}
