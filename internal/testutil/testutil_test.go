package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// failures records what a helper reports instead of failing the real test; Fatalf ends the
// helper's goroutine as the testing package does.
type failures struct {
	testing.TB
	msg string
}

func (f *failures) Helper() {}

func (f *failures) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func (f *failures) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// report runs fn against a recording TB and returns what it reported ("" when it passed).
func report(t *testing.T, fn func(testing.TB)) (msg string) {
	f := &failures{TB: t}
	defer func() {
		if r := recover(); r != nil && r != f {
			panic(r)
		}
		msg = f.msg
	}()
	fn(f)
	return ""
}

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	var polls atomic.Int32
	start := time.Now()
	Eventually(t, 5*time.Second, "the third poll", func() bool { return polls.Add(1) == 3 })
	if polls.Load() != 3 || time.Since(start) > time.Second {
		t.Fatalf("%d polls in %v, want 3 at once", polls.Load(), time.Since(start))
	}
}

func TestEventuallyFailsNamingWhatItAwaited(t *testing.T) {
	start := time.Now()
	msg := report(t, func(tb testing.TB) {
		Eventually(tb, 150*time.Millisecond, "a card offered to ana", func() bool { return false })
	})
	if msg != "timed out after 150ms waiting for a card offered to ana" {
		t.Fatalf("failure %q", msg)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("gave up after %v, want the 150ms given", waited)
	}
}

func TestEventuallyNoErrorReportsTheLastError(t *testing.T) {
	n := 0
	msg := report(t, func(tb testing.TB) {
		EventuallyNoError(tb, 100*time.Millisecond, "status 200", func() error { n++; return fmt.Errorf("status 503 (try %d)", n) })
	})
	if want := fmt.Sprintf("timed out after 100ms waiting for status 200: status 503 (try %d)", n); n < 2 || msg != want {
		t.Fatalf("failure %q after %d tries, want %q", msg, n, want)
	}
	if msg := report(t, func(tb testing.TB) {
		tries := 0
		EventuallyNoError(tb, time.Second, "a second try", func() error {
			if tries++; tries < 2 {
				return errors.New("first")
			}
			return nil
		})
	}); msg != "" {
		t.Fatalf("a condition met reported %q", msg)
	}
}

func TestWithinChecksOnceMoreAtTheDeadline(t *testing.T) {
	deadline := time.Now().Add(80 * time.Millisecond)
	if !Within(80*time.Millisecond, func() bool { return !time.Now().Before(deadline) }) {
		t.Fatal("a condition that holds at the deadline was not seen")
	}
	if Within(0, func() bool { return false }) {
		t.Fatal("a false condition held")
	}
}

func TestBufferTakesConcurrentWrites(t *testing.T) {
	var b Buffer
	done := make(chan struct{})
	for range 4 {
		go func() {
			for range 100 {
				fmt.Fprintln(&b, "line")
			}
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	if got := strings.Count(b.String(), "line\n"); got != 400 || len(b.Bytes()) != 2000 {
		t.Fatalf("%d lines, %d bytes; want 400 and 2000", got, len(b.Bytes()))
	}
}

func TestFixturesAreFoundFromTheRepositoryRoot(t *testing.T) {
	root := Root(t)
	if _, err := os.Stat(filepath.Join(root, "internal", "testutil", "fixture.go")); err != nil {
		t.Fatalf("root %s: %v", root, err)
	}
	if !strings.HasPrefix(string(Fixture(t, "go.mod")), "module github.com/chatgate/chatgate\n") {
		t.Fatal("go.mod at the root is not the module's")
	}
	if files := Fixtures(t, "testdata", "whatsapp", "*.json"); len(files) < 60 || !filepath.IsAbs(files[0]) {
		t.Fatalf("corpus: %d files (%v)", len(files), files[:min(1, len(files))])
	}
	if msg := report(t, func(tb testing.TB) { Fixtures(tb, "testdata", "nowhere", "*.json") }); !strings.HasPrefix(msg, "no fixture matches ") {
		t.Fatalf("an empty match reported %q", msg)
	}
	if msg := report(t, func(tb testing.TB) { Fixture(tb, "testdata", "missing.json") }); !strings.Contains(msg, "missing.json") {
		t.Fatalf("a missing fixture reported %q", msg)
	}
}

func TestMetaSpecGivesFreshExamples(t *testing.T) {
	send := MetaSpec(t, "post", "/{Version}/{Phone-Number-ID}/messages")
	if send.ID != "sendMessage" || len(send.Requests) < 40 || len(send.Responses["200"]) < 40 {
		t.Fatalf("sendMessage: id %q, %d requests, %d responses", send.ID, len(send.Requests), len(send.Responses["200"]))
	}
	for name, ex := range send.Requests {
		ex.(map[string]any)["to"] = "changed"
		if again := MetaSpec(t, "post", "/{Version}/{Phone-Number-ID}/messages").Requests[name].(map[string]any)["to"]; again == "changed" {
			t.Fatalf("%s: a change to one call's example reached the next", name)
		}
		break
	}
	if hooks := MetaSpec(t, "post", "/whatsapp/webhooks"); len(hooks.Requests) < 16 {
		t.Fatalf("%d webhook examples", len(hooks.Requests))
	}
	if msg := report(t, func(tb testing.TB) { MetaSpec(tb, "get", "/nowhere") }); msg != "Meta's OpenAPI description has no get /nowhere" {
		t.Fatalf("a missing operation reported %q", msg)
	}
}
