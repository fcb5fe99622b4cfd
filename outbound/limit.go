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
	g, err := l.Reserve(ctx, number, recipient, 0)
	return g.Wait, err
}

// Grant is a limiter's answer: the send may go now (Wait 0); or it holds a slot Wait from now
// (Reserved: sleep, then send without asking again); or it must ask again after Wait.
type Grant struct {
	Wait     time.Duration
	Reserved bool
}

// Reserve is Take that, when the send would have to wait at most within, books its slot at once
// instead of refusing it: under a saturated rate the workers then sleep until their own slots
// rather than all asking again for the next one (one script per send instead of one per worker per
// slot).
func (l *Limits) Reserve(ctx context.Context, number, recipient string, within time.Duration) (Grant, error) {
	r, err := takeBoth.Run(ctx, l.client, l.args(number, recipient, within, ordered.Turn{}))
	if err != nil {
		return Grant{}, fmt.Errorf("rate limit: %w", err)
	}
	return r.grant(), nil
}

func (l *Limits) args(number, recipient string, within time.Duration, turn ordered.Turn) takeArgs {
	limit, ok := l.perNumber[number]
	if !ok {
		limit = redis_rate.PerSecond(DefaultRatePerSecond)
	}
	take := takeArgs{keys: []string{rateKeyPrefix + l.keys.Key("rate", "number", number)}, limits: []redis_rate.Limit{limit},
		within: within, turn: turn}
	if l.paced {
		take.keys = append(take.keys, rateKeyPrefix+l.keys.Key("rate", "to", number, recipient))
		take.limits = append(take.limits, l.recipient)
	}
	return take
}

// PendingTake is a Reserve queued on a pipeline, for a send that may go only while a turn is held.
type PendingTake struct{ cmd *redis.Cmd }

// QueueReserve queues Reserve on pipe, spending nothing unless turn's lease key holds its token
// when the script runs (the claim queued before it on the same pipeline granted the turn).
func (l *Limits) QueueReserve(ctx context.Context, pipe redis.Pipeliner, number, recipient string, within time.Duration, turn ordered.Turn) PendingTake {
	return PendingTake{cmd: takeBoth.EvalSha(ctx, pipe, l.args(number, recipient, within, turn))}
}

// Result is the queued Reserve's answer once the pipeline ran; ok is false when it did not run with
// the turn held, or failed (the caller then asks again).
func (p PendingTake) Result() (g Grant, ok bool) {
	if p.cmd == nil {
		return Grant{}, false
	}
	r, err := takeBoth.Reply(p.cmd.Result())
	if err != nil || r.noTurn {
		return Grant{}, false
	}
	return r.grant(), true
}

// rateKeyPrefix is redis_rate's, so the keys and their values (GCRA theoretical arrival times)
// stay those the library reads.
const rateKeyPrefix = "rate:"

// takeBoth is redis_rate's GCRA (allowN, cost 1) over each key, spending on all of them only when
// all allow. It answers "0" (go), "w<seconds>" (the longest wait among the limits that refuse;
// nothing spent), "r<seconds>" (that wait was within the reservation bound: the slot that far ahead
// is spent on every key), or "turn" (a turn was given and is not held; nothing spent).
// KEYS: the limits' keys, then the turn's lease key if any; ARGV: the number of limits n, the
// reservation bound (seconds, 0: none), burst, rate, period (seconds) per limit, then the turn's
// token if any.
var takeBoth = luascript.New[takeArgs, takeReply]("take both", `
redis.replicate_commands()
local n = tonumber(ARGV[1])
local within = tonumber(ARGV[2])
if #KEYS > n and redis.call('GET', KEYS[n+1]) ~= ARGV[3*n+3] then return 'turn' end
local jan_1_2017 = 1483228800
local t = redis.call('TIME')
local now = (t[1] - jan_1_2017) + (t[2] / 1000000)
local wait = 0
local tats, emissions = {}, {}
for i = 1, n do
  local burst = tonumber(ARGV[3*i])
  local emission = tonumber(ARGV[3*i+2]) / tonumber(ARGV[3*i+1])
  local tat = math.max(tonumber(redis.call('GET', KEYS[i])) or now, now)
  local diff = now - (tat + emission - emission * burst)
  if diff < 0 then
    wait = math.max(wait, -diff)
  end
  tats[i], emissions[i] = tat, emission
end
if wait > within then
  return 'w' .. tostring(wait)
end
-- The send goes at now + wait: each key's next arrival moves past that moment.
local at = now + wait
for i = 1, n do
  local new_tat = math.max(tats[i], at) + emissions[i]
  redis.call('SET', KEYS[i], new_tat, 'EX', math.ceil(new_tat - now))
end
if wait > 0 then return 'r' .. tostring(wait) end
return '0'
`, parseTakeReply)

// takeReply is takeBoth's answer: wait seconds, reserved or not, or no turn.
type takeReply struct {
	wait     float64
	reserved bool
	noTurn   bool
}

func (r takeReply) grant() Grant {
	if r.wait <= 0 {
		return Grant{}
	}
	return Grant{Wait: max(time.Duration(r.wait*float64(time.Second)), time.Millisecond), Reserved: r.reserved}
}

func parseTakeReply(v any) (takeReply, error) {
	s, ok := v.(string)
	if !ok || s == "" {
		return takeReply{}, fmt.Errorf("%w: %v, want a wait", luascript.ErrReply, v)
	}
	switch {
	case s == "turn":
		return takeReply{noTurn: true}, nil
	case s == "0":
		return takeReply{}, nil
	case s[0] == 'w' || s[0] == 'r':
		w, err := strconv.ParseFloat(s[1:], 64)
		if err != nil {
			return takeReply{}, fmt.Errorf("%w: %q", luascript.ErrReply, s)
		}
		return takeReply{wait: w, reserved: s[0] == 'r'}, nil
	}
	return takeReply{}, fmt.Errorf("%w: %q", luascript.ErrReply, s)
}

// takeArgs takes one send from each key under its limit, reserving a slot up to within ahead, only
// while turn is held when it names one.
type takeArgs struct {
	keys   []string
	limits []redis_rate.Limit
	within time.Duration
	turn   ordered.Turn
}

func (a takeArgs) KeysAndArgv() ([]string, []any) {
	argv := make([]any, 0, 3+3*len(a.limits))
	argv = append(argv, len(a.limits), a.within.Seconds())
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
