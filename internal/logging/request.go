package logging

import (
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Request is the line every HTTP request leaves (internal/httpx): its attributes in the line's order.
type Request struct {
	ID, Method, Path, Route string
	Status                  int
	Duration                time.Duration
	IP                      string
}

// Attrs are the request's attributes, as a Record of the line carries them.
func (r *Request) Attrs() [7]slog.Attr {
	return [7]slog.Attr{slog.String("request_id", r.ID), slog.String("method", r.Method), slog.String("path", r.Path),
		slog.String("route", r.Route), slog.Int("status", r.Status), slog.Duration("duration", r.Duration), slog.String("ip", r.IP)}
}

// RequestWriter is implemented by the handlers New builds: WriteRequest writes the line of r with
// msg at level and time t byte for byte as a Record of it (time t, Attrs) is written, without
// building the Record, and reports whether it did; when it did not, the caller logs the Record.
// A line per request made the text handler's generic path a few percent of the intake's CPU.
type RequestWriter interface {
	WriteRequest(t time.Time, level slog.Level, msg string, r *Request) bool
}

var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeRequest is WriteRequest for the text handler over w, whose attributes from With are pre
// (each " key=value"). It writes only what needs no quoting (bare printable ASCII) and lines below
// warning (those flush, see flushingHandler): anything else is left to the handler.
func writeRequest(w *Writer, pre []byte, t time.Time, level slog.Level, msg string, r *Request) bool {
	if level >= slog.LevelWarn || !bare(msg) || !bare(r.ID) || !bare(r.Method) || !bare(r.Path) || !bare(r.Route) || !bare(r.IP) {
		return false
	}
	bp := lineBuffers.Get().(*[]byte)
	b := append((*bp)[:0], "time="...)
	b = appendRFC3339Millis(b, t.Round(0))
	b = append(append(b, " level="...), level.String()...)
	b = append(append(b, " msg="...), msg...)
	b = append(b, pre...)
	b = append(append(b, " request_id="...), r.ID...)
	b = append(append(b, " method="...), r.Method...)
	b = append(append(b, " path="...), r.Path...)
	b = append(append(b, " route="...), r.Route...)
	b = strconv.AppendInt(append(b, " status="...), int64(r.Status), 10)
	b = append(append(b, " duration="...), r.Duration.String()...)
	b = append(append(b, " ip="...), r.IP...)
	b = append(b, '\n')
	_, _ = w.Write(b)
	if cap(b) <= 4<<10 {
		*bp = b
		lineBuffers.Put(bp)
	}
	return true
}

// bare reports whether the text handler writes s as it is: not empty, printable ASCII without a
// space, '=', '"' or '\\' (a subset of what it leaves unquoted).
func bare(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7F || c == '=' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendRFC3339Millis is the text handler's time: RFC 3339 with exactly three digits of fraction.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...) // drop the 4th digit
}

// appendPre appends the With attributes attrs to pre as the text handler writes them, and reports
// whether it could (string values, bare keys and values, no group).
func appendPre(pre []byte, attrs []slog.Attr) ([]byte, bool) {
	for _, a := range attrs {
		if a.Value.Kind() != slog.KindString || !bare(a.Key) || !bare(a.Value.String()) {
			return pre, false
		}
		pre = append(append(append(append(pre, ' '), a.Key...), '='), a.Value.String()...)
	}
	return pre, true
}
