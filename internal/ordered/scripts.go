package ordered

import "github.com/redis/go-redis/v9"

// Every script takes the four keys of one sequence: KEYS[1] items ZSET, KEYS[2] admitted HASH,
// KEYS[3] counter, KEYS[4] lease.

// admitScript numbers an item and puts it at the end of its sequence; admitting it again keeps
// its place. ARGV: 1 member, 2 now ms, 3 idle TTL ms. Returns 1 when the item is the head.
var admitScript = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local n = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[1], n, ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
if redis.call('ZRANGE', KEYS[1], 0, 0)[1] == ARGV[1] then return 1 end
return 0
`)

// claimScript gives the head its turn: the item must be the head and the lease free (or already
// its own). ARGV: 1 member, 2 token, 3 lease ms.
// Returns {"go"} / {"gone"} (not in the sequence) / {"busy", lease ms left} (the head, leased by
// another execution) / {"wait", head, "1" when the head is leased, head's admission ms}.
var claimScript = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {'gone'} end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
local holder = redis.call('GET', KEYS[4])
if head ~= ARGV[1] then
  return {'wait', head, holder and '1' or '0', redis.call('HGET', KEYS[2], head) or '0'}
end
if holder and holder ~= ARGV[2] then return {'busy', tostring(redis.call('PTTL', KEYS[4]))} end
redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[3])
return {'go'}
`)

// renewScript extends the lease while its holder works. ARGV: 1 token, 2 lease ms. Returns 1 if held.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[4]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
  return 1
end
return 0
`)

// releaseScript frees the lease after a failed attempt that will be retried: the item stays head.
// ARGV: 1 token.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return 0
`)

// removeScript takes an item out of its sequence and returns the new head when removing it made one
// ("" otherwise; an emptied sequence leaves no key behind). ARGV: 1 member, 2 mode: "done" (the lease
// holder finished; ARGV[3] its token), "skip" (a lost head: only when it is still the head and
// nobody holds the lease), "cancel" (never enqueued; anywhere in the sequence).
// Returns {"ok", next head or ""} / {"held"} when a skip found the lease taken or the head moved.
var removeScript = redis.NewScript(`
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if ARGV[2] == 'skip' and (head ~= ARGV[1] or redis.call('EXISTS', KEYS[4]) == 1) then return {'held'} end
if ARGV[2] == 'done' and redis.call('GET', KEYS[4]) == ARGV[3] then redis.call('DEL', KEYS[4]) end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if not nxt then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return {'ok', ''}
end
-- only a new head needs waking: waking an item that was already head would cut its retry backoff
if head ~= ARGV[1] then return {'ok', ''} end
return {'ok', nxt}
`)
