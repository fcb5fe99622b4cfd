package presence

import "github.com/redis/go-redis/v9"

// transitionScript applies one toggle to an agent's channel and, by the shared-queue rule, to the
// rest of its channel group, atomically: two replicas toggling the same agent cannot leave a group
// half paused or lose a counter.
//
// KEYS[1] state HASH, KEYS[2] history STREAM, KEYS[3] seen ZSET
// ARGV[1] now (Unix ms)      ARGV[2] agent        ARGV[3] channel   ARGV[4] want: online|offline|paused|logout_all
// ARGV[5] reason             ARGV[6] by           ARGV[7] cause     ARGV[8] totals key prefix (same hash tag)
// ARGV[9] totals TTL (s)     ARGV[10] history MINID (ms)            ARGV[11] allow login: 1|0
// ARGV[12] reaper cutoff (ms, or "" when not reaping)
// ARGV[13] n = size of the channel's group, ARGV[14..13+n] the group (the channel included),
// then m = number of the agent's enabled channels, and those channels.
//
// Returns {"ok", changes, state} where changes = {{channel, from, to, reason}, …} and state is the
// HGETALL of the state HASH after the change; or {"channel_offline"} (pause of an offline channel),
// {"login_denied"} (a login asked by someone else), {"skipped"} (the reaper saw a fresh heartbeat).
var transitionScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local agent, ch, want, reason, by, cause = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local prefix, ttl, minid = ARGV[8], ARGV[9], ARGV[10]
local n = tonumber(ARGV[13])
local group = {}
for i = 1, n do group[i] = ARGV[13 + i] end
local m = tonumber(ARGV[14 + n])
local all = {}
for i = 1, m do all[i] = ARGV[14 + n + i] end

local function state(c) return redis.call('HGET', KEYS[1], c) or 'offline' end

-- accrue adds the time spent in a state to per-day totals, split at UTC midnight.
local function accrue(c, st, why, since)
  if st == 'offline' or not since then return end
  local field = c .. ':online'
  if st == 'paused' then field = c .. ':paused:' .. why end
  local s = since
  while s < now do
    local day = math.floor(s / 86400000)
    local e = math.min((day + 1) * 86400000, now)
    local key = prefix .. string.format('%d', day)
    redis.call('HINCRBY', key, field, string.format('%d', e - s))
    redis.call('EXPIRE', key, ttl)
    s = e
  end
end

local changes = {}
local function set(c, to, why)
  local from = state(c)
  local oldWhy = redis.call('HGET', KEYS[1], c .. ':reason') or ''
  if from == to and oldWhy == why then return end
  accrue(c, from, oldWhy, tonumber(redis.call('HGET', KEYS[1], c .. ':since') or ''))
  redis.call('HSET', KEYS[1], c, to, c .. ':since', ARGV[1], c .. ':reason', why)
  redis.call('XADD', KEYS[2], '*', 'channel', c, 'from', from, 'to', to, 'reason', why, 'by', by, 'cause', cause, 'at', ARGV[1])
  table.insert(changes, {c, from, to, why})
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
  for _, c in ipairs(all) do set(c, 'offline', '') end
end

local logged = false
for _, c in ipairs(all) do
  if state(c) ~= 'offline' then logged = true end
end
if not logged then redis.call('ZREM', KEYS[3], agent) end
if #changes > 0 then redis.call('XTRIM', KEYS[2], 'MINID', '~', minid) end
return {'ok', changes, redis.call('HGETALL', KEYS[1])}
`)

// heartbeatScript refreshes an agent's last-seen time only while it is logged in somewhere, so the
// reaper never sweeps agents that have nothing to log out of.
//
// KEYS[1] seen ZSET; ARGV[1] agent, ARGV[2] now (ms). Returns 1 when refreshed, 0 when not logged in.
var heartbeatScript = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
return 0
`)
