package logging

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
)

// TestWriteRequestIsTheRecord: a request's line written directly is byte for byte the text
// handler's line of the same record, through every wrapper the process puts around it; what it
// does not write (quoting, a warning, a group, the JSON format) is left to the handler.
func TestWriteRequestIsTheRecord(t *testing.T) {
	at := time.Date(2026, 12, 4, 14, 36, 10, 123456789, time.FixedZone("BRT", -3*3600))
	requests := []Request{
		{ID: "2f1c7a9e-1b2c-4d5e-8f90-a1b2c3d4e5f6", Method: "POST", Path: "/webhooks/whatsapp", Route: "/webhooks/whatsapp", Status: 200,
			Duration: 1234567 * time.Nanosecond, IP: "127.0.0.1"},
		{ID: "r-1", Method: "GET", Path: "/v1/things/42", Route: "/v1/things/:id", Status: 404, Duration: 999, IP: "::1"},
		{ID: "r.2", Method: "other", Path: "/x", Route: "unmatched", Status: 404, Duration: 3 * time.Second, IP: "10.0.0.1"},
	}
	quoted := []Request{
		{ID: "r", Method: "GET", Path: "/a b", Route: "/a", Status: 200, IP: "1.2.3.4"},
		{ID: "r", Method: "GET", Path: "/a=b", Route: "/a", Status: 200, IP: "1.2.3.4"},
		{ID: "r", Method: "GET", Path: `/a"b`, Route: "/a", Status: 200, IP: "1.2.3.4"},
		{ID: "r", Method: "GET", Path: "/olá", Route: "/a", Status: 200, IP: "1.2.3.4"},
		{ID: "", Method: "GET", Path: "/a", Route: "/a", Status: 200, IP: ""},
	}
	for _, wrap := range []struct {
		name   string
		logger func(*Writer) *slog.Logger
		direct bool
	}{
		{"text", func(w *Writer) *slog.Logger { return over(w, "debug", "text") }, true},
		{"text with component", func(w *Writer) *slog.Logger { return over(w, "debug", "text").With("component", "http") }, true},
		{"paced text with component", func(w *Writer) *slog.Logger {
			return slog.New(PaceOutages(over(w, "debug", "text").Handler(), time.Minute, func(error) bool { return false })).With("component", "http", "n", "2")
		}, true},
		{"text with a quoted attribute", func(w *Writer) *slog.Logger { return over(w, "debug", "text").With("component", "h t") }, false},
		{"text with a number", func(w *Writer) *slog.Logger { return over(w, "debug", "text").With("n", 2) }, false},
		{"text in a group", func(w *Writer) *slog.Logger { return over(w, "debug", "text").WithGroup("http") }, false},
		{"json", func(w *Writer) *slog.Logger { return over(w, "debug", "json").With("component", "http") }, false},
	} {
		t.Run(wrap.name, func(t *testing.T) {
			for _, r := range append(requests, quoted...) {
				for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelInfo + 1, slog.LevelWarn} {
					var want, got testutil.Buffer
					ww, gw := NewWriter(&want, time.Hour), NewWriter(&got, time.Hour)
					rec := slog.NewRecord(at, level, "request", 0)
					attrs := r.Attrs()
					rec.AddAttrs(attrs[:]...)
					_ = wrap.logger(ww).Handler().Handle(context.Background(), rec)
					rw, ok := wrap.logger(gw).Handler().(RequestWriter)
					wrote := ok && rw.WriteRequest(at, level, "request", &r)
					_, _ = ww.Close(), gw.Close()
					direct := wrap.direct && level < slog.LevelWarn && !containsAny(r, quoted)
					if wrote != direct {
						t.Fatalf("%+v at %s: written directly %v, want %v", r, level, wrote, direct)
					}
					if wrote && got.String() != want.String() {
						t.Fatalf("line\n%q\nwant\n%q", got.String(), want.String())
					}
				}
			}
		})
	}
}

func containsAny(r Request, rs []Request) bool {
	for _, q := range rs {
		if q == r {
			return true
		}
	}
	return false
}

// BenchmarkRequestLine: a request's line written directly, and as a Record.
func BenchmarkRequestLine(b *testing.B) {
	r := Request{ID: "2f1c7a9e-1b2c-4d5e-8f90-a1b2c3d4e5f6", Method: "POST", Path: "/webhooks/whatsapp", Route: "/webhooks/whatsapp", Status: 200,
		Duration: 1234567, IP: "127.0.0.1"}
	w := NewWriter(discard{}, time.Hour)
	defer w.Close()
	logger := slog.New(PaceOutages(over(w, "info", "text").Handler(), time.Minute, func(error) bool { return false })).With("component", "http")
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			logger.Handler().(RequestWriter).WriteRequest(time.Now(), slog.LevelInfo, "request", &r)
		}
	})
	b.Run("record", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
			attrs := r.Attrs()
			rec.AddAttrs(attrs[:]...)
			_ = logger.Handler().Handle(context.Background(), rec)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
