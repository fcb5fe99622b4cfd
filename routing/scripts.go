package routing

import "github.com/redis/go-redis/v9"

// contactLua keeps one contact per customer and channel. Every identifier a provider shows
// (phone, business-scoped user id, parent user id, username) has an index key ident:<channel>:<kind>:<value>
// → contact id, and the contact keeps the reverse: contactids:<id> (every "kind:value" indexed to it)
// and, in its HASH, the current value of each kind. The caller passes the index key of every
// identifier of the message as a KEY (it cannot know the contact yet); the contact's own keys and
// its conversations' keys are built here from the prefix, under the same hash tag.
//
// Resolution: the phone and user ids of the message are looked up; none found → a new contact; one →
// it; several → they are the same customer and are merged (mergeContacts). A username is only a
// fallback when the message names the customer by nothing else, and never merges: a username seen
// on another contact is moved to this one (users change usernames; another user may take one later).
// Identifiers shown now are attached (and become the current ones of their kind); identifiers the
// provider says were replaced (a changed number, a new user id) are looked up like the others, then
// detached, so the old number no longer reaches this customer.
const contactLua = `
local contactFields = {'phone', 'bsuid', 'pbsuid', 'username', 'name'}
local function identKind(ident) return string.match(ident, '^([^:]*):') end
local function identValue(ident) return string.sub(ident, #identKind(ident) + 2) end

-- mergeContacts folds several contacts of one customer into one and returns the survivor, chosen
-- deterministically by its open conversation on this entry point: one an agent has accepted, else
-- one offered, else one waiting, else none; among equals the one opened first, then the lower
-- contact id (ids are ULIDs: the lower is the older). The others' identifiers move to the survivor
-- (index keys rewritten, sets joined, current values kept where the survivor has none) and their
-- records are deleted. Their open conversations, on every entry point of the channel, go to the
-- survivor where it has none there. Where both have one, the survivor's goes on; the other, if its
-- card still waits for an agent, is closed (closed_by merged) and its messages are appended to the
-- one that goes on, so one customer is one card; if an agent holds it, it stays open with that agent,
-- no longer reached by new messages (merged_into names the one that is), until it is closed.
local cardRank = {accepted = 3, offered = 2, waiting = 1}
local function mergeContacts(P, ch, entry, entries, list, nowMs)
  local survivor, best = nil, nil
  for _, c in ipairs(list) do
    local score = {0, 0, c}
    local conv = redis.call('GET', P .. 'convopen:' .. ch .. ':' .. entry .. ':' .. c)
    if conv then
      local f = redis.call('HMGET', P .. 'conv:' .. conv, 'card', 'opened_at')
      score = {cardRank[redis.call('HGET', P .. 'card:' .. (f[1] or ''), 'state') or ''] or 1, -tonumber(f[2] or '0'), c}
    end
    if not survivor or score[1] > best[1] or (score[1] == best[1] and (score[2] > best[2] or
        (score[2] == best[2] and c < survivor))) then
      survivor, best = c, score
    end
  end
  local sKey = P .. 'contact:' .. survivor
  for _, c in ipairs(list) do
    if c ~= survivor then
      for _, ident in ipairs(redis.call('SMEMBERS', P .. 'contactids:' .. c)) do
        redis.call('SET', P .. 'ident:' .. ch .. ':' .. ident, survivor)
        redis.call('SADD', P .. 'contactids:' .. survivor, ident)
      end
      local f = redis.call('HMGET', P .. 'contact:' .. c, unpack(contactFields))
      for i, name in ipairs(contactFields) do
        if f[i] and f[i] ~= '' then redis.call('HSETNX', sKey, name, f[i]) end
      end
      for e in string.gmatch(entries, '[^\n]+') do
        local lk = P .. 'convopen:' .. ch .. ':' .. e .. ':' .. c
        local lconv = redis.call('GET', lk)
        if lconv then
          local sk = P .. 'convopen:' .. ch .. ':' .. e .. ':' .. survivor
          local sconv = redis.call('GET', sk)
          local lKey = P .. 'conv:' .. lconv
          if not sconv then
            redis.call('SET', sk, lconv)
            redis.call('HSET', lKey, 'contact_id', survivor)
          else
            local card = redis.call('HGET', lKey, 'card') or ''
            local cKey = P .. 'card:' .. card
            local cs = redis.call('HMGET', cKey, 'state', 'queue')
            if cs[1] == 'waiting' then
              redis.call('HSET', cKey, 'state', 'closed', 'closed_at', nowMs, 'closed_by', 'merged')
              redis.call('ZREM', P .. 'waiting:' .. cs[2] .. ':' .. ch, card)
              redis.call('HSET', lKey, 'contact_id', survivor, 'merged_into', sconv, 'state', 'closed', 'closed_at', nowMs)
              local mk = P .. 'convmsgs:' .. lconv
              for _, m in ipairs(redis.call('LRANGE', mk, 0, -1)) do
                redis.call('HSET', P .. 'msg:' .. m, 'conversation_id', sconv)
                redis.call('RPUSH', P .. 'convmsgs:' .. sconv, m)
              end
              redis.call('DEL', mk)
            else
              redis.call('HSET', lKey, 'contact_id', survivor, 'merged_into', sconv)
            end
          end
          redis.call('DEL', lk)
        end
      end
      redis.call('DEL', P .. 'contact:' .. c, P .. 'contactids:' .. c)
    end
  end
  return survivor
end

-- resolveContact finds, creates or merges the message's contact and brings its identifiers up to
-- date. ids: {key = index KEY, ident = "kind:value", role = 'a' (shown now) | 'd' (replaced)}.
-- Returns the contact id and its current {phone, bsuid, pbsuid, username, name}.
local function resolveContact(P, ch, entry, entries, newContact, nowMs, name, ids)
  local found, list, weak, strong = {}, {}, nil, false
  for _, it in ipairs(ids) do
    it.kind = identKind(it.ident)
    it.cur = redis.call('GET', it.key)
    if it.kind ~= 'username' then strong = true end
    if it.cur then
      if it.kind == 'username' then
        weak = weak or it.cur
      elseif not found[it.cur] then
        found[it.cur] = true
        table.insert(list, it.cur)
      end
    end
  end
  if not strong and weak then list = {weak} end
  local contact
  if #list == 0 then
    contact = newContact
    redis.call('HSET', P .. 'contact:' .. contact, 'id', contact, 'channel', ch, 'created_at', nowMs)
    -- Conversations opened before contacts were keyed by the user id or the number itself: a new
    -- contact takes them over, so an upgrade does not open a second conversation.
    for e in string.gmatch(entries, '[^\n]+') do
      for _, it in ipairs(ids) do
        if it.kind == 'phone' or it.kind == 'bsuid' then
          local old = P .. 'convopen:' .. ch .. ':' .. e .. ':' .. identValue(it.ident)
          local conv = redis.call('GET', old)
          if conv then
            redis.call('SET', P .. 'convopen:' .. ch .. ':' .. e .. ':' .. contact, conv)
            redis.call('HSET', P .. 'conv:' .. conv, 'contact_id', contact)
            redis.call('DEL', old)
          end
        end
      end
    end
  elseif #list == 1 then
    contact = list[1]
  else
    contact = mergeContacts(P, ch, entry, entries, list, nowMs)
  end
  local cKey, setKey = P .. 'contact:' .. contact, P .. 'contactids:' .. contact
  local cur = redis.call('HMGET', cKey, unpack(contactFields))
  local want = {}
  for i, f in ipairs(contactFields) do want[f] = cur[i] or '' end
  local shown = {}
  for _, it in ipairs(ids) do
    if it.role == 'a' then shown[it.ident] = true end
  end
  for _, it in ipairs(ids) do
    if it.role == 'd' and not shown[it.ident] and redis.call('GET', it.key) == contact then
      redis.call('DEL', it.key)
      redis.call('SREM', setKey, it.ident)
      if want[it.kind] == identValue(it.ident) then want[it.kind] = '' end
    end
  end
  for _, it in ipairs(ids) do
    if it.role == 'a' then
      if it.cur ~= contact then
        if it.cur and not found[it.cur] and it.cur ~= list[1] then
          -- a username another contact had: it moves here
          redis.call('SREM', P .. 'contactids:' .. it.cur, it.ident)
          if redis.call('HGET', P .. 'contact:' .. it.cur, it.kind) == identValue(it.ident) then
            redis.call('HDEL', P .. 'contact:' .. it.cur, it.kind)
          end
        end
        redis.call('SET', it.key, contact)
        redis.call('SADD', setKey, it.ident)
      end
      want[it.kind] = identValue(it.ident)
    end
  end
  if name ~= '' then want['name'] = name end
  local set, del = {}, {}
  for i, f in ipairs(contactFields) do
    if want[f] ~= (cur[i] or '') then
      if want[f] == '' then table.insert(del, f) else table.insert(set, f); table.insert(set, want[f]) end
    end
  end
  if #set > 0 then redis.call('HSET', cKey, unpack(set)) end
  if #del > 0 then redis.call('HDEL', cKey, unpack(del)) end
  return contact, want
end
`

// deliverScript records one inbound message and hands it to routing in one atomic step: dedup by
// provider message id, find the contact by any of its identifiers (contactLua), find or open the
// contact's conversation, create its card (waiting in the queue) when the conversation is new,
// append the message. It runs for every inbound message, so it makes as few calls as it can.
//
// The customer service window never moves back: last_customer_message_at and window_expires_at
// take the later of the stored and the message's values, so a redelivered or late message does not
// close a window a newer message opened. A provider's notice (a system message such as a changed
// number) is not the customer writing: it moves identifiers, joins the open conversation as a note,
// and neither opens a conversation nor moves the window; without an open conversation it is kept
// with no conversation.
//
// KEYS[1] pmsg key of the provider message id, KEYS[2..n+1] the index keys of the message's identifiers
// ARGV: 1 prefix, 2 channel, 3 entry point, 4 contact id (channels without identifiers: the contact
// is this id), 5 queue, 6 new message id, 7 new conversation id,
// 8 new card id, 9 now ms, 10 kind, 11 text, 12 payload JSON, 13 contact name, 14 contact phone,
// 15 window expiry ms ("" when the channel has none), 16 dedup TTL s, 17 provider message id, 18 message time ms,
// and for the first decision on a new card (offerLua): 19 offer timeout ms, 20 strategy, 21 audit 1|0,
// 22 cards to scan, 23 agents to scan; 24 the channel's entry points, one a line (for a merge),
// 25 new contact id, 26 notice 1|0, 27 n identifiers, then n pairs: "kind:value", role a|d.
// Returns {"dup", message id} or {"ok", message id, conversation id ("" for a notice without an open
// conversation), card id, new card id or "", agent, card state ("" when no agent holds the card: not
// read), number of candidate agents in the queue (new cards only), the decision ({} when none was
// tried: no new card, or no candidate), contact id}.
var deliverScript = redis.NewScript(offerLua + contactLua + `
local existing = redis.call('GET', KEYS[1])
if existing then return {'dup', existing} end
local P = ARGV[1]
local contact, cf = ARGV[4], {phone = ARGV[14], bsuid = '', username = '', name = ARGV[13]}
local n = tonumber(ARGV[27])
if n > 0 then
  local ids = {}
  for i = 1, n do ids[i] = {key = KEYS[1 + i], ident = ARGV[26 + 2 * i], role = ARGV[27 + 2 * i]} end
  contact, cf = resolveContact(P, ARGV[2], ARGV[3], ARGV[24], ARGV[25], ARGV[9], ARGV[13], ids)
  if cf.phone ~= '' then cf.phone = '+' .. cf.phone end
end
local note = ARGV[26] == '1'
local openKey = P .. 'convopen:' .. ARGV[2] .. ':' .. ARGV[3] .. ':' .. contact
local conv = redis.call('GET', openKey)
local who = {'contact_id', contact, 'contact_phone', cf.phone, 'contact_bsuid', cf.bsuid, 'contact_username', cf.username}
if cf.name ~= '' then who[9], who[10] = 'contact_name', cf.name end
local card, newCard, agent, cardState, candidates = ARGV[8], '', '', '', 0
if not conv and note then
  card, conv = '', ''
elseif not conv then
  conv = ARGV[7]
  local convKey = P .. 'conv:' .. conv
  redis.call('HSET', convKey, 'id', conv, 'channel', ARGV[2], 'entry_point', ARGV[3], 'queue', ARGV[5],
    'contact_name', '', 'state', 'open', 'agent', '', 'card', card, 'opened_at', ARGV[9],
    'last_customer_message_at', ARGV[18], unpack(who))
  if ARGV[15] ~= '' then redis.call('HSET', convKey, 'window_expires_at', ARGV[15]) end
  redis.call('SET', openKey, conv)
  redis.call('HSET', P .. 'card:' .. card, 'id', card, 'conversation_id', conv, 'queue', ARGV[5],
    'channel', ARGV[2], 'state', 'waiting', 'agent', '', 'created_at', ARGV[9], 'preview', ARGV[11])
  redis.call('ZADD', P .. 'waiting:' .. ARGV[5] .. ':' .. ARGV[2], ARGV[9], card)
  newCard, cardState = card, 'waiting'
  candidates = redis.call('ZCARD', P .. 'avail:' .. ARGV[5] .. ':' .. ARGV[2])
else
  local convKey = P .. 'conv:' .. conv
  local c = redis.call('HMGET', convKey, 'card', 'agent', 'last_customer_message_at', 'window_expires_at')
  card, agent = c[1], c[2] or ''
  if not note then
    -- the later of the stored and the message's times: a late message never moves the window back
    if tonumber(c[3] or '0') < tonumber(ARGV[18]) then
      table.insert(who, 'last_customer_message_at'); table.insert(who, ARGV[18])
    end
    if ARGV[15] ~= '' and tonumber(c[4] or '0') < tonumber(ARGV[15]) then
      table.insert(who, 'window_expires_at'); table.insert(who, ARGV[15])
    end
  end
  redis.call('HSET', convKey, unpack(who))
  if agent ~= '' then
    cardState = redis.call('HGET', P .. 'card:' .. card, 'state') or ''
  end
end
redis.call('HSET', P .. 'msg:' .. ARGV[6], 'id', ARGV[6], 'conversation_id', conv, 'direction', 'in',
  'channel', ARGV[2], 'provider_message_id', ARGV[17], 'kind', ARGV[10], 'text', ARGV[11], 'payload', ARGV[12], 'at', ARGV[18])
if conv ~= '' then
  redis.call('RPUSH', P .. 'convmsgs:' .. conv, ARGV[6])
else
  redis.call('HSET', P .. 'msg:' .. ARGV[6], 'contact_id', contact)
end
-- Last: a script that failed before this point leaves the id unseen, so the provider's retry records it.
redis.call('SET', KEYS[1], ARGV[6], 'EX', ARGV[16])
local decision = {}
if candidates > 0 then
  local q = P .. 'waiting:' .. ARGV[5] .. ':' .. ARGV[2]
  decision = offer(P, ARGV[2], ARGV[9], ARGV[19], ARGV[20], ARGV[21], ARGV[22], ARGV[23], '0',
    q, P .. 'avail:' .. ARGV[5] .. ':' .. ARGV[2], P .. 'offers')
end
return {'ok', ARGV[6], conv, card, newCard, agent, cardState, tostring(candidates), decision, contact}
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

// closeScript closes a card and its conversation and frees the agent's slot. Both record who closed
// them (closed_by): the holder, or the supervisor who closed someone else's card.
//
// KEYS[1] card HASH, KEYS[2] offers ZSET
// ARGV: 1 card id, 2 agent (the caller), 3 now ms, 4 prefix, 5 force 1|0 (a supervisor may close any card)
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
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', ARGV[3], 'expires_at', '', 'closed_by', ARGV[2])
redis.call('HSET', convKey, 'state', 'closed', 'closed_at', ARGV[3], 'closed_by', ARGV[2])
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
