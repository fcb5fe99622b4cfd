package redisx

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/logging"
)

// clientLogger carries go-redis's own lines (a pool that cannot dial, a dropped pub/sub) to the
// process logger as structured warnings, each kind once a minute with the count held back: while
// Redis is away, every command's failed dial would otherwise be a line of its own on stderr.
type clientLogger struct {
	logger   *slog.Logger
	throttle *logging.Throttle
}

// UseLogger makes go-redis, process-wide, log through logger.
func UseLogger(logger *slog.Logger) {
	redis.SetLogger(&clientLogger{logger: logger, throttle: logging.NewThrottle(time.Minute, 64)})
}

// Printf is go-redis's logging interface. The format is the kind of line; its arguments (addresses,
// attempt counts, errors) vary within one kind.
func (l *clientLogger) Printf(ctx context.Context, format string, v ...any) {
	ok, held := l.throttle.Allow(format)
	if !ok {
		return
	}
	attrs := []any{"detail", fmt.Sprintf(format, v...)}
	if held > 0 {
		attrs = append(attrs, "repeated", held)
	}
	l.logger.WarnContext(ctx, "redis client", attrs...)
}
