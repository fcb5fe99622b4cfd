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
	"github.com/chatgate/chatgate/internal/ordered"
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
	wait, err := takeBoth.Run(ctx, l.client, l.args(number, recipient, ordered.Turn{}))
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	return waitOf(wait), nil
}

func (l *Limits) args(number, recipient string, turn ordered.Turn) takeArgs {
	limit, ok := l.perNumber[number]
	if !ok {
		limit = redis_rate.PerSecond(DefaultRatePerSecond)
	}
	take := takeArgs{keys: []string{rateKeyPrefix + l.keys.Key("rate", "number", number)}, limits: []redis_rate.Limit{limit}, turn: turn}
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

// PendingTake is a Take queued on a pipeline, for a send that may go only while a turn is held.
type PendingTake struct{ cmd *redis.Cmd }

// QueueTake queues Take on pipe, spending nothing unless turn's lease key holds its token when the
// script runs (the claim queued before it on the same pipeline granted the turn).
func (l *Limits) QueueTake(ctx context.Context, pipe redis.Pipeliner, number, recipient string, turn ordered.Turn) PendingTake {
	return PendingTake{cmd: takeBoth.EvalSha(ctx, pipe, l.args(number, recipient, turn))}
}

// Result is the queued Take's answer once the pipeline ran; ok is false when it did not run with
// the turn held, or failed (the caller then takes again).
func (p PendingTake) Result() (wait time.Duration, ok bool) {
	if p.cmd == nil {
		return 0, false
	}
	seconds, err := takeBoth.Reply(p.cmd.Result())
	if err != nil || seconds < 0 {
		return 0, false
	}
	return waitOf(seconds), true
}

// rateKeyPrefix is redis_rate's, so the keys and their values (GCRA theoretical arrival times)
// stay those the library reads.
const rateKeyPrefix = "rate:"

// takeBoth is redis_rate's GCRA (allowN, cost 1) over each key, spending on all of them only when
// all allow. It returns 0, or the longest wait (seconds) among the limits that refuse; or -1, having
// spent nothing, when a turn is given and not held.
// KEYS: the limits' keys, then the turn's lease key if any; ARGV: the number of limits, burst, rate,
// period (seconds) per limit, then the turn's token if any.
var takeBoth = luascript.New[takeArgs, float64]("take both", `
redis.replicate_commands()
local n = tonumber(ARGV[1])
if #KEYS > n and redis.call('GET', KEYS[n+1]) ~= ARGV[3*n+2] then return '-1' end
local jan_1_2017 = 1483228800
local t = redis.call('TIME')
local now = (t[1] - jan_1_2017) + (t[2] / 1000000)
local wait = 0
local new_tats = {}
for i = 1, n do
  local key = KEYS[i]
  local burst = tonumber(ARGV[3*i-1])
  local emission = tonumber(ARGV[3*i+1]) / tonumber(ARGV[3*i])
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
  redis.call('SET', KEYS[i], new_tats[i], 'EX', math.ceil(new_tats[i] - now))
end
return '0'
`, func(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%w: %T, want a number as a string", luascript.ErrReply, v)
	}
	return strconv.ParseFloat(s, 64)
})

// takeArgs takes one send from each key under its limit, only while turn is held when it names one.
type takeArgs struct {
	keys   []string
	limits []redis_rate.Limit
	turn   ordered.Turn
}

func (a takeArgs) KeysAndArgv() ([]string, []any) {
	argv := make([]any, 0, 2+3*len(a.limits))
	argv = append(argv, len(a.limits))
	for _, l := range a.limits {
		argv = append(argv, l.Burst, l.Rate, l.Period.Seconds())
	}
	keys := a.keys
	if a.turn.LeaseKey != "" {
		keys = append(append([]string{}, a.keys...), a.turn.LeaseKey)
		argv = append(argv, a.turn.Token)
	}
	return keys, argv
}
