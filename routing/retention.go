package routing

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/luascript"
)

// Retention lets Redis forget what it has handed over. Every conversation is in the retention ZSET
// (conversation id → ms when the sweeper looks at it next), put there when it opens. At that time:
//
//   - open and silent for idle_close (no message either way): closed with reason idle, through the
//     normal close path (Router.Close), so its agent's stream and the card's state stay right;
//   - open and not silent that long: looked at again when it would be;
//   - closed less than closed_conversations ago: looked at again then;
//   - closed longer ago: deleted with its messages, card, refusals and, when it was the contact's last
//     conversation, the contact and its identifier index — unless the integration outlet has not
//     acknowledged its events yet (the integ:unacked HASH has the conversation with a count > 0): then
//     it is held, looked at again after holdRetry, and listed in the held ZSET (conversation → ms the
//     hold began) for /ops/, the metrics and the log.
//
// The check of integ:unacked and the deletion are one script: an event the outlet records as
// unacknowledged is either seen by the script or recorded after the conversation is gone.

const (
	// retentionBatch bounds the conversations one script looks at, and retentionCalls the scripts of
	// one sweep (a sweep runs every second): Redis runs nothing else while a script runs, so a sweep
	// is several short scripts rather than one long one.
	retentionBatch = 25
	retentionCalls = 8
	// holdRetry is how soon a held conversation is looked at again.
	holdRetry = time.Minute
)

// RetentionOptions are the retention settings (configs.Retention).
type RetentionOptions struct {
	// ClosedConversations: how long a closed conversation is kept (0: the default, 7 days).
	ClosedConversations time.Duration
	// IdleClose: an open conversation silent this long is closed (0: never).
	IdleClose time.Duration
}

// retentionScript looks at the conversations that came due and does what retention.go says.
//
// KEYS[1] retention ZSET, KEYS[2] integ:unacked HASH, KEYS[3] held ZSET
// ARGV: 1 prefix, 2 now ms, 3 closed retention ms, 4 idle close ms (0: off), 5 batch, 6 hold retry ms
// Returns {conversations deleted, newly held, released after a hold, idle cards to close (array),
// conversations looked at}.
var retentionScript = luascript.New[retentionArgs, retentionReply]("retention", `
local P, now, keep, idle, retry = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
local deleted, held, released, idleCards = 0, 0, 0, {}
local function unlinkAll(keys)
  for i = 1, #keys, 500 do redis.call('UNLINK', unpack(keys, i, math.min(i + 499, #keys))) end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, conv in ipairs(due) do
  local ck = P .. 'conv:' .. conv
  local f = redis.call('HMGET', ck, 'state', 'closed_at', 'card', 'opened_at', 'last_customer_message_at', 'contact_id', 'channel')
  if not f[1] then
    redis.call('ZREM', KEYS[1], conv)
    redis.call('ZREM', KEYS[3], conv)
  elseif f[1] == 'closed' then
    local due = tonumber(f[2] or '0') + keep
    if due > now then
      redis.call('ZADD', KEYS[1], due, conv)
    elseif tonumber(redis.call('HGET', KEYS[2], conv) or '0') > 0 then
      -- the outlet still owes an acknowledgement: keep everything, look again later
      redis.call('ZADD', KEYS[1], now + retry, conv)
      held = held + redis.call('ZADD', KEYS[3], 'NX', now, conv)
    else
      local mk = P .. 'convmsgs:' .. conv
      local doomed = {mk, ck}
      for _, m in ipairs(redis.call('LRANGE', mk, 0, -1)) do table.insert(doomed, P .. 'msg:' .. m) end
      if f[3] and f[3] ~= '' then
        table.insert(doomed, P .. 'card:' .. f[3])
        table.insert(doomed, P .. 'refused:' .. f[3])
      end
      -- the contact goes with its last conversation (contacts made before retention have no count: kept)
      local contact = P .. 'contact:' .. (f[6] or '')
      if f[6] and f[6] ~= '' and redis.call('HEXISTS', contact, 'convs') == 1 and
          redis.call('HINCRBY', contact, 'convs', -1) <= 0 then
        local ids = P .. 'contactids:' .. f[6]
        for _, ident in ipairs(redis.call('SMEMBERS', ids)) do
          local ik = P .. 'ident:' .. (f[7] or '') .. ':' .. ident
          if redis.call('GET', ik) == f[6] then table.insert(doomed, ik) end
        end
        table.insert(doomed, contact)
        table.insert(doomed, ids)
      end
      unlinkAll(doomed)
      redis.call('ZREM', KEYS[1], conv)
      released = released + redis.call('ZREM', KEYS[3], conv)
      deleted = deleted + 1
    end
  else
    local last = math.max(tonumber(f[4] or '0'), tonumber(f[5] or '0'))
    local lastMsg = redis.call('LINDEX', P .. 'convmsgs:' .. conv, -1)
    if lastMsg then last = math.max(last, tonumber(redis.call('HGET', P .. 'msg:' .. lastMsg, 'at') or '0')) end
    if idle > 0 and last + idle <= now then
      if f[3] and f[3] ~= '' then table.insert(idleCards, f[3]) end
      redis.call('ZADD', KEYS[1], now + retry, conv)
    else
      local wait = keep
      if idle > 0 then wait = idle end
      redis.call('ZADD', KEYS[1], math.max(last + wait, now + retry), conv)
    end
  end
end
return {deleted, held, released, idleCards, #due}
`, parseRetentionReply)

type retentionArgs struct {
	keys       keys
	now        int64 // ms
	keep, idle int64 // ms
	batch      int
	retry      int64 // ms
}

func (a retentionArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.retention(), a.keys.integUnacked(), a.keys.retentionHeld()},
		[]any{a.keys.prefix(), a.now, a.keep, a.idle, a.batch, a.retry}
}

type retentionReply struct {
	deleted, held, released int64
	idleCards               []string
	looked                  int64
}

func parseRetentionReply(v any) (retentionReply, error) {
	a, err := luascript.AsArray(v)
	if err != nil {
		return retentionReply{}, err
	}
	if len(a) != 5 {
		return retentionReply{}, fmt.Errorf("%w: %d items", luascript.ErrReply, len(a))
	}
	out := retentionReply{deleted: a.Int(0), held: a.Int(1), released: a.Int(2), looked: a.Int(4)}
	for _, c := range a.Array(3) {
		if s, ok := c.(string); ok {
			out.idleCards = append(out.idleCards, s)
		}
	}
	return out, nil
}

type retentionMetrics struct {
	deleted, idleClosed prometheus.Counter
	held                prometheus.Gauge
	oldestHold          prometheus.Gauge
}

func newRetentionMetrics() retentionMetrics {
	return retentionMetrics{
		deleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatgate_retention_conversations_deleted_total",
			Help: "Closed conversations deleted from Redis once their retention passed (with their messages, card and indexes)."}),
		idleClosed: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatgate_retention_idle_closed_total",
			Help: "Open conversations closed because they were silent longer than retention.idle_close."}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatgate_retention_held_conversations",
			Help: "Conversations past their retention kept because the integration outlet has not acknowledged their events."}),
		oldestHold: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatgate_retention_oldest_hold_seconds",
			Help: "How long the longest-held conversation has been kept past its retention (0: none held)."}),
	}
}

// RetentionStatus is how much retention holds back: conversations past their retention kept
// because the integration outlet has not acknowledged their events, and for how long.
type RetentionStatus struct {
	Held       int64      `json:"held"`
	OldestHold *time.Time `json:"oldest_hold,omitempty"`
}

// Retention reads how much is held.
func (r *Router) Retention(ctx context.Context) (RetentionStatus, error) {
	return ReadRetention(ctx, r.client, r.keys.ks)
}

// ReadRetention reads how much is held in a tenant's key space (for readers without a Router: /ops/).
func ReadRetention(ctx context.Context, client redis.UniversalClient, ks keyspace.Space) (RetentionStatus, error) {
	key := keys{ks}.retentionHeld()
	pipe := client.Pipeline()
	n := pipe.ZCard(ctx, key)
	oldest := pipe.ZRangeWithScores(ctx, key, 0, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return RetentionStatus{}, err
	}
	st := RetentionStatus{Held: n.Val()}
	if z := oldest.Val(); len(z) == 1 {
		t := time.UnixMilli(int64(z[0].Score)).UTC()
		st.OldestHold = &t
	}
	return st, nil
}

// SweepRetention runs one retention step: closes idle conversations and deletes closed ones whose
// retention passed (holding those the integration outlet has not acknowledged). It returns how many
// conversations it deleted.
func (r *Router) SweepRetention(ctx context.Context) (int, error) {
	now := r.clock.Now()
	var out retentionReply
	for range retentionCalls {
		step, err := retentionScript.Run(ctx, r.client, retentionArgs{keys: r.keys, now: now.UnixMilli(),
			keep: r.retention.ClosedConversations.Milliseconds(), idle: r.retention.IdleClose.Milliseconds(),
			batch: retentionBatch, retry: holdRetry.Milliseconds()})
		if err != nil {
			if out.deleted == 0 && len(out.idleCards) == 0 {
				return 0, fmt.Errorf("retention: %w", err)
			}
			r.logger.Warn("retention sweep cut short", "err", err)
			break
		}
		out.deleted, out.held, out.released = out.deleted+step.deleted, out.held+step.held, out.released+step.released
		out.idleCards = append(out.idleCards, step.idleCards...)
		if step.looked < retentionBatch {
			break
		}
	}
	r.retentionMetrics.deleted.Add(float64(out.deleted))
	for _, card := range out.idleCards {
		if _, err := r.CloseWith(ctx, card, ClosedIdle, true, CloseDetails{Reason: ClosedIdle}); err != nil {
			r.logger.Warn("idle conversation not closed; retried on a later sweep", "card", card, "err", err)
			continue
		}
		r.retentionMetrics.idleClosed.Inc()
	}
	if out.held > 0 || out.released > 0 {
		st, err := r.Retention(ctx)
		if err == nil {
			age := time.Duration(0)
			if st.OldestHold != nil {
				age = now.Sub(*st.OldestHold).Truncate(time.Second)
			}
			if out.held > 0 {
				r.logger.Warn("closed conversations kept past their retention: the integration outlet has not acknowledged their events",
					"newly_held", out.held, "held", st.Held, "oldest_hold", age.String())
			} else {
				r.logger.Info("held conversations released after the integration outlet acknowledged them",
					"released", out.released, "held", st.Held, "oldest_hold", age.String())
			}
		}
	}
	r.observeRetention(ctx, now)
	return int(out.deleted), nil
}

// observeRetention keeps the held gauges current.
func (r *Router) observeRetention(ctx context.Context, now time.Time) {
	st, err := r.Retention(ctx)
	if err != nil {
		return
	}
	r.retentionMetrics.held.Set(float64(st.Held))
	age := 0.0
	if st.OldestHold != nil {
		age = now.Sub(*st.OldestHold).Seconds()
	}
	r.retentionMetrics.oldestHold.Set(age)
}

// ClosedIdle is closed_by of a conversation retention closed for silence.
const ClosedIdle = "idle"
