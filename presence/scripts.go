package presence

import (
	"fmt"
	"time"

	"github.com/chatgate/chatgate/internal/luascript"
	"github.com/chatgate/chatgate/internal/outbox"
)

// transitionScript applies one toggle to an agent's channel and, by the shared-queue rule, to the
// rest of its channel group, atomically: two replicas toggling the same agent cannot leave a group
// half paused or lose a counter.
//
// KEYS[1] state HASH, KEYS[2] history STREAM (entry ids are the gateway's ms: reports read by id),
// KEYS[3] seen ZSET, KEYS[4] totals HASH
// ARGV[1] now (Unix ms)      ARGV[2] agent        ARGV[3] channel   ARGV[4] want: online|offline|paused|logout_all
// ARGV[5] reason (of a pause; of a logout_all, recorded in the history only)
// ARGV[6] by                 ARGV[7] cause        ARGV[8] first Unix day the totals keep (older fields are pruned)
// ARGV[9] totals TTL (s)     ARGV[10] history MINID (ms)            ARGV[11] allow login: 1|0
// ARGV[12] reaper cutoff (ms, or "" when not reaping)
// ARGV[13] n = size of the channel's group, ARGV[14..13+n] the group (the channel included),
// then m = number of the agent's enabled channels, and those channels; last, the tenant's key prefix
// (the integrations' outbox, written in this same step: presence.changed is as durable as the change).
//
// Totals fields are <Unix day>:<channel>:online and <Unix day>:<channel>:paused:<reason> (ms), plus
// "pruned" → the last day a prune ran, so old days are swept once a day, not at every transition.
//
// Returns {"ok", changes, state} where changes = {{channel, from, to, reason}, …} and state is the
// HGETALL of the state HASH after the change; or {"channel_offline"} (pause of an offline channel),
// {"login_denied"} (a login asked by someone else), {"skipped"} (the reaper saw a fresh heartbeat).
var transitionScript = luascript.New[transitionArgs, transitionReply]("presence transition", outbox.Lua+`
local now = tonumber(ARGV[1])
local agent, ch, want, reason, by, cause = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local keepDay, ttl, minid = tonumber(ARGV[8]), ARGV[9], ARGV[10]
local n = tonumber(ARGV[13])
local group = {}
for i = 1, n do group[i] = ARGV[13 + i] end
local m = tonumber(ARGV[14 + n])
local all = {}
for i = 1, m do all[i] = ARGV[14 + n + i] end

local function state(c) return redis.call('HGET', KEYS[1], c) or 'offline' end

-- accrue adds the time spent in a state to per-day totals, split at UTC midnight.
local accrued = false
local function accrue(c, st, why, since)
  if st == 'offline' or not since then return end
  local field = c .. ':online'
  if st == 'paused' then field = c .. ':paused:' .. why end
  local s = since
  while s < now do
    local day = math.floor(s / 86400000)
    local e = math.min((day + 1) * 86400000, now)
    redis.call('HINCRBY', KEYS[4], string.format('%d', day) .. ':' .. field, string.format('%d', e - s))
    accrued = true
    s = e
  end
end

-- prune drops days older than the retention, at most once per day of the gateway's clock.
local function prune()
  local today = math.floor(now / 86400000)
  if tonumber(redis.call('HGET', KEYS[4], 'pruned') or '-1') >= today then return end
  local old = {}
  for _, f in ipairs(redis.call('HKEYS', KEYS[4])) do
    local day = tonumber(string.match(f, '^(%d+):'))
    if day and day < keepDay then table.insert(old, f) end
  end
  for i = 1, #old, 1000 do redis.call('HDEL', KEYS[4], unpack(old, i, math.min(i + 999, #old))) end
  redis.call('HSET', KEYS[4], 'pruned', string.format('%d', today))
end

-- historyId names a history entry by the gateway's clock (<ms>-*), so reports read a period with
-- XRANGE by id, and MINID trims by the same clock; never below the last entry (a replica's clock
-- behind another's), and a refused id falls back to Redis's own (*).
local historyMs = nil
local function historyId()
  if not historyMs then
    historyMs = now
    local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
    if last[1] then
      local ms = tonumber(string.match(last[1][1], '^(%d+)'))
      if ms and ms > historyMs then historyMs = ms end
    end
  end
  return string.format('%d', historyMs) .. '-*'
end

local changes = {}
-- set moves c to (to, why); logged is the reason the history and the change carry (why, or for a
-- logout the reason of the logout, which is not a state of the channel).
local function set(c, to, why, logged)
  logged = logged or why
  local from = state(c)
  local oldWhy = redis.call('HGET', KEYS[1], c .. ':reason') or ''
  if from == to and oldWhy == why then return end
  accrue(c, from, oldWhy, tonumber(redis.call('HGET', KEYS[1], c .. ':since') or ''))
  redis.call('HSET', KEYS[1], c, to, c .. ':since', ARGV[1], c .. ':reason', why)
  local entry = {'channel', c, 'from', from, 'to', to, 'reason', logged, 'by', by, 'cause', cause, 'at', ARGV[1]}
  local added = redis.pcall('XADD', KEYS[2], historyId(), unpack(entry))
  if type(added) == 'table' and added.err then redis.call('XADD', KEYS[2], '*', unpack(entry)) end
  table.insert(changes, {c, from, to, logged})
  local d = {agent = agent, channel = c, from = from, to = to}
  if logged ~= '' then d.reason = logged end
  if by ~= '' then d.by = by end
  if cause ~= '' then d.cause = cause end
  outboxEmit(ARGV[#ARGV], ARGV[1], 'presence.changed', '', 'a', agent, 'd', cjson.encode(d))
end

local cur = state(ch)
if want == 'online' then
  if cur == 'offline' then
    if ARGV[11] ~= '1' then return {'login_denied'} end
    local groupReason = nil
    for _, g in ipairs(group) do
      if g ~= ch and state(g) == 'paused' then
        groupReason = redis.call('HGET', KEYS[1], g .. ':reason')
        break
      end
    end
    if groupReason then set(ch, 'paused', groupReason) else set(ch, 'online', '') end
    redis.call('ZADD', KEYS[3], ARGV[1], agent)
  elseif cur == 'paused' then
    for _, g in ipairs(group) do
      if state(g) == 'paused' then set(g, 'online', '') end
    end
  end
elseif want == 'paused' then
  if cur == 'offline' then return {'channel_offline'} end
  for _, g in ipairs(group) do
    if state(g) ~= 'offline' then set(g, 'paused', reason) end
  end
elseif want == 'offline' then
  set(ch, 'offline', '')
elseif want == 'logout_all' then
  if ARGV[12] ~= '' then
    local seen = redis.call('ZSCORE', KEYS[3], agent)
    if seen and tonumber(seen) > tonumber(ARGV[12]) then return {'skipped'} end
  end
  for _, c in ipairs(all) do set(c, 'offline', '', reason) end
end

local logged = false
for _, c in ipairs(all) do
  if state(c) ~= 'offline' then logged = true end
end
if not logged then redis.call('ZREM', KEYS[3], agent) end
if #changes > 0 then redis.call('XTRIM', KEYS[2], 'MINID', '~', minid) end
if accrued then
  prune()
  redis.call('EXPIRE', KEYS[4], ttl)
end
return {'ok', changes, redis.call('HGETALL', KEYS[1])}
`, parseTransitionReply)

// transitionArgs is one toggle of agent's channel (want: online, offline, paused, or logout_all of
// every channel).
type transitionArgs struct {
	keys                                    keys
	agent, channel, want, reason, by, cause string
	now                                     time.Time
	retention                               time.Duration // of the history and the totals
	allowLogin                              bool
	reaperCutoff                            string   // ms; "" when not reaping
	group                                   []string // the channel's group, the channel included
	channels                                []string // every channel the agent has enabled
}

func (a transitionArgs) KeysAndArgv() ([]string, []any) {
	argv := make([]any, 0, 14+len(a.group)+len(a.channels))
	argv = append(argv, a.now.UnixMilli(), a.agent, a.channel, a.want, a.reason, a.by, a.cause,
		unixDay(a.now.Add(-a.retention)), int64(a.retention/time.Second), a.now.Add(-a.retention).UnixMilli(),
		luascript.Flag(a.allowLogin), a.reaperCutoff, len(a.group))
	for _, g := range a.group {
		argv = append(argv, g)
	}
	argv = append(argv, len(a.channels))
	for _, c := range a.channels {
		argv = append(argv, c)
	}
	argv = append(argv, a.keys.ks.Prefix())
	return []string{a.keys.state(a.agent), a.keys.history(a.agent), a.keys.seen(), a.keys.totals(a.agent)}, argv
}

// transitionReply: code "ok" with the changes made and the state HASH after them, or a refusal
// ("channel_offline", "login_denied") or "skipped".
type transitionReply struct {
	code    string
	changes []channelChange
	state   map[string]string
}

// channelChange is one channel's move as the script reports it.
type channelChange struct {
	channel, from, to, reason string
}

func parseTransitionReply(v any) (transitionReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return transitionReply{}, err
	}
	switch code {
	case "channel_offline", "login_denied", "skipped":
		return transitionReply{code: code}, nil
	case "ok":
	default:
		return transitionReply{}, luascript.UnexpectedCode(code)
	}
	if len(a) != 3 {
		return transitionReply{}, fmt.Errorf("%w: %d elements, want 3", luascript.ErrReply, len(a))
	}
	raw, ok1 := a[1].([]any)
	flat, ok2 := a[2].([]any)
	if !ok1 || !ok2 {
		return transitionReply{}, fmt.Errorf("%w: changes %T, state %T", luascript.ErrReply, a[1], a[2])
	}
	out := transitionReply{code: code, changes: make([]channelChange, 0, len(raw)), state: luascript.Array(flat).FieldsFrom(0)}
	for _, r := range raw {
		c, ok := r.([]any)
		if !ok || len(c) != 4 {
			return transitionReply{}, fmt.Errorf("%w: change %v", luascript.ErrReply, r)
		}
		ch := luascript.Array(c)
		out.changes = append(out.changes, channelChange{channel: ch.Str(0), from: ch.Str(1), to: ch.Str(2), reason: ch.Str(3)})
	}
	return out, nil
}

// heartbeatScript refreshes an agent's last-seen time only while it is logged in somewhere, so the
// reaper never sweeps agents that have nothing to log out of.
//
// KEYS[1] seen ZSET; ARGV[1] agent, ARGV[2] now (ms). Returns 1 when refreshed, 0 when not logged in.
var heartbeatScript = luascript.New[heartbeatArgs, bool]("presence heartbeat", `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
return 0
`, func(v any) (bool, error) {
	n, err := luascript.Integer(v)
	return n == 1, err
})

// heartbeatArgs: agent's client is alive at now.
type heartbeatArgs struct {
	keys  keys
	agent string
	now   int64 // ms
}

func (a heartbeatArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.seen()}, []any{a.agent, a.now}
}
