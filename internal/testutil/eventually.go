// Package testutil is what the tests of every package share and production code never imports:
// waiting on something observable instead of sleeping, a log sink safe for concurrent writers, and
// the fixtures kept in the repository (Meta's OpenAPI description among them).
package testutil

import (
	"testing"
	"time"
)

// Polling starts fast, for conditions that hold within milliseconds, and slows down so that a long
// wait does not spin the two cores the suite shares with Redis and the gateway.
const (
	firstPoll = 5 * time.Millisecond
	lastPoll  = 100 * time.Millisecond
)

// Eventually fails the test unless cond holds within the given time; what names the awaited
// condition in the failure ("a card offered to ana"). cond runs on the test's goroutine.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(within, cond) {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// EventuallyNoError fails the test unless try returns nil within the given time; the failure names
// what was awaited and carries try's last error, which should say what was seen instead.
func EventuallyNoError(t testing.TB, within time.Duration, what string, try func() error) {
	t.Helper()
	var last error
	if !Within(within, func() bool { last = try(); return last == nil }) {
		t.Fatalf("timed out after %v waiting for %s: %v", within, what, last)
	}
}

// Within polls cond until it holds or the time is up, and says whether it held. It is for callers
// that report a failure themselves (with logs, say) or that may not fail the test, such as a
// goroutine other than the test's.
func Within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	pause := firstPoll
	for {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		// A poll interval, not a synchronization: cond is what the caller waits on.
		time.Sleep(min(pause, left))
		pause = min(2*pause, lastPoll)
	}
}
