// Package logging builds the process logger. Every request is a log line at info, so lines come at
// the rate of requests; a write syscall for each cost the webhook path several percent of its CPU.
// Lines are buffered and written every FlushInterval, at once after a warning or an error (problems
// are seen when they happen), and on Close.
package logging

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// FlushInterval bounds how long an info line waits in the buffer.
const FlushInterval = 100 * time.Millisecond

const bufferSize = 64 << 10

// Writer buffers whole writes (slog writes one record per Write) and flushes them in the background.
type Writer struct {
	mu     sync.Mutex
	buf    *bufio.Writer
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// NewWriter buffers w, flushing every interval until Close.
func NewWriter(w io.Writer, interval time.Duration) *Writer {
	bw := &Writer{buf: bufio.NewWriterSize(w, bufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go bw.flushEvery(interval)
	return bw
}

func (w *Writer) flushEvery(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.Flush()
		}
	}
}

// Write appends p whole: a record is never interleaved with another.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if err == nil && w.closed {
		err = w.buf.Flush() // after Close nothing flushes any more: write through
	}
	return n, err
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Flush()
}

// Close stops the background flush and writes what is buffered; later writes go straight through.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return w.Flush()
}

// New returns a logger writing text or JSON ("json", any case) records at level and above to w,
// buffered; call the returned Writer's Close before the process exits.
func New(level, format string, w io.Writer) (*slog.Logger, *Writer) {
	bw := NewWriter(w, FlushInterval)
	return over(bw, level, format), bw
}

func over(bw *Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if strings.EqualFold(format, "json") {
		return slog.New(flushingHandler{Handler: slog.NewJSONHandler(bw, opts), w: bw})
	}
	return slog.New(flushingHandler{Handler: slog.NewTextHandler(bw, opts), w: bw, text: true})
}

// flushingHandler flushes after every record at warn or above.
type flushingHandler struct {
	slog.Handler
	w *Writer
	// text: the handler is the text handler, whose attributes from With are pre (see writeRequest);
	// false as well once a With or a group is beyond writeRequest.
	text bool
	pre  []byte
}

func (h flushingHandler) WriteRequest(t time.Time, level slog.Level, msg string, r *Request) bool {
	return h.text && writeRequest(h.w, h.pre, t, level, msg, r)
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := flushingHandler{Handler: h.Handler.WithAttrs(attrs), w: h.w}
	if h.text {
		out.pre, out.text = appendPre(append([]byte(nil), h.pre...), attrs)
	}
	return out
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}
