package logging

import (
	"context"
	"log/slog"
	"time"
)

// PaceOutages wraps h so that a warning or an error caused by an outage (a record with an error
// attribute for which isOutage is true, e.g. Redis unreachable) is written once per interval for each
// message of each logger; the next one says how many were held back ("repeated"). Every background
// loop and every refused request then reports an outage once, then at that pace, not at its own
// rate. Other records pass untouched.
func PaceOutages(h slog.Handler, interval time.Duration, isOutage func(error) bool) slog.Handler {
	return &pacedHandler{Handler: h, isOutage: isOutage, throttle: NewThrottle(interval, 256)}
}

type pacedHandler struct {
	slog.Handler
	isOutage func(error) bool
	throttle *Throttle
	scope    string // the logger's own attributes and groups: its component, say
}

func (h *pacedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && h.causedByOutage(r) {
		ok, held := h.throttle.Allow(h.scope + "\x00" + r.Message)
		if !ok {
			return nil
		}
		if held > 0 {
			r = r.Clone()
			r.AddAttrs(slog.Int("repeated", held))
		}
	}
	return h.Handler.Handle(ctx, r)
}

// WriteRequest passes a request's line below warning (never paced) to the handler it wraps.
func (h *pacedHandler) WriteRequest(t time.Time, level slog.Level, msg string, r *Request) bool {
	rw, ok := h.Handler.(RequestWriter)
	return ok && level < slog.LevelWarn && rw.WriteRequest(t, level, msg, r)
}

func (h *pacedHandler) causedByOutage(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && h.isOutage(err) {
			found = true
		}
		return !found
	})
	return found
}

func (h *pacedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	scope := h.scope
	for _, a := range attrs {
		scope += " " + a.String()
	}
	return &pacedHandler{Handler: h.Handler.WithAttrs(attrs), isOutage: h.isOutage, throttle: h.throttle, scope: scope}
}

func (h *pacedHandler) WithGroup(name string) slog.Handler {
	return &pacedHandler{Handler: h.Handler.WithGroup(name), isOutage: h.isOutage, throttle: h.throttle, scope: h.scope + " " + name + "."}
}
