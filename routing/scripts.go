package routing

import "github.com/redis/go-redis/v9"

// deliverScript records one inbound message and hands it to routing in one atomic step: dedup by
// provider message id, find or open the conversation, create its card (waiting in the queue) when
// the conversation is new, append the message. It runs for every inbound message, so it makes as few
// calls as it can: seven for a message of a conversation nobody holds, eight when someone does.
//
// KEYS[1] pmsg key of the provider message id
// ARGV: 1 prefix, 2 channel, 3 entry point, 4 contact id, 5 queue, 6 new message id, 7 new conversation id,
// 8 new card id, 9 now ms, 10 kind, 11 text, 12 payload JSON, 13 contact name, 14 contact phone,
// 15 window expiry ms ("" when the channel has none), 16 dedup TTL s, 17 provider message id, 18 message time ms,
// and for the first decision on a new card (offerLua): 19 offer timeout ms, 20 strategy, 21 audit 1|0,
// 22 cards to scan, 23 agents to scan
// Returns {"dup", message id} or {"ok", message id, conversation id, card id, new card id or "", agent,
// card state ("" when no agent holds the card: not read), number of candidate agents in the queue
// (new cards only), the decision ({} when none was tried: no new card, or no candidate)}.
var deliverScript = redis.NewScript(offerLua + `
local existing = redis.call('GET', KEYS[1])
if existing then return {'dup', existing} end
local P = ARGV[1]
local openKey = P .. 'convopen:' .. ARGV[2] .. ':' .. ARGV[3] .. ':' .. ARGV[4]
local conv = redis.call('GET', openKey)
local activity = {'last_customer_message_at', ARGV[18]}
if ARGV[15] ~= '' then
  activity[3], activity[4] = 'window_expires_at', ARGV[15]
end
local card, newCard, agent, cardState, candidates = ARGV[8], '', '', '', 0
if not conv then
  conv = ARGV[7]
  redis.call('HSET', P .. 'conv:' .. conv, 'id', conv, 'channel', ARGV[2], 'entry_point', ARGV[3], 'queue', ARGV[5],
    'contact_id', ARGV[4], 'contact_name', ARGV[13], 'contact_phone', ARGV[14], 'state', 'open', 'agent', '',
    'card', card, 'opened_at', ARGV[9], unpack(activity))
  redis.call('SET', openKey, conv)
  redis.call('HSET', P .. 'card:' .. card, 'id', card, 'conversation_id', conv, 'queue', ARGV[5],
    'channel', ARGV[2], 'state', 'waiting', 'agent', '', 'created_at', ARGV[9], 'preview', ARGV[11])
  redis.call('ZADD', P .. 'waiting:' .. ARGV[5] .. ':' .. ARGV[2], ARGV[9], card)
  newCard, cardState = card, 'waiting'
  candidates = redis.call('ZCARD', P .. 'avail:' .. ARGV[5] .. ':' .. ARGV[2])
else
  local convKey = P .. 'conv:' .. conv
  redis.call('HSET', convKey, unpack(activity))
  local c = redis.call('HMGET', convKey, 'card', 'agent')
  card, agent = c[1], c[2] or ''
  if agent ~= '' then
    cardState = redis.call('HGET', P .. 'card:' .. card, 'state') or ''
  end
end
redis.call('HSET', P .. 'msg:' .. ARGV[6], 'id', ARGV[6], 'conversation_id', conv, 'direction', 'in',
  'channel', ARGV[2], 'provider_message_id', ARGV[17], 'kind', ARGV[10], 'text', ARGV[11], 'payload', ARGV[12], 'at', ARGV[18])
redis.call('RPUSH', P .. 'convmsgs:' .. conv, ARGV[6])
-- Last: a script that failed before this point leaves the id unseen, so the provider's retry records it.
redis.call('SET', KEYS[1], ARGV[6], 'EX', ARGV[16])
local decision = {}
if candidates > 0 then
  local q = P .. 'waiting:' .. ARGV[5] .. ':' .. ARGV[2]
  decision = offer(P, ARGV[2], ARGV[9], ARGV[19], ARGV[20], ARGV[21], ARGV[22], ARGV[23], '0',
    q, P .. 'avail:' .. ARGV[5] .. ':' .. ARGV[2], P .. 'offers')
end
return {'ok', ARGV[6], conv, card, newCard, agent, cardState, tostring(candidates), decision}
`)

// offerLua is one routing decision for a (queue, channel): the first waiting card that some eligible
// agent has not already refused goes to the best such agent by the queue's strategy. Eligibility is
// checked here, atomically with the offer: the agent's presence on the channel is online (read from
// presence's HASH) and its load on the channel is below its capacity. Candidates that fail are
// dropped from the candidate set (they are re-added when they become eligible). offerScript runs it
// alone; deliverScript runs it for a new card in the same step that records it, which saves a new
// conversation a round trip. An offer returns the card and its conversation whole, so the caller
// announces it without reading them again.
//
// The scan is bounded (cards and candidates) so the usual decision is cheap; when it finds nothing
// it says whether it stopped at a bound, and the caller widens it (see Dispatch): a card refused by
// every candidate scanned, or cards behind a head of refused cards, are never left waiting for an
// eligible agent further down.
//
// Arguments: prefix, channel, now ms, offer timeout ms, strategy, audit 1|0, cards to scan, agents to
// scan (0: no bound), index of the first waiting card to scan, and the waiting, avail and offers ZSETs.
// Returns {"empty"} (no waiting card from that index), {"none", more cards 1|0, candidates cut 1|0}
// (no eligible agent for the cards scanned) or {"offered", card, agent, cards still waiting,
// conversation id, card HGETALL, conversation HGETALL}.
const offerLua = `
local function offer(P, ch, nowMs, timeoutMs, strategy, audit, cardsToScan, agentsToScan, firstIndex, waitingKey, availKey, offersKey)
  local now = tonumber(nowMs)
  local first = tonumber(firstIndex)
  local cards = redis.call('ZRANGE', waitingKey, first, first + tonumber(cardsToScan) - 1)
  if #cards == 0 then return {'empty'} end
  local maxScan = tonumber(agentsToScan)
  local cut = false
  -- Candidates are checked one by one in strategy order and only as far as needed (a page of ZRANGE is
  -- fetched ahead, but each member's presence, capacity and load are read only when it is reached): the
  -- cost of a decision does not depend on how many agents are online. Ineligible ones are dropped.
  local checked, eligible, scanned, exhausted = {}, {}, 0, false
  local page, pos = {}, 1
  local function candidate(i)
    while #eligible < i and not exhausted do
      if pos > #page then
        if maxScan > 0 and scanned >= maxScan then
          exhausted, cut = true, true
          break
        end
        page, pos = redis.call('ZRANGE', availKey, scanned, scanned + 7), 1
        if #page == 0 then
          exhausted = true
          break
        end
      end
      local a = page[pos]
      pos = pos + 1
      scanned = scanned + 1
      if not checked[a] then
        checked[a] = true
        local st = redis.call('HGET', P .. 'presence:' .. a, ch)
        local cap = tonumber(redis.call('HGET', P .. 'cap:' .. a, ch) or '0')
        local load = tonumber(redis.call('HGET', P .. 'load:' .. a, ch) or '0')
        if st ~= 'online' or load >= cap then
          redis.call('ZREM', availKey, a)
          scanned = scanned - 1 -- later members moved up one place
        else
          table.insert(eligible, {a, load, cap, st})
        end
      end
    end
    return eligible[i]
  end
  for _, card in ipairs(cards) do
    local tried = P .. 'tried:' .. card
    local i = 1
    while true do
      local e = candidate(i)
      if not e then break end
      local a = e[1]
      if redis.call('SISMEMBER', tried, a) == 0 then
        local cardKey = P .. 'card:' .. card
        local expires = now + tonumber(timeoutMs)
        redis.call('HSET', cardKey, 'state', 'offered', 'agent', a, 'offered_at', nowMs, 'expires_at', string.format('%d', expires))
        redis.call('ZREM', waitingKey, card)
        redis.call('ZADD', offersKey, string.format('%d', expires), card)
        local load = redis.call('HINCRBY', P .. 'load:' .. a, ch, 1)
        redis.call('SADD', P .. 'agentcards:' .. a, card)
        local conv = redis.call('HGET', cardKey, 'conversation_id')
        redis.call('HSET', P .. 'conv:' .. conv, 'agent', a)
        if load >= e[3] then
          redis.call('ZREM', availKey, a)
        elseif strategy == 'least_busy' then
          redis.call('ZADD', availKey, string.format('%d', load * 10000000000000 + now), a) -- leastBusyLoadUnit
        else
          redis.call('ZADD', availKey, nowMs, a)
        end
        if audit == '1' then
          redis.call('RPUSH', P .. 'audit', card .. '|' .. a .. '|' .. e[4] .. '|' .. load .. '|' .. e[3])
        end
        return {'offered', card, a, tostring(redis.call('ZCARD', waitingKey)), conv,
          redis.call('HGETALL', cardKey), redis.call('HGETALL', P .. 'conv:' .. conv)}
      end
      i = i + 1
    end
  end
  local more = '0'
  if redis.call('ZCARD', waitingKey) > first + #cards then more = '1' end
  local c = '0'
  if cut then c = '1' end
  return {'none', more, c}
end
`

// offerScript makes one routing decision (offerLua).
//
// KEYS[1] waiting ZSET, KEYS[2] avail ZSET, KEYS[3] offers ZSET
// ARGV: 1 prefix, 2 channel, 3 now ms, 4 offer timeout ms, 5 strategy, 6 audit 1|0, 7 cards to scan,
// 8 agents to scan (0: no bound), 9 index of the first waiting card to scan
var offerScript = redis.NewScript(offerLua + `
return offer(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], KEYS[1], KEYS[2], KEYS[3])
`)

// acceptScript: an offered card becomes accepted by the agent it was offered to.
//
// KEYS[1] card HASH, KEYS[2] offers ZSET, KEYS[3] the agent's no-answer counter
// ARGV: 1 card id, 2 agent, 3 now ms. Returns {"ok"}, {"not_found"}, {"not_yours"} or {"state", state}.
var acceptScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'not_found'} end
if redis.call('HGET', KEYS[1], 'agent') ~= ARGV[2] then return {'not_yours'} end
if st ~= 'offered' then return {'state', st} end
redis.call('HSET', KEYS[1], 'state', 'accepted', 'accepted_at', ARGV[3], 'expires_at', '')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return {'ok'}
`)

// releaseScript puts an offered card back in line (its old place) after a decline or a timeout; the
// agent is remembered so the card is not offered to it again, and the outcome (declined | timed_out)
// is kept on the card as last_outcome.
//
// KEYS[1] card HASH, KEYS[2] offers ZSET
// ARGV: 1 card id, 2 agent (decline: the caller), 3 now ms, 4 prefix, 5 mode decline|timeout
// Returns {"ok", agent, queue, channel, no-answer count} or {"not_found"} / {"not_yours"} / {"state", s} / {"not_due"}.
var releaseScript = redis.NewScript(`
local P = ARGV[4]
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'not_found'} end
local a = redis.call('HGET', KEYS[1], 'agent')
if ARGV[5] == 'decline' and a ~= ARGV[2] then return {'not_yours'} end
if st ~= 'offered' then return {'state', st} end
if ARGV[5] == 'timeout' and tonumber(redis.call('HGET', KEYS[1], 'expires_at') or '0') > tonumber(ARGV[3]) then
  return {'not_due'}
end
local queue = redis.call('HGET', KEYS[1], 'queue')
local ch = redis.call('HGET', KEYS[1], 'channel')
local outcome = 'timed_out'
if ARGV[5] == 'decline' then outcome = 'declined' end
redis.call('HSET', KEYS[1], 'state', 'waiting', 'agent', '', 'offered_at', '', 'expires_at', '', 'last_outcome', outcome)
redis.call('SADD', P .. 'tried:' .. ARGV[1], a)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', P .. 'waiting:' .. queue .. ':' .. ch, redis.call('HGET', KEYS[1], 'created_at'), ARGV[1])
if tonumber(redis.call('HINCRBY', P .. 'load:' .. a, ch, -1)) < 0 then redis.call('HSET', P .. 'load:' .. a, ch, 0) end
redis.call('SREM', P .. 'agentcards:' .. a, ARGV[1])
redis.call('HSET', P .. 'conv:' .. redis.call('HGET', KEYS[1], 'conversation_id'), 'agent', '')
local n = 0
if ARGV[5] == 'timeout' then n = redis.call('INCR', P .. 'noanswer:' .. a) end
return {'ok', a, queue, ch, n}
`)

// closeScript closes a card and its conversation and frees the agent's slot.
//
// KEYS[1] card HASH, KEYS[2] offers ZSET
// ARGV: 1 card id, 2 agent, 3 now ms, 4 prefix, 5 force 1|0 (a supervisor may close any card)
// Returns {"ok", agent, queue, channel, conversation id} or {"not_found"} / {"not_yours"} / {"state", s}.
var closeScript = redis.NewScript(`
local P = ARGV[4]
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'not_found'} end
local a = redis.call('HGET', KEYS[1], 'agent')
if ARGV[5] ~= '1' and a ~= ARGV[2] then return {'not_yours'} end
if st == 'closed' then return {'state', st} end
if ARGV[5] ~= '1' and st ~= 'accepted' then return {'state', st} end
local queue = redis.call('HGET', KEYS[1], 'queue')
local ch = redis.call('HGET', KEYS[1], 'channel')
local conv = redis.call('HGET', KEYS[1], 'conversation_id')
local convKey = P .. 'conv:' .. conv
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', ARGV[3], 'expires_at', '')
redis.call('HSET', convKey, 'state', 'closed', 'closed_at', ARGV[3])
local c = redis.call('HMGET', convKey, 'channel', 'entry_point', 'contact_id')
local openKey = P .. 'convopen:' .. c[1] .. ':' .. c[2] .. ':' .. c[3]
if redis.call('GET', openKey) == conv then redis.call('DEL', openKey) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', P .. 'waiting:' .. queue .. ':' .. ch, ARGV[1])
if a and a ~= '' then
  if tonumber(redis.call('HINCRBY', P .. 'load:' .. a, ch, -1)) < 0 then redis.call('HSET', P .. 'load:' .. a, ch, 0) end
  redis.call('SREM', P .. 'agentcards:' .. a, ARGV[1])
end
return {'ok', a or '', queue, ch, conv}
`)

// requeueScript gives back an agent's cards on one channel (the agent logged out): each goes to the
// front of its queue, keeping their relative order, and the agent's load on the channel is zero.
//
// KEYS[1] the agent's cards SET, KEYS[2] offers ZSET, KEYS[3] the agent's load HASH
// ARGV: 1 agent, 2 channel, 3 prefix. Returns {{card, previous state, queue}, …}.
var requeueScript = redis.NewScript(`
local P, ch = ARGV[3], ARGV[2]
local out = {}
for _, card in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local cardKey = P .. 'card:' .. card
  if redis.call('HGET', cardKey, 'channel') == ch then
    local st = redis.call('HGET', cardKey, 'state')
    local queue = redis.call('HGET', cardKey, 'queue')
    if st == 'offered' or st == 'accepted' then
      redis.call('HSET', cardKey, 'state', 'waiting', 'agent', '', 'offered_at', '', 'expires_at', '', 'last_outcome', 'requeued')
      redis.call('ZADD', P .. 'waiting:' .. queue .. ':' .. ch,
        string.format('%d', tonumber(redis.call('HGET', cardKey, 'created_at')) - 10000000000000), card)
      redis.call('HSET', P .. 'conv:' .. redis.call('HGET', cardKey, 'conversation_id'), 'agent', '')
      table.insert(out, {card, st, queue})
    end
    redis.call('ZREM', KEYS[2], card)
    redis.call('SREM', KEYS[1], card)
  end
end
redis.call('HSET', KEYS[3], ch, 0)
return out
`)

// statusScript applies a delivery status to a stored message as a state machine that tolerates the
// provider's out-of-order delivery: queued < sent < delivered < read; failed is final; a late
// delivered never overwrites read, and a failed after read is ignored (read proves delivery).
//
// KEYS[1] message HASH, KEYS[2] pmsg key of the provider message id (written when ARGV[7] is 1)
// ARGV: 1 new status, 2 at ms, 3 provider message id ("" to keep), 4 error code, 5 error title,
// 6 error details, 7 index the provider id 1|0, 8 index TTL s, 9 prefix, 10 error message, 11 error summary
// Returns {"ok", conversation's agent, message fields…} / {"stale", current, message fields…} / {"not_found"}:
// the caller tells the agent without reading anything again.
var statusScript = redis.NewScript(`
local rank = {queued = 1, sent = 2, delivered = 3, read = 4, failed = 5}
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
  cur = 'queued'
end
local new = ARGV[1]
-- failed is final, but for one case: an operator runs an archived send again ("Retry now") whose
-- failure came before the provider accepted it (no provider id): it goes back to queued.
local retry = new == 'queued' and cur == 'failed' and (redis.call('HGET', KEYS[1], 'provider_message_id') or '') == ''
if retry then
  redis.call('HDEL', KEYS[1], 'error_code', 'error_title', 'error_details', 'error_message', 'error_summary')
elseif cur == 'failed' or (cur == 'read' and new == 'failed') or (new ~= 'failed' and rank[new] <= rank[cur]) then
  local out = {'stale', cur}
  for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do table.insert(out, v) end
  return out
end
redis.call('HSET', KEYS[1], 'status', new, 'status_at', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'provider_message_id', ARGV[3]) end
if ARGV[7] == '1' then redis.call('SET', KEYS[2], redis.call('HGET', KEYS[1], 'id'), 'EX', ARGV[8]) end
if new == 'failed' then
  redis.call('HSET', KEYS[1], 'error_code', ARGV[4], 'error_title', ARGV[5], 'error_details', ARGV[6],
    'error_message', ARGV[10], 'error_summary', ARGV[11])
end
local agent = redis.call('HGET', ARGV[9] .. 'conv:' .. (redis.call('HGET', KEYS[1], 'conversation_id') or ''), 'agent') or ''
local out = {'ok', agent}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do table.insert(out, v) end
return out
`)
