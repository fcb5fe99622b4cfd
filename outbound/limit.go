package outbound

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/luascript"
)

// Limits hold every worker process to each sending number's rate and pace messages to one customer
// (Meta's pair rate limit, 131056). Both live in Redis (GCRA as go-redis/redis_rate has it, both checked in one script), so they hold
// across processes; the keys carry the tenant's hash tag.
type Limits struct {
	client    redis.UniversalClient
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
	l := &Limits{client: client, keys: ks, perNumber: map[string]redis_rate.Limit{}}
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
// long to wait before asking again. Both limits are checked and spent in one script: a send the
// customer's pace refuses must not use up the number's capacity, nor the other way round.
func (l *Limits) Take(ctx context.Context, number, recipient string) (time.Duration, error) {
	wait, err := takeBoth.Run(ctx, l.client, l.args(number, recipient))
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	return waitOf(wait), nil
}

func (l *Limits) args(number, recipient string) takeArgs {
	limit, ok := l.perNumber[number]
	if !ok {
		limit = redis_rate.PerSecond(DefaultRatePerSecond)
	}
	take := takeArgs{keys: []string{rateKeyPrefix + l.keys.Key("rate", "number", number)}, limits: []redis_rate.Limit{limit}}
	if l.paced {
		take.keys = append(take.keys, rateKeyPrefix+l.keys.Key("rate", "to", number, recipient))
		take.limits = append(take.limits, l.recipient)
	}
	return take
}

func waitOf(seconds float64) time.Duration {
	if seconds <= 0 {
		return 0
	}
	return max(time.Duration(seconds*float64(time.Second)), time.Millisecond)
}

// rateTakeLua defines rateTake(keys, argv), takeBoth's work, for a script that takes within its
// own work (Worker.PrefetchLua).
const rateTakeLua = `
local function rateTake(keys, argv)
  local n = tonumber(argv[1])
  local jan_1_2017 = 1483228800
  local t = redis.call('TIME')
  local now = (t[1] - jan_1_2017) + (t[2] / 1000000)
  local wait = 0
  local new_tats = {}
  for i = 1, n do
    local key = keys[i]
    local burst = tonumber(argv[3*i-1])
    local emission = tonumber(argv[3*i+1]) / tonumber(argv[3*i])
    local tat = tonumber(redis.call('GET', key)) or now
    tat = math.max(tat, now)
    local new_tat = tat + emission
    local diff = now - (new_tat - emission * burst)
    if diff < 0 then
      wait = math.max(wait, -diff)
    end
    new_tats[i] = new_tat
  end
  if wait > 0 then
    return tostring(wait)
  end
  for i = 1, n do
    redis.call('SET', keys[i], new_tats[i], 'EX', math.ceil(new_tats[i] - now))
  end
  return '0'
end
`

// rateKeyPrefix is redis_rate's, so the keys and their values (GCRA theoretical arrival times)
// stay those the library reads.
const rateKeyPrefix = "rate:"

// takeBoth is redis_rate's GCRA (allowN, cost 1) over each key, spending on all of them only when
// all allow. It returns 0, or the longest wait (seconds) among the limits that refuse.
// KEYS: the limits' keys; ARGV: the number of limits, then burst, rate, period (seconds) per limit.
var takeBoth = luascript.New[takeArgs, float64]("take both", `
redis.replicate_commands()
`+rateTakeLua+`
return rateTake(KEYS, ARGV)
`, parseWait)

// parseWait reads rateTake's reply: seconds as a string.
func parseWait(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%w: %T, want a number as a string", luascript.ErrReply, v)
	}
	return strconv.ParseFloat(s, 64)
}

// takeArgs takes one send from each key under its limit.
type takeArgs struct {
	keys   []string
	limits []redis_rate.Limit
}

func (a takeArgs) KeysAndArgv() ([]string, []any) {
	argv := make([]any, 0, 1+3*len(a.limits))
	argv = append(argv, len(a.limits))
	for _, l := range a.limits {
		argv = append(argv, l.Burst, l.Rate, l.Period.Seconds())
	}
	return a.keys, argv
}
