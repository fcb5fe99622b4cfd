package outbound

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
)

// Limits hold every worker process to each sending number's rate and pace messages to one customer
// (Meta's pair rate limit, 131056). Both live in Redis (GCRA, go-redis/redis_rate), so they hold
// across processes; the keys carry the tenant's hash tag.
type Limits struct {
	limiter   *redis_rate.Limiter
	keys      keyspace.Space
	perNumber map[string]redis_rate.Limit
	recipient redis_rate.Limit
	paced     bool
}

// DefaultRatePerSecond is Meta's default throughput of a business number.
const DefaultRatePerSecond = 80

// NewLimits builds the limits: rates per phone number id (messages per second) and the minimum gap
// between two messages to one customer (0: no pacing).
func NewLimits(client redis.UniversalClient, ks keyspace.Space, rates map[string]int, recipientInterval time.Duration) *Limits {
	l := &Limits{limiter: redis_rate.NewLimiter(client), keys: ks, perNumber: map[string]redis_rate.Limit{}}
	for id, rate := range rates {
		if rate <= 0 {
			rate = DefaultRatePerSecond
		}
		// A small burst keeps every one-second window within 5% of the rate (GCRA allows burst +
		// rate × window in any window).
		burst := max(1, rate/20)
		l.perNumber[id] = redis_rate.Limit{Rate: rate, Burst: burst, Period: time.Second}
	}
	if recipientInterval > 0 {
		l.paced = true
		l.recipient = redis_rate.Limit{Rate: 1, Burst: 1, Period: recipientInterval}
	}
	return l
}

// Take asks for one send from number to recipient. It returns 0 when the send may go now, or how
// long to wait before asking again.
func (l *Limits) Take(ctx context.Context, number, recipient string) (time.Duration, error) {
	limit, ok := l.perNumber[number]
	if !ok {
		limit = redis_rate.PerSecond(DefaultRatePerSecond)
	}
	res, err := l.limiter.Allow(ctx, l.keys.Key("rate", "number", number), limit)
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	if res.Allowed == 0 {
		return max(res.RetryAfter, time.Millisecond), nil
	}
	if !l.paced {
		return 0, nil
	}
	res, err = l.limiter.Allow(ctx, l.keys.Key("rate", "to", number, recipient), l.recipient)
	if err != nil {
		return 0, fmt.Errorf("recipient pace: %w", err)
	}
	if res.Allowed == 0 {
		return max(res.RetryAfter, time.Millisecond), nil
	}
	return 0, nil
}
