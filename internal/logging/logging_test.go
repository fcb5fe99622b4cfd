package logging

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
)

func TestInfoLinesAreBufferedUntilTheInterval(t *testing.T) {
	var out testutil.Buffer
	w := NewWriter(&out, 150*time.Millisecond)
	defer w.Close()
	logger := over(w, "info", "text")
	logger.Info("request", "path", "/webhooks/whatsapp")
	if got := out.String(); got != "" {
		t.Fatalf("an info line was written at once (%q): it should wait for the flush", got)
	}
	testutil.Eventually(t, 2*time.Second, "the info line in the output", func() bool { return strings.Contains(out.String(), "msg=request") })
}

func TestWarningsAreWrittenAtOnce(t *testing.T) {
	var out testutil.Buffer
	w := NewWriter(&out, time.Hour)
	defer w.Close()
	logger := over(w, "info", "text")
	logger.Info("before")
	logger.Warn("redis is not reachable")
	got := out.String()
	if !strings.Contains(got, "msg=before") || !strings.Contains(got, `msg="redis is not reachable"`) {
		t.Fatalf("a warning must flush itself and what came before it, got %q", got)
	}
	logger.With("component", "http").Error("handler panicked")
	if !strings.Contains(out.String(), "component=http") {
		t.Fatalf("a derived logger's error must flush too, got %q", out.String())
	}
}

func TestCloseFlushesAndLaterLinesGoStraightThrough(t *testing.T) {
	var out testutil.Buffer
	logger, w := New("info", "json", &out)
	logger.Info("stopping")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"msg":"stopping"`) {
		t.Fatalf("Close did not flush: %q", out.String())
	}
	logger.Info("after close")
	if !strings.Contains(out.String(), `"msg":"after close"`) {
		t.Fatalf("a line after Close was kept in the buffer: %q", out.String())
	}
	if err := w.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

func TestConcurrentLinesStayWhole(t *testing.T) {
	var out testutil.Buffer
	logger, w := New("debug", "text", &out)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				logger.Info("line", "payload", strings.Repeat("x", 200))
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("got %d lines, want %d", len(lines), 8*500)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "time=") || !strings.HasSuffix(l, strings.Repeat("x", 200)) {
			t.Fatalf("a line was cut or interleaved: %q", l)
		}
	}
}

func TestLevelIsHonoured(t *testing.T) {
	var out testutil.Buffer
	logger, w := New("warn", "text", &out)
	logger.Info("hidden")
	logger.Warn("shown")
	_ = w.Close()
	if got := out.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "shown") {
		t.Fatalf("level warn: got %q", got)
	}
}
