package routing

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/luascript"
	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/outbox"
	"github.com/chatgate/chatgate/internal/sse"
)

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
      local convs = tonumber(redis.call('HGET', P .. 'contact:' .. c, 'convs') or '0')
      if convs > 0 then redis.call('HINCRBY', sKey, 'convs', convs) end
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
              outboxEmit(P, nowMs, 'conversation.closed', lconv, 'k', card, 'a', '')
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
-- date. ids: {key = index KEY, ident = "kind:value", role = 'a' (shown now) | 'd' (replaced)}. more()
-- returns the channel's entry points and the id of a new contact: only a new contact or a merge needs them.
-- Returns the contact id, its current {phone, bsuid, pbsuid, username, name}, and true when the
-- contact is new and took over no conversation (it has none open).
local function resolveContact(P, ch, entry, more, nowMs, name, ids)
  local found, list, weak, strong = {}, {}, nil, false
  for i = 1, #ids do
    local it = ids[i]
    it.kind = identKind(it.ident)
    if it.cur == nil then it.cur = redis.call('GET', it.key) end
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
  local contact, created, tookOver
  if #list == 0 then
    local entries, newContact = more()
    contact = newContact
    created = {'id', contact, 'channel', ch, 'created_at', nowMs} -- written below with its identifiers' fields
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
            tookOver = true
          end
        end
      end
    end
  elseif #list == 1 then
    contact = list[1]
  else
    contact = mergeContacts(P, ch, entry, (more()), list, nowMs)
  end
  local cKey, setKey = P .. 'contact:' .. contact, P .. 'contactids:' .. contact
  local cur = created and {} or redis.call('HMGET', cKey, unpack(contactFields))
  local want = {}
  for i, f in ipairs(contactFields) do want[f] = cur[i] or '' end
  local shown = {}
  for i = 1, #ids do
    if ids[i].role == 'a' then shown[ids[i].ident] = true end
  end
  for i = 1, #ids do
    local it = ids[i]
    if it.role == 'd' and not shown[it.ident] and redis.call('GET', it.key) == contact then
      redis.call('DEL', it.key)
      redis.call('SREM', setKey, it.ident)
      if want[it.kind] == identValue(it.ident) then want[it.kind] = '' end
    end
  end
  for i = 1, #ids do
    local it = ids[i]
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
  if created then
    for i = 1, #set do created[#created + 1] = set[i] end
    set = created
  end
  if #set > 0 then redis.call('HSET', cKey, unpack(set)) end
  if #del > 0 then redis.call('HDEL', cKey, unpack(del)) end
  return contact, want, created and not tookOver
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
// It runs for every inbound message, so the usual one (a conversation already open, its customer
// known) reads what it must and writes only what changed: arguments that only a new conversation
// needs travel as one string, unpacked only then (each argument costs Redis a string object and a
// Lua string on every call), and the conversation's contact fields are written only when they differ.
//
// KEYS[1] the message's key (its id derived from the provider's, so the key is the dedup), KEYS[2..n+1]
// the index keys of the message's identifiers
// ARGV: 1 prefix, 2 channel, 3 entry point, 4 contact id (channels without identifiers: the contact
// is this id), 5 new message id, 6 now ms, 7 kind, 8 text, 9 compact payload ("" none; see compact.go),
// 10 contact name, 11 contact phone, 12 window expiry ms ("" when the channel has none), 13 entry point's
// display name (kept on the conversation), 14 provider message id, 15 message time ms, 16 notice 1|0,
// 17 what a new conversation or contact needs, one a line: queue, new conversation id, new card id,
// new contact id, and for the first decision on a new card (offerLua) offer timeout ms, strategy,
// audit 1|0, cards to scan, agents to scan, the agents' event logs' length ("": card.offered is not
// appended here); then the channel's entry points, one a line (for a merge);
// 18.. one per identifier: its role a|d followed by "kind:value".
// Returns "dup\n<message id>", or "ok" and the fields below one a line when no decision was tried (no
// new card, or no candidate: the usual message), else {"ok", message id, conversation id ("" for a
// notice without an open conversation), card id, new card id or "", agent, card state ("" when no agent
// holds the card: not read), number of candidate agents in the queue (new cards only), the decision
// (offerLua's reply, and for a card offered as it was recorded the id of its card.offered after the
// fields, which are then empty), contact id}. parseDeliverReply reads both shapes (and the table of a
// "dup", as older versions of the script answered).
var deliverScript = luascript.New[deliverArgs, deliverReply]("deliver", deliverLua+`
return deliver()
`, parseDeliverReply)

// deliverLua defines deliver(), which records the message of KEYS and A (ARGV as deliverScript takes it).
const deliverLua = localGlobals + outbox.Lua + `
-- Redis runs the script's chunk on every call, and each local function in it is a closure built anew:
-- the helpers only a new conversation, a new contact or a merge needs are defined by library(), on
-- first use, so the usual message builds none of them.
local KEYS, A = KEYS, ARGV
-- what only a new conversation or contact needs, unpacked on first use (fresh(), defined by library())
local queue, newConv, newCardID, newContact, offerTimeout, strategy, audit, cardsToScan, agentsToScan, eventsMaxLen, entries
local candidateList, offerTaken, offer, offeredEvent, sseAppend, resolveContact, fresh
local function library()
  if offer then return end
  fresh = function()
    if queue then return end
    queue, newConv, newCardID, newContact, offerTimeout, strategy, audit, cardsToScan, agentsToScan, eventsMaxLen, entries =
      string.match(A[17], '^([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$')
  end
  candidateList, offerTaken, offer, offeredEvent, sseAppend, resolveContact = (function()
` + sse.AppendLua + offerLua + offeredEventLua + contactLua + `
    return candidateList, offerTaken, offer, offeredEvent, sseAppend, resolveContact
  end)()
end
-- the conversation's contact fields (read by HMGET below in this order)
local whoF = {'contact_id', 'contact_phone', 'contact_bsuid', 'contact_username', 'contact_pbsuid', 'contact_name', 'entry_point_display'}
local function deliver()
queue = nil -- fresh() unpacks this message's
if redis.call('EXISTS', KEYS[1]) == 1 then return 'dup\n' .. A[5] end
local P, ch, entry, nowMs = A[1], A[2], A[3], A[6]
local contact, cf, noConv = A[4], nil, false
local n = #A - 17
-- the usual message names its customer one way (role a: shown now)
local kind, value
if n == 1 then kind, value = string.match(A[18], '^a([^:]*):(.*)$') end
local looked = kind == 'phone' or kind == 'bsuid' or kind == 'pbsuid' or kind == 'username'
local known = looked and redis.call('GET', KEYS[2])
if known then
  -- What resolveContact does for one identifier already indexed to a contact, without its tables: the
  -- identifier becomes the current one of its kind, the name the current name.
  local cur = redis.call('HMGET', P .. 'contact:' .. known, 'phone', 'bsuid', 'pbsuid', 'username', 'name')
  contact = known
  cf = {phone = cur[1] or '', bsuid = cur[2] or '', pbsuid = cur[3] or '', username = cur[4] or '', name = cur[5] or ''}
  local h = {}
  if cf[kind] ~= value then cf[kind] = value; h[1] = kind; h[2] = value end
  if A[10] ~= '' and cf.name ~= A[10] then cf.name = A[10]; h[#h + 1] = 'name'; h[#h + 1] = A[10] end
  if #h > 0 then redis.call('HSET', P .. 'contact:' .. known, unpack(h)) end
  if cf.phone ~= '' then cf.phone = '+' .. cf.phone end
elseif n > 0 then
  local ids = {}
  for i = 1, n do
    local v = A[17 + i]
    ids[i] = {key = KEYS[1 + i], ident = string.sub(v, 2), role = string.sub(v, 1, 1)}
  end
  if looked then ids[1].cur = known end -- looked up above: not indexed yet
  library()
  contact, cf, noConv = resolveContact(P, ch, entry, function() fresh(); return entries, newContact end, nowMs, A[10], ids)
  if cf.phone ~= '' then cf.phone = '+' .. cf.phone end
end
cf = cf or {phone = A[11], bsuid = '', pbsuid = '', username = '', name = A[10]}
local note = A[16] == '1'
local openKey = P .. 'convopen:' .. ch .. ':' .. entry .. ':' .. contact
local conv = not noConv and redis.call('GET', openKey) -- a new contact has none
-- the conversation's contact fields; name and display only when the message has them, none empty
local whoV = {contact, cf.phone, cf.bsuid, cf.username, cf.pbsuid, cf.name, A[13]}
local card, newCard, agent, cardState, candidates = '', '', '', '', 0
-- a new card offered directly: the candidates scanned, the one picked, the offer's deadline
local direct, pick, expires
if not conv and note then
  card, conv = '', ''
elseif not conv then
  library()
  fresh()
  conv, card = newConv, newCardID
  local convKey = P .. 'conv:' .. conv
  candidates = redis.call('ZCARD', P .. 'avail:' .. queue .. ':' .. ch)
  -- A new card is offered as it is recorded, without passing through the waiting line, when no card
  -- waits in its queue (an older one would come first: offer() below takes the line's head).
  if candidates > 0 and redis.call('EXISTS', P .. 'waiting:' .. queue .. ':' .. ch) == 0 then
    direct = candidateList(P, ch, tonumber(nowMs), tonumber(agentsToScan), P .. 'avail:' .. queue .. ':' .. ch)
    pick = direct.get(1)
  end
  local h = {'id', conv, 'channel', ch, 'entry_point', entry, 'queue', queue, 'state', 'open', 'agent', pick and pick[1] or '',
    'card', card, 'opened_at', nowMs, 'last_customer_message_at', A[15]}
  for i = 1, 7 do
    -- an empty field is not written: every reader takes a missing one for empty
    if whoV[i] ~= '' then h[#h + 1] = whoF[i]; h[#h + 1] = whoV[i] end
  end
  if A[12] ~= '' then h[#h + 1] = 'window_expires_at'; h[#h + 1] = A[12] end
  local c = {'id', card, 'conversation_id', conv, 'queue', queue, 'channel', ch, 'state', 'waiting', 'agent', '', 'created_at', nowMs, 'preview', A[8]}
  if pick then
    -- what offer() writes on the card and the conversation, written with them
    expires = tonumber(nowMs) + tonumber(offerTimeout)
    c[10], c[12] = 'offered', pick[1]
    c[#c + 1] = 'offered_at'; c[#c + 1] = nowMs; c[#c + 1] = 'expires_at'; c[#c + 1] = string.format('%d', expires)
    -- reports: the conversation's offers (reportLua)
    h[#h + 1] = 'first_offered_at'; h[#h + 1] = nowMs; h[#h + 1] = 'offers'; h[#h + 1] = '1'
  end
  redis.call('HSET', convKey, unpack(h))
  redis.call('SET', openKey, conv)
  -- retention looks at every conversation (retention.go); the contact counts its conversations
  redis.call('ZADD', P .. 'retention', nowMs, conv)
  if n > 0 then redis.call('HINCRBY', P .. 'contact:' .. contact, 'convs', 1) end
  redis.call('HSET', P .. 'card:' .. card, unpack(c))
  if not pick then redis.call('ZADD', P .. 'waiting:' .. queue .. ':' .. ch, nowMs, card) end
  newCard, cardState = card, 'waiting'
else
  local convKey = P .. 'conv:' .. conv
  local c = redis.call('HMGET', convKey, 'card', 'agent', 'last_customer_message_at', 'window_expires_at', 'contact_id',
    'contact_phone', 'contact_bsuid', 'contact_username', 'contact_pbsuid', 'contact_name', 'entry_point_display')
  card, agent = c[1], c[2] or ''
  -- only the fields that differ: rewriting equal values costs Redis a search and a copy each
  local h = {}
  for i = 1, 7 do
    local v = whoV[i]
    if (i < 6 or v ~= '') and (c[4 + i] or '') ~= v then h[#h + 1] = whoF[i]; h[#h + 1] = v end
  end
  if not note then
    -- the later of the stored and the message's times: a late message never moves the window back.
    -- ms numerals of one length compare as strings (every time from 2001 to 2286 has 13 digits).
    local s, t = c[3], A[15]
    if not s or (#s == #t and s < t) or (#s ~= #t and tonumber(s) < tonumber(t)) then
      h[#h + 1] = 'last_customer_message_at'; h[#h + 1] = A[15]
    end
    s, t = c[4], A[12]
    if t ~= '' and (not s or (#s == #t and s < t) or (#s ~= #t and tonumber(s) < tonumber(t))) then
      h[#h + 1] = 'window_expires_at'; h[#h + 1] = A[12]
    end
  end
  if #h > 0 then redis.call('HSET', convKey, unpack(h)) end
  if agent ~= '' then
    cardState = redis.call('HGET', P .. 'card:' .. card, 'state') or ''
  end
end
if conv ~= '' then redis.call('RPUSH', P .. 'convmsgs:' .. conv, A[5]) end
-- The message last (compact: no id field, no dedup key, see compact.go): its key is what recognises a
-- redelivery, so a script that failed before this point leaves the id unseen and the retry records it.
local m = {'conversation_id', conv, 'direction', 'in', 'channel', ch, 'provider_message_id', A[14],
  'kind', A[7], 'at', A[15]}
-- values over 64 bytes are cut in 64-byte pieces (text, text~1, text~2…): Redis keeps a HASH whose values
-- are all that short in its listpack encoding, less than half the size (messageFrom joins them)
for j = 8, 9 do
  local v = A[j]
  if v ~= '' then
    local name = j == 8 and 'text' or 'x'
    m[#m + 1] = name; m[#m + 1] = string.sub(v, 1, 64)
    for i = 65, #v, 64 do m[#m + 1] = name .. '~' .. ((i - 1) / 64); m[#m + 1] = string.sub(v, i, i + 63) end
  end
end
if conv == '' then m[#m + 1] = 'contact_id'; m[#m + 1] = contact end
redis.call('HSET', KEYS[1], unpack(m))
if conv ~= '' then
  if newCard ~= '' then outboxEmit(P, nowMs, 'conversation.opened', conv) end
  outboxEmit(P, nowMs, 'message.received', conv, 'm', A[5])
end
-- the usual reply is one string (a table reply costs Redis a conversion per element); a decision
-- keeps the table
if not pick and not direct and candidates == 0 then
  return 'ok\n' .. A[5] .. '\n' .. conv .. '\n' .. card .. '\n' .. newCard .. '\n' .. agent .. '\n' .. cardState .. '\n0\n' .. contact
end
local decision = {}
if pick then
  local a = pick[1]
  offerTaken(P, ch, tonumber(nowMs), nowMs, expires, strategy, audit, card, conv, pick, P .. 'avail:' .. queue .. ':' .. ch, P .. 'offers')
  -- card.offered on the agent's event log, in this step, when the caller's publisher allows it and
  -- the event can be written here as Go would; else the caller publishes it from the fields
  local ev = eventsMaxLen ~= '' and offeredEvent(nowMs, card, conv, queue, ch, a, A[8], expires, contact, cf, A[12])
  if ev then
    decision = {'offered', card, a, '0', conv, {}, {}, sseAppend(P .. 'events:' .. a, eventsMaxLen, 'card.offered', ev, P .. 'events', a, '0')}
  else
    decision = {'offered', card, a, '0', conv, redis.call('HGETALL', P .. 'card:' .. card), redis.call('HGETALL', P .. 'conv:' .. conv)}
  end
elseif direct then
  -- no eligible candidate for the only card: what offer() would have found
  local c = '0'
  if direct.cut then c = '1' end
  decision = {'none', '0', c}
elseif candidates > 0 then
  local q = P .. 'waiting:' .. queue .. ':' .. ch
  decision = offer(P, ch, nowMs, offerTimeout, strategy, audit, cardsToScan, agentsToScan, '0', '0',
    q, P .. 'avail:' .. queue .. ':' .. ch, P .. 'offers')
end
return {'ok', A[5], conv, card, newCard, agent, cardState, tostring(candidates), decision, contact}
end
`

// deliverBatchScript records several messages of one tenant in one call, each as deliverScript would
// (the intake batcher sends it the messages queued together): Redis parses one command, finds one
// script and sets up its chunk and library() once for all of them. A message whose step fails fails
// alone, as its own call would (what it wrote before the error stays, as then), with Redis's error and
// the others go on; a batch never spans two tenants (the batcher groups calls by prefix; on Redis
// Cluster one tenant is one hash slot).
//
// KEYS: each message's deliverScript KEYS, one message after the other. ARGV: 1 number of messages,
// then for each its number of KEYS, its number of ARGV and its deliverScript ARGV.
// Returns one reply per message, in order: deliverScript's reply, or an error reply.
var deliverBatchScript = redis.NewScript(deliverLua + `
local keys, argv, out, ki, ai, lastP = KEYS, ARGV, {}, 0, 2, nil
local pcall, type = pcall, type
for i = 1, tonumber(argv[1]) do
  local nk, na = tonumber(argv[ai]), tonumber(argv[ai + 1])
  ai = ai + 2
  KEYS, A = {unpack(keys, ki + 1, ki + nk)}, {unpack(argv, ai, ai + na - 1)}
  ki, ai = ki + nk, ai + na
  -- outboxEmit asks for its flag once per tenant
  if A[1] ~= lastP then outboxOn, lastP = nil, A[1] end
  local ok, r = pcall(deliver)
  if not ok then
    -- as Redis would have answered the message's own call: redis.call's error keeps its code (pcall
    -- gives its text), a Lua error ("user_script:<line>: …") is an ERR
    if type(r) == 'table' and r.err then r = r.err end
    r = tostring(r)
    if not string.find(r, '^%u+ ') then r = 'ERR ' .. r end
    r = {err = r .. ' script: deliver batch, on @user_script.'}
  end
  out[i] = r
end
return out
`)

// deliverMulti batches deliverScript's calls by tenant: one tenant's keys share one hash slot.
var deliverMulti = &multiScript[deliverArgs]{lua: deliverBatchScript, group: func(a deliverArgs) string { return a.keys.prefix() }}

// localGlobals makes the globals a script uses locals of its chunk: a global is a table lookup on
// each use, a local (an upvalue in functions) an index; the intake script makes hundreds.
const localGlobals = `
local redis, string, table, math, tonumber, tostring, ipairs, unpack = redis, string, table, math, tonumber, tostring, ipairs, unpack
`

// deliverArgs is one inbound message for deliverScript.
type deliverArgs struct {
	keys                              keys
	channel, entryPoint, queue        string
	sender, providerMessageID         string // the dedup key's parts
	contactID, newContactID           string
	messageID, conversationID, cardID string
	now, at                           int64 // ms
	kind, text, payload               string
	contactName, contactPhone         string
	windowExpires                     string // ms; "" when the channel has no window
	entryDisplay                      string // the entry point's display name, kept on the conversation
	offerTimeout                      int64  // ms
	strategy                          string
	audit, notice                     bool
	cardsToScan, agentsToScan         int
	eventsMaxLen                      int64  // > 0: a card offered as it is recorded has its card.offered appended here (Router.offeredLog)
	entries                           string // the channel's entry points, one a line
	identifiers, replaced             []Identifier
}

// KeysAndArgv lays the message out; empty, oversized or repeated identifiers are left out.
func (a deliverArgs) KeysAndArgv() ([]string, []any) {
	n := len(a.identifiers) + len(a.replaced)
	keys := make([]string, 1, 1+n)
	keys[0] = a.keys.msg(a.messageID)
	argv := make([]any, 17, 17+n)
	var kept [8]Identifier // a message names its customer a few ways: no map for the repeats
	seen := kept[:0]
	add := func(ids []Identifier, role string) {
		for _, id := range ids {
			if id.Kind == "" || id.Value == "" || len(id.Value) > maxIdentifierLen || slices.Contains(seen, id) {
				continue
			}
			seen = append(seen, id)
			keys = append(keys, a.keys.ident(a.channel, id))
			argv = append(argv, role+id.Kind+":"+id.Value)
		}
	}
	add(a.identifiers, "a")
	add(a.replaced, "d")
	maxLen := ""
	if a.eventsMaxLen > 0 {
		maxLen = strconv.FormatInt(a.eventsMaxLen, 10)
	}
	fresh := strings.Join([]string{a.queue, a.conversationID, a.cardID, a.newContactID, strconv.FormatInt(a.offerTimeout, 10),
		a.strategy, luascript.Flag(a.audit), strconv.Itoa(a.cardsToScan), strconv.Itoa(a.agentsToScan), maxLen, a.entries}, "\n")
	copy(argv, []any{a.keys.prefix(), a.channel, a.entryPoint, a.contactID, a.messageID, a.now, a.kind, a.text, a.payload,
		a.contactName, a.contactPhone, a.windowExpires, a.entryDisplay, a.providerMessageID, a.at, luascript.Flag(a.notice), fresh})
	return keys, argv
}

// deliverReply is what deliverScript recorded.
type deliverReply struct {
	duplicate      bool // a redelivery: messageID is the one recorded the first time
	messageID      string
	conversationID string // "" for a notice without an open conversation
	cardID         string
	newCardID      string // the card, when this message opened its conversation
	agent          string // the conversation's agent, if any
	cardState      string // read only when an agent holds the card
	candidates     int64  // agents in the candidate set (new cards only)
	decision       decision
	contactID      string
}

func parseDeliverReply(v any) (deliverReply, error) {
	if s, ok := v.(string); ok {
		// ok, message, conversation, card, new card, agent, card state, candidates, contact: the contact
		// id last and left whole, as it comes from the channel and may hold a line break
		var f [9]string
		n := 0
		for n < 8 {
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				break
			}
			f[n], s = s[:i], s[i+1:]
			n++
		}
		f[n] = s
		switch {
		case n == 1 && f[0] == "dup":
			return deliverReply{duplicate: true, messageID: f[1]}, nil
		case n == 8 && f[0] == "ok":
			c, err := strconv.ParseInt(f[7], 10, 64)
			if err != nil {
				return deliverReply{}, fmt.Errorf("%w: candidates %q", luascript.ErrReply, f[7])
			}
			return deliverReply{messageID: f[1], conversationID: f[2], cardID: f[3], newCardID: f[4], agent: f[5],
				cardState: f[6], candidates: c, contactID: f[8]}, nil
		}
		return deliverReply{}, luascript.UnexpectedCode(f[0])
	}
	a, code, err := luascript.Coded(v)
	if err != nil {
		return deliverReply{}, err
	}
	switch code {
	case "dup":
		return deliverReply{duplicate: true, messageID: a.Str(1)}, nil
	case "ok":
		return deliverReply{messageID: a.Str(1), conversationID: a.Str(2), cardID: a.Str(3), newCardID: a.Str(4),
			agent: a.Str(5), cardState: a.Str(6), candidates: a.Int(7), decision: parseDecision(a.Array(8)), contactID: a.Str(9)}, nil
	}
	return deliverReply{}, luascript.UnexpectedCode(code)
}

// offerLua is one routing decision for a (queue, channel): the first waiting card that some eligible
// agent may take goes to the best such agent by the queue's strategy. An agent may take a card it
// never refused; one it refused (declined or let time out: the card's refused ZSET) only once the
// queue's reoffer_after has passed since, and only when no eligible agent is left that never refused
// it — then the one that refused it longest ago gets it, so no customer is stranded. Eligibility is
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
// scan (0: no bound), index of the first waiting card to scan, re-offer delay ms (0: never), and the
// waiting, avail and offers ZSETs.
// Returns {"empty"} (no waiting card from that index), {"none", more cards 1|0, candidates cut 1|0}
// (no eligible agent for the cards scanned) or {"offered", card, agent, cards still waiting,
// conversation id, card HGETALL, conversation HGETALL}.
const offerLua = `
-- candidateList: the queue's candidates in strategy order, checked one by one and only as far as
-- needed (a page of ZRANGE is fetched ahead, but each member's presence, capacity and load are read
-- only when it is reached): the cost of a decision does not depend on how many agents are online.
-- Ineligible ones are dropped from the set. get(i) is the i-th eligible one {agent, load, cap, state}
-- or nil; cut says the scan stopped at maxScan (0: no bound).
local function candidateList(P, ch, now, maxScan, availKey)
  local cl = {cut = false}
  local checked, eligible, scanned, exhausted = {}, {}, 0, false
  local page, pos = {}, 1
  function cl.get(i)
    while #eligible < i and not exhausted do
      if pos > #page then
        if maxScan > 0 and scanned >= maxScan then
          exhausted, cl.cut = true, true
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
        -- floor: an agent in wrap-up on the channel takes no offer there (floorscripts.go)
        local pr = redis.call('HMGET', P .. 'presence:' .. a, ch, ch .. ':wrap_up_until')
        local st, wrapUntil = pr[1], tonumber(pr[2] or '0')
        local cap = tonumber(redis.call('HGET', P .. 'cap:' .. a, ch) or '0')
        local load = tonumber(redis.call('HGET', P .. 'load:' .. a, ch) or '0')
        if st ~= 'online' or load >= cap or wrapUntil > now then
          redis.call('ZREM', availKey, a)
          scanned = scanned - 1 -- later members moved up one place
        else
          table.insert(eligible, {a, load, cap, st})
        end
      end
    end
    return eligible[i]
  end
  return cl
end

-- offerTaken: what an offer of card (of conversation conv) to candidate e changes besides the card's
-- and the conversation's own fields: the offers' deadlines, the agent's load and cards, its place
-- among the candidates, the audit and the outbox.
local function offerTaken(P, ch, now, nowMs, expires, strategy, audit, card, conv, e, availKey, offersKey)
  local a = e[1]
  redis.call('ZADD', offersKey, string.format('%d', expires), card)
  local load = redis.call('HINCRBY', P .. 'load:' .. a, ch, 1)
  redis.call('SADD', P .. 'agentcards:' .. a, card)
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
  outboxEmit(P, nowMs, 'card.offered', conv, 'k', card, 'a', a)
end

local function offer(P, ch, nowMs, timeoutMs, strategy, audit, cardsToScan, agentsToScan, firstIndex, reofferMs, waitingKey, availKey, offersKey)
  local now = tonumber(nowMs)
  local reoffer = tonumber(reofferMs)
  local first = tonumber(firstIndex)
  local cards = redis.call('ZRANGE', waitingKey, first, first + tonumber(cardsToScan) - 1)
  if #cards == 0 then return {'empty'} end
  local cl = candidateList(P, ch, now, tonumber(agentsToScan), availKey)
  for _, card in ipairs(cards) do
    local refused = P .. 'refused:' .. card
    -- pick: the first candidate that never refused the card; failing that, among those whose
    -- refusal is reoffer_after old, the one that refused it longest ago.
    local pick, oldest = nil, nil
    local i = 1
    while true do
      local e = cl.get(i)
      if not e then break end
      local at = redis.call('ZSCORE', refused, e[1])
      if not at then
        pick = e
        break
      end
      at = tonumber(at)
      if reoffer > 0 and at + reoffer <= now and (not oldest or at < oldest) then pick, oldest = e, at end
      i = i + 1
    end
    if pick then
      local a = pick[1]
      local cardKey = P .. 'card:' .. card
      local expires = now + tonumber(timeoutMs)
      redis.call('HSET', cardKey, 'state', 'offered', 'agent', a, 'offered_at', nowMs, 'expires_at', string.format('%d', expires))
      redis.call('ZREM', waitingKey, card)
      local conv = redis.call('HGET', cardKey, 'conversation_id')
      redis.call('HSET', P .. 'conv:' .. conv, 'agent', a)
      -- reports: the conversation's offers (reportLua)
      redis.call('HSETNX', P .. 'conv:' .. conv, 'first_offered_at', nowMs)
      redis.call('HINCRBY', P .. 'conv:' .. conv, 'offers', 1)
      offerTaken(P, ch, now, nowMs, expires, strategy, audit, card, conv, pick, availKey, offersKey)
      return {'offered', card, a, tostring(redis.call('ZCARD', waitingKey)), conv,
        redis.call('HGETALL', cardKey), redis.call('HGETALL', P .. 'conv:' .. conv)}
    end
  end
  local more = '0'
  if redis.call('ZCARD', waitingKey) > first + #cards then more = '1' end
  local c = '0'
  if cl.cut then c = '1' end
  return {'none', more, c}
end
`

// offeredEventLua defines offeredEvent(...): the card.offered event of a card offered as it was
// recorded (deliverScript), as JSON byte for byte as Go marshals that Event (Card from the card's and
// the conversation's fields, at: the offer's time), so the intake appends it in the same step as the
// offer instead of a second round trip. It returns nil when a string would need an escape Go writes
// its own way (control characters other than \n \r \t, invalid UTF-8, U+2028/U+2029): the caller
// then publishes from Go.
const offeredEventLua = `
local function jsonString(s)
  if not string.find(s, '[%z\1-\31"\\<>&\128-\255]') then return s end
  if string.find(s, '[%z\1-\8\11\12\14-\31]') or string.find(s, '\226\128[\168\169]') then return nil end
  -- (the tables are built here, not on every call of the script)
  if string.find(s, '[\128-\255]') then
    -- every valid sequence becomes an ASCII byte (so no two pieces join); a byte left above 127 is invalid
    local rest = s
    for _, seq in ipairs({'[\194-\223][\128-\191]', '\224[\160-\191][\128-\191]', '[\225-\236][\128-\191][\128-\191]',
        '\237[\128-\159][\128-\191]', '[\238-\239][\128-\191][\128-\191]', '\240[\144-\191][\128-\191][\128-\191]',
        '[\241-\243][\128-\191][\128-\191][\128-\191]', '\244[\128-\143][\128-\191][\128-\191]'}) do
      rest = string.gsub(rest, seq, 'x')
    end
    if string.find(rest, '[\128-\255]') then return nil end
  end
  return (string.gsub(s, '["\\\n\r\t<>&]', {['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r',
    ['\t'] = '\\t', ['<'] = '\\u003c', ['>'] = '\\u003e', ['&'] = '\\u0026'}))
end
-- jsonTime: ms since the epoch as Go's time.Time marshals in UTC (RFC 3339, trailing zeros of the
-- fraction dropped); days to the civil date by H. Hinnant's algorithm
local function jsonTime(ms)
  ms = tonumber(ms)
  local s = math.floor(ms / 1000)
  local frac = ms - s * 1000
  local z = math.floor(s / 86400)
  local secs = s - z * 86400
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  local t = string.format('%04d-%02d-%02dT%02d:%02d:%02d', y, m, d, math.floor(secs / 3600), math.floor(secs / 60) % 60, secs % 60)
  if frac > 0 then t = t .. (string.gsub(string.format('.%03d', frac), '0+$', '')) end
  return t .. 'Z'
end
-- offeredEvent: card, conversation, queue, channel, agent, contact are the new card's; preview its text
-- (cut at previewLength bytes, as cardWithConversation does); cf the conversation's contact fields;
-- window the conversation's window expiry ms or ''.
local function offeredEvent(nowMs, card, conv, queue, ch, agent, preview, expires, contact, cf, window)
  local q, c, a, k = jsonString(queue), jsonString(ch), jsonString(agent), jsonString(contact)
  if not (q and c and a and k) then return nil end
  local at = jsonTime(nowMs)
  -- card and conv are ULIDs: nothing to escape
  local j = {'{"type":"card.offered","at":"', at, '","card":{"id":"', card, '","conversation_id":"', conv,
    '","queue":"', q, '","channel":"', c, '","state":"offered","agent":"', a, '"'}
  if preview ~= '' then
    local p = jsonString(string.sub(preview, 1, 140)) -- previewLength
    if not p then return nil end
    j[#j + 1] = ',"preview":"'; j[#j + 1] = p; j[#j + 1] = '"'
  end
  j[#j + 1] = ',"created_at":"'; j[#j + 1] = at; j[#j + 1] = '","offered_at":"'; j[#j + 1] = at
  j[#j + 1] = '","expires_at":"'; j[#j + 1] = jsonTime(expires); j[#j + 1] = '","contact":{"id":"'; j[#j + 1] = k
  j[#j + 1] = '"'
  for _, f in ipairs({{'name', cf.name}, {'phone', cf.phone}, {'user_id', cf.bsuid}, {'username', cf.username}}) do
    if f[2] ~= '' then
      local v = jsonString(f[2])
      if not v then return nil end
      j[#j + 1] = ',"' .. f[1] .. '":"'; j[#j + 1] = v; j[#j + 1] = '"'
    end
  end
  j[#j + 1] = '}'
  if window ~= '' then j[#j + 1] = ',"window_expires_at":"'; j[#j + 1] = jsonTime(window); j[#j + 1] = '"' end
  j[#j + 1] = '}}'
  return table.concat(j)
end
`

// offerScript makes one routing decision (offerLua).
//
// KEYS[1] waiting ZSET, KEYS[2] avail ZSET, KEYS[3] offers ZSET
// ARGV: 1 prefix, 2 channel, 3 now ms, 4 offer timeout ms, 5 strategy, 6 audit 1|0, 7 cards to scan,
// 8 agents to scan (0: no bound), 9 index of the first waiting card to scan, 10 re-offer delay ms (0: never)
var offerScript = luascript.New[offerArgs, decision]("offer", outbox.Lua+offerLua+`
return offer(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], KEYS[1], KEYS[2], KEYS[3])
`, parseOfferReply)

// offerArgs is one routing decision for a (queue, channel).
type offerArgs struct {
	keys                      keys
	queue, channel            string
	now, offerTimeout         int64 // ms
	strategy                  string
	audit                     bool
	cardsToScan, agentsToScan int   // agentsToScan 0: no bound
	from                      int   // index of the first waiting card to scan
	reofferAfter              int64 // ms; 0: a refused card is never offered to that agent again
}

func (a offerArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.waiting(a.queue, a.channel), a.keys.avail(a.queue, a.channel), a.keys.offers()},
		[]any{a.keys.prefix(), a.channel, a.now, a.offerTimeout, a.strategy, luascript.Flag(a.audit), a.cardsToScan, a.agentsToScan, a.from,
			a.reofferAfter}
}

// decision is what offerLua decided.
type decision struct {
	outcome            string // "offered", "none", "empty"; "" when none was made
	card, agent        string
	stillWaiting       bool // offered: cards wait in the queue still
	moreCards, cutScan bool // none: cards beyond those scanned; candidates beyond the bound
	cardFields         map[string]string
	convFields         map[string]string
	eventID            string // offered: card.offered was appended to the agent's log (deliverScript), with this id
}

func parseOfferReply(v any) (decision, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return decision{}, err
	}
	switch code {
	case "offered", "none", "empty":
		return parseDecision(a), nil
	}
	return decision{}, luascript.UnexpectedCode(code)
}

// parseDecision reads offer's reply; an empty one (deliverScript made no decision) is the zero decision.
func parseDecision(a luascript.Array) decision {
	if len(a) == 0 {
		return decision{}
	}
	d := decision{outcome: a.Str(0)}
	switch d.outcome {
	case "offered":
		d.card, d.agent, d.stillWaiting = a.Str(1), a.Str(2), a.Str(3) != "0"
		if len(a) > 6 {
			d.cardFields, d.convFields = a.Fields(5), a.Fields(6)
		}
		if len(a) > 7 {
			d.eventID = a.Str(7)
		}
	case "none":
		d.moreCards, d.cutScan = a.Str(1) == "1", a.Str(2) == "1"
	}
	return d
}

// acceptScript: an offered card becomes accepted by the agent it was offered to.
//
// KEYS[1] card HASH, KEYS[2] offers ZSET, KEYS[3] the agent's no-answer counter
// ARGV: 1 card id, 2 agent, 3 now ms, 4 prefix. Returns {"ok"}, {"not_found"}, {"not_yours"} or {"state", state}.
var acceptScript = luascript.New[acceptArgs, cardReply]("accept", outbox.Lua+`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'not_found'} end
if redis.call('HGET', KEYS[1], 'agent') ~= ARGV[2] then return {'not_yours'} end
if st ~= 'offered' then return {'state', st} end
redis.call('HSET', KEYS[1], 'state', 'accepted', 'accepted_at', ARGV[3], 'expires_at', '')
redis.call('HDEL', KEYS[1], 'transfer_pending') -- floor: a transfer offer, once accepted, is done
-- reports: every agent that accepted the conversation, in order (reportLua)
local convKey = ARGV[4] .. 'conv:' .. redis.call('HGET', KEYS[1], 'conversation_id')
local agents = redis.call('HGET', convKey, 'agents') or ''
if not string.find(',' .. agents .. ',', ',' .. ARGV[2] .. ',', 1, true) then
  if agents ~= '' then agents = agents .. ',' end
  redis.call('HSET', convKey, 'agents', agents .. ARGV[2])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
outboxEmit(ARGV[4], ARGV[3], 'card.accepted', redis.call('HGET', KEYS[1], 'conversation_id'), 'k', ARGV[1], 'a', ARGV[2])
return {'ok'}
`, parseCardReply)

// acceptArgs: agent accepts card.
type acceptArgs struct {
	keys        keys
	card, agent string
	now         int64 // ms
}

func (a acceptArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.card(a.card), a.keys.offers(), a.keys.noAnswer(a.agent)}, []any{a.card, a.agent, a.now, a.keys.prefix()}
}

// cardReply is the answer of a script acting on one card: "ok", or why not (see err).
type cardReply struct {
	code  string
	state string // "state": the card's state
}

func parseCardReply(v any) (cardReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return cardReply{}, err
	}
	return cardReply{code: code, state: a.Str(1)}, nil
}

// err maps a refusal to routing's errors; nil for "ok".
func (c cardReply) err() error {
	switch c.code {
	case "ok":
		return nil
	case "not_found":
		return ErrNotFound
	case "not_yours":
		return ErrNotYours
	case "state":
		return ErrWrongState
	}
	return luascript.UnexpectedCode(c.code)
}

// releaseScript puts an offered card back in line (its old place) after a decline or a timeout; the
// agent and when it refused are remembered (the card's refused ZSET), so the card goes to it again
// only after the queue's reoffer_after, and the outcome (declined | timed_out) is kept on the card as
// last_outcome. The refusal's re-offer time goes in the reoffers ZSET, which the sweeper reads to
// make that decision on time.
//
// KEYS[1] card HASH, KEYS[2] offers ZSET, KEYS[3] the card's refused ZSET, KEYS[4] reoffers ZSET
// ARGV: 1 card id, 2 agent (decline: the caller), 3 now ms, 4 prefix, 5 mode decline|timeout,
// 6 re-offer delay ms (0: never)
// Returns {"ok", agent, queue, channel, no-answer count} or {"not_found"} / {"not_yours"} / {"state", s} / {"not_due"}.
var releaseScript = luascript.New[releaseArgs, releaseReply]("release", outbox.Lua+`
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
redis.call('ZADD', KEYS[3], ARGV[3], a)
if tonumber(ARGV[6]) > 0 then
  redis.call('ZADD', KEYS[4], string.format('%d', tonumber(ARGV[3]) + tonumber(ARGV[6])), ARGV[1] .. '|' .. a)
end
redis.call('ZREM', KEYS[2], ARGV[1])
local place = redis.call('HGET', KEYS[1], 'created_at')
-- floor: a transfer offered to this agent and refused goes first in line in the card's queue
if redis.call('HGET', KEYS[1], 'transfer_pending') == a then
  place = string.format('%d', tonumber(place) - 10000000000000)
end
redis.call('HDEL', KEYS[1], 'transfer_pending')
redis.call('ZADD', P .. 'waiting:' .. queue .. ':' .. ch, place, ARGV[1])
if tonumber(redis.call('HINCRBY', P .. 'load:' .. a, ch, -1)) < 0 then redis.call('HSET', P .. 'load:' .. a, ch, 0) end
redis.call('SREM', P .. 'agentcards:' .. a, ARGV[1])
redis.call('HSET', P .. 'conv:' .. redis.call('HGET', KEYS[1], 'conversation_id'), 'agent', '')
-- reports: the conversation's refusals (reportLua)
local refusals = 'timeouts'
if ARGV[5] == 'decline' then refusals = 'declines' end
redis.call('HINCRBY', P .. 'conv:' .. redis.call('HGET', KEYS[1], 'conversation_id'), refusals, 1)
local n = 0
if ARGV[5] == 'timeout' then n = redis.call('INCR', P .. 'noanswer:' .. a) end
outboxEmit(P, ARGV[3], 'card.' .. outcome, redis.call('HGET', KEYS[1], 'conversation_id'), 'k', ARGV[1], 'a', a)
return {'ok', a, queue, ch, n}
`, parseReleaseReply)

// How an offer ends without being accepted.
const (
	releaseDecline = "decline" // the agent refused it
	releaseTimeout = "timeout" // nobody answered in time (the sweeper)
)

// releaseArgs puts card back in line; agent is the caller of a decline ("" for a timeout).
type releaseArgs struct {
	keys         keys
	card, agent  string
	now          int64  // ms
	mode         string // releaseDecline | releaseTimeout
	reofferAfter int64  // ms; 0: never offered to that agent again
}

func (a releaseArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.card(a.card), a.keys.offers(), a.keys.refused(a.card), a.keys.reoffers()},
		[]any{a.card, a.agent, a.now, a.keys.prefix(), a.mode, a.reofferAfter}
}

// releaseReply: the card's former holder, its queue and channel, and (timeout) the holder's offers
// left to time out in a row; code "not_due" when the offer was renewed meanwhile.
type releaseReply struct {
	cardReply
	holder, queue, channel string
	noAnswer               int64
}

func parseReleaseReply(v any) (releaseReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return releaseReply{}, err
	}
	if code != "ok" {
		return releaseReply{cardReply: cardReply{code: code, state: a.Str(1)}}, nil
	}
	return releaseReply{cardReply: cardReply{code: code}, holder: a.Str(1), queue: a.Str(2), channel: a.Str(3), noAnswer: a.Int(4)}, nil
}

// closeScript closes a card and its conversation and frees the agent's slot. Both record who closed
// them (closed_by): the holder, or the supervisor who closed someone else's card.
//
// KEYS[1] card HASH, KEYS[2] offers ZSET
// ARGV: 1 card id, 2 agent (the caller), 3 now ms, 4 prefix, 5 force 1|0 (a supervisor may close any card),
// 6 wrap-up ms (0: none), 7 disposition ("" none), 8 disposition note,
// 9 report rows' retention s, 10 close reason for the report ("" for an agent's or supervisor's close),
// 11–15 the daily aggregates' arguments (reportAgg; absent: no aggregates)
// Returns {"ok", agent, queue, channel, conversation id, wrap-up until ms or ""} or {"not_found"} / {"not_yours"} / {"state", s}.
var closeScript = luascript.New[closeArgs, closeReply]("close", outbox.Lua+wrapUpLua+reportLua+`
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
-- floor: the disposition, and the holder's wrap-up on the channel in the same step as its slot
-- frees, so no offer slips in between (floorscripts.go ends it)
if (ARGV[7] or '') ~= '' then redis.call('HSET', convKey, 'disposition', ARGV[7], 'disposition_note', ARGV[8]) end
local wrapUntil = ''
if a and a ~= '' and st == 'accepted' and tonumber(ARGV[6] or '0') > 0 then
  wrapUntil = startWrapUp(P, a, ch, tonumber(ARGV[3]), tonumber(ARGV[6]), ARGV[2])
end
local agg = nil
if ARGV[11] then agg = {ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15]} end
reportRow(P, conv, ARGV[1], ARGV[3], ARGV[10] or '', ARGV[9], agg)
outboxEmit(P, ARGV[3], 'conversation.closed', conv, 'k', ARGV[1], 'a', a or '')
return {'ok', a or '', queue, ch, conv, wrapUntil}
`, parseCloseReply)

// closeArgs: agent closes card; force lets a supervisor close any card.
type closeArgs struct {
	keys        keys
	card, agent string
	now         int64 // ms
	force       bool
	// floor: the holder's wrap-up (ms; 0 none) and the disposition recorded on the conversation
	wrapUp                 int64
	disposition, dispoNote string
	// reportRetention (s) keeps the conversation's report row; reason is the close reason reportLua
	// maps to an outcome ("" for an agent's or a supervisor's close).
	reportRetention int64
	reason          string
	agg             []any // Router.reportAgg; nil: no aggregates
}

func (a closeArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.card(a.card), a.keys.offers()}, append([]any{a.card, a.agent, a.now, a.keys.prefix(), luascript.Flag(a.force),
		a.wrapUp, a.disposition, a.dispoNote, a.reportRetention, a.reason}, a.agg...)
}

// closeReply: who held the card ("" nobody), its queue, channel and conversation.
type closeReply struct {
	cardReply
	holder, queue, channel, conversationID string
	wrapUpUntil                            int64 // ms; 0 when no wrap-up began
}

func parseCloseReply(v any) (closeReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return closeReply{}, err
	}
	if code != "ok" {
		return closeReply{cardReply: cardReply{code: code, state: a.Str(1)}}, nil
	}
	return closeReply{cardReply: cardReply{code: code}, holder: a.Str(1), queue: a.Str(2), channel: a.Str(3), conversationID: a.Str(4),
		wrapUpUntil: a.Int(5)}, nil
}

// requeueScript gives back an agent's cards on one channel (the agent logged out): each goes to the
// front of its queue, keeping their relative order, and the agent's load on the channel is zero.
//
// KEYS[1] the agent's cards SET, KEYS[2] offers ZSET, KEYS[3] the agent's load HASH
// ARGV: 1 agent, 2 channel, 3 prefix, 4 now ms. Returns {{card, previous state, queue}, …}.
var requeueScript = luascript.New[requeueArgs, []requeuedCard]("requeue", outbox.Lua+`
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
      outboxEmit(P, ARGV[4], 'card.requeued', redis.call('HGET', cardKey, 'conversation_id'), 'k', card, 'a', ARGV[1])
      table.insert(out, {card, st, queue})
    end
    redis.call('ZREM', KEYS[2], card)
    redis.call('SREM', KEYS[1], card)
  end
end
redis.call('HSET', KEYS[3], ch, 0)
return out
`, parseRequeueReply)

// requeueArgs gives back agent's cards on channel.
type requeueArgs struct {
	keys           keys
	agent, channel string
	now            int64 // ms
}

func (a requeueArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.agentCards(a.agent), a.keys.offers(), a.keys.load(a.agent)}, []any{a.agent, a.channel, a.keys.prefix(), a.now}
}

// requeuedCard is a card requeueScript took from its agent.
type requeuedCard struct {
	card, previousState, queue string
}

func parseRequeueReply(v any) ([]requeuedCard, error) {
	a, err := luascript.AsArray(v)
	if err != nil {
		return nil, err
	}
	out := make([]requeuedCard, 0, len(a))
	for i := range a {
		item := a.Array(i)
		if len(item) != 3 {
			return nil, fmt.Errorf("%w: requeued card %v", luascript.ErrReply, a[i])
		}
		out = append(out, requeuedCard{card: item.Str(0), previousState: item.Str(1), queue: item.Str(2)})
	}
	return out, nil
}

// startScript opens an agent-initiated conversation in one step: the agent must be logged in on the
// channel (online or paused) and below capacity there; the conversation and its card are created
// accepted by the agent and count against its capacity; the first message is recorded queued. The
// customer is the contact the phone number is indexed to (created, and indexed, when there is none),
// so the customer's answer — which may carry the business-scoped user id beside the number — finds
// this conversation. When the contact already has an open conversation on this entry point held by
// the same agent, the message joins it; held by anyone else (or waiting), it is refused and nothing
// is written.
//
// KEYS[1] the index key of the phone (routing's ident key)
// ARGV: 1 prefix, 2 agent, 3 channel, 4 entry point, 5 "phone:<digits>", 6 phone digits, 7 queue,
// 8 new conversation id, 9 new card id, 10 message id, 11 now ms, 12 kind, 13 text, 14 payload, 15 new contact id,
// 16 the agent's configured capacity on the channel, 17 how many of its queues carry the channel, then per
// queue: avail ZSET, waiting ZSET, strategy, queue id; then the admission of the message's send to the
// conversation's sequence, with its asynq task when the script may enqueue it too (ordered.Admission.Args);
// last, "1" when the caller needs the conversation's id only (no fields read back)
// Returns {"ok", conversation id, new 1|0, queues to dispatch, conversation fields (none when the id
// only), 1 when the send heads its sequence, 1 when its task was enqueued} or {"not_logged_in"} /
// {"at_capacity"} / {"taken", conversation id}.
var startScript = luascript.New[startArgs, startReply]("start", outbox.Lua+ordered.AdmitTaskLua+`
local P, agent, ch = ARGV[1], ARGV[2], ARGV[3]
local st = redis.call('HGET', P .. 'presence:' .. agent, ch)
if st ~= 'online' and st ~= 'paused' then return {'not_logged_in'} end
local contact = redis.call('GET', KEYS[1])
local conv
if contact then conv = redis.call('GET', P .. 'convopen:' .. ch .. ':' .. ARGV[4] .. ':' .. contact) end
local new = '0'
local load -- the agent's load on the channel once a new conversation counts
if conv then
  local held = redis.call('HMGET', P .. 'conv:' .. conv, 'agent', 'card')
  if held[1] ~= agent or redis.call('HGET', P .. 'card:' .. held[2], 'state') ~= 'accepted' then return {'taken', conv} end
else
  local cap = tonumber(redis.call('HGET', P .. 'cap:' .. agent, ch) or '0')
  load = tonumber(redis.call('HGET', P .. 'load:' .. agent, ch) or '0')
  if load >= cap then return {'at_capacity'} end
  -- a contact created here has no name or business-scoped ids yet, and counts this conversation
  local cf = {}
  if contact then
    cf = redis.call('HMGET', P .. 'contact:' .. contact, 'bsuid', 'username', 'name')
    redis.call('HINCRBY', P .. 'contact:' .. contact, 'convs', 1)
  else
    contact = ARGV[15]
    redis.call('HSET', P .. 'contact:' .. contact, 'id', contact, 'channel', ch, 'created_at', ARGV[11], 'phone', ARGV[6],
      'convs', 1)
    redis.call('SET', KEYS[1], contact)
    redis.call('SADD', P .. 'contactids:' .. contact, ARGV[5])
  end
  conv, new = ARGV[8], '1'
  redis.call('HSET', P .. 'conv:' .. conv, 'id', conv, 'channel', ch, 'entry_point', ARGV[4], 'queue', ARGV[7],
    'contact_id', contact, 'contact_name', cf[3] or '', 'contact_phone', '+' .. ARGV[6], 'contact_bsuid', cf[1] or '',
    'contact_username', cf[2] or '', 'state', 'open', 'agent', agent,
    'card', ARGV[9], 'opened_at', ARGV[11], 'origin', 'agent')
  redis.call('SET', P .. 'convopen:' .. ch .. ':' .. ARGV[4] .. ':' .. contact, conv)
  redis.call('ZADD', P .. 'retention', ARGV[11], conv)
  redis.call('HSET', P .. 'card:' .. ARGV[9], 'id', ARGV[9], 'conversation_id', conv, 'queue', ARGV[7],
    'channel', ch, 'state', 'accepted', 'agent', agent, 'created_at', ARGV[11], 'offered_at', ARGV[11],
    'accepted_at', ARGV[11], 'preview', ARGV[13])
  load = redis.call('HINCRBY', P .. 'load:' .. agent, ch, 1)
  redis.call('SADD', P .. 'agentcards:' .. agent, ARGV[9])
end
redis.call('HSET', P .. 'msg:' .. ARGV[10], 'id', ARGV[10], 'conversation_id', conv, 'direction', 'out',
  'channel', ch, 'kind', ARGV[12], 'text', ARGV[13], 'payload', ARGV[14], 'at', ARGV[11], 'agent', agent, 'status', 'queued')
redis.call('RPUSH', P .. 'convmsgs:' .. conv, ARGV[10])
if new == '1' then outboxEmit(P, ARGV[11], 'conversation.opened', conv) end
outboxEmit(P, ARGV[11], 'message.sent', conv, 'm', ARGV[10])
-- A new conversation changed the agent's load: still online and below capacity, it is a candidate
-- again in its queues (least_busy scores by load), and the queues where cards wait are named for
-- the caller to dispatch (an empty queue has nothing to offer).
local dispatch = {}
if new == '1' and st == 'online' and load < tonumber(ARGV[16]) then
  local now = tonumber(ARGV[11])
  for i = 0, tonumber(ARGV[17]) - 1 do
    local avail, waiting, strategy = ARGV[18 + 4*i], ARGV[19 + 4*i], ARGV[20 + 4*i]
    if strategy == 'least_busy' then
      redis.call('ZADD', avail, string.format('%.0f', load * 1e13 + now), agent)
    elseif strategy == 'round_robin' then
      redis.call('ZADD', avail, 'NX', now, agent)
    else
      redis.call('ZADD', avail, now, agent)
    end
    if redis.call('EXISTS', waiting) == 1 then table.insert(dispatch, ARGV[21 + 4*i]) end
  end
end
-- the message's send admitted to the conversation's sequence and enqueued (ordered.Admission), in the
-- same step
local head, queued = orderedAdmitAt(ARGV, 18 + 4 * tonumber(ARGV[17]), conv)
local fields = {}
if ARGV[#ARGV] ~= '1' then fields = redis.call('HGETALL', P .. 'conv:' .. conv) end
return {'ok', conv, new, dispatch, fields, head, queued}
`, parseStartReply)

// startArgs opens a conversation from agent's side with its first message.
type startArgs struct {
	keys                              keys
	agent, channel, entryPoint, queue string
	phone                             string // the customer's number, digits only
	conversationID, cardID, messageID string // new ids
	newContactID                      string
	now                               int64 // ms
	kind, text, payload               string
	// capacity is the agent's on the channel; candidateIn its queues of the channel, with their strategy.
	capacity    int
	candidateIn []candidateQueue
	admit       *ordered.Admission
	idOnly      bool // the reply names the conversation without its fields
}

// candidateQueue is one of an agent's queues the start script makes it a candidate in.
type candidateQueue struct{ id, strategy string }

func (a startArgs) KeysAndArgv() ([]string, []any) {
	phone := Identifier{Kind: IdentPhone, Value: a.phone}
	argv := make([]any, 0, 18+4*len(a.candidateIn)+ordered.AdmissionArgs)
	argv = append(argv, a.keys.prefix(), a.agent, a.channel, a.entryPoint, phone.Kind+":"+phone.Value, phone.Value, a.queue,
		a.conversationID, a.cardID, a.messageID, a.now, a.kind, a.text, a.payload, a.newContactID, a.capacity, len(a.candidateIn))
	for _, q := range a.candidateIn {
		argv = append(argv, a.keys.avail(q.id, a.channel), a.keys.waiting(q.id, a.channel), q.strategy, q.id)
	}
	argv = append(argv, a.admit.Args()...)
	argv = append(argv, luascript.Flag(a.idOnly))
	return []string{a.keys.ident(a.channel, phone)}, argv
}

// startReply: "ok" with the conversation (new or joined) and its fields, or a refusal ("taken" names
// the conversation).
type startReply struct {
	code           string
	conversationID string
	opened         bool     // the conversation is new
	dispatch       []string // queues where cards wait, the agent a candidate there again
	convFields     map[string]string
	head           bool // the admitted send heads its sequence
	queued         bool // the script enqueued its task
}

func parseStartReply(v any) (startReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return startReply{}, err
	}
	switch code {
	case "ok", "taken", "not_logged_in", "at_capacity":
		r := startReply{code: code, conversationID: a.Str(1), opened: code == "ok" && a.Str(2) == "1"}
		if code == "ok" {
			for _, q := range a.Array(3) {
				if s, ok := q.(string); ok {
					r.dispatch = append(r.dispatch, s)
				}
			}
			r.convFields = a.Fields(4)
			r.head = a.Int(5) == 1
			r.queued = a.Int(6) == 1
		}
		return r, nil
	}
	return startReply{}, luascript.UnexpectedCode(code)
}

// replyScript records an agent's reply in one step, after checking the conversation is open, held
// by the agent with its card accepted, and — when a window applies — that the customer service
// window is still open.
//
// KEYS[1] conversation HASH
// ARGV: 1 prefix, 2 agent, 3 message id, 4 now ms, 5 kind, 6 text, 7 payload, 8 check window 1|0
// Returns {"ok", channel} or {"not_found"} / {"closed"} / {"not_assigned"} / {"not_accepted"} / {"window_closed"}.
var replyScript = luascript.New[replyArgs, replyScriptReply]("reply", outbox.Lua+`
local P, agent = ARGV[1], ARGV[2]
local c = redis.call('HMGET', KEYS[1], 'state', 'agent', 'card', 'channel', 'window_expires_at', 'id')
if not c[1] then return {'not_found'} end
if c[1] ~= 'open' then return {'closed'} end
if c[2] ~= agent then return {'not_assigned'} end
if redis.call('HGET', P .. 'card:' .. c[3], 'state') ~= 'accepted' then return {'not_accepted'} end
if ARGV[8] == '1' and tonumber(c[5] or '0') <= tonumber(ARGV[4]) then return {'window_closed'} end
redis.call('HSET', P .. 'msg:' .. ARGV[3], 'id', ARGV[3], 'conversation_id', c[6], 'direction', 'out',
  'channel', c[4], 'kind', ARGV[5], 'text', ARGV[6], 'payload', ARGV[7], 'at', ARGV[4], 'agent', agent, 'status', 'queued')
redis.call('RPUSH', P .. 'convmsgs:' .. c[6], ARGV[3])
-- floor: the first agent message (reports) and the latest (the first-response timer)
redis.call('HSETNX', KEYS[1], 'first_response_at', ARGV[4])
redis.call('HSET', KEYS[1], 'last_agent_message_at', ARGV[4])
outboxEmit(P, ARGV[4], 'message.sent', c[6], 'm', ARGV[3])
return {'ok', c[4]}
`, parseReplyScriptReply)

// replyArgs records agent's message in a conversation; checkWindow refuses it once the customer
// service window closed.
type replyArgs struct {
	keys                             keys
	conversationID, agent, messageID string
	now                              int64 // ms
	kind, text, payload              string
	checkWindow                      bool
}

func (a replyArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.conv(a.conversationID)},
		[]any{a.keys.prefix(), a.agent, a.messageID, a.now, a.kind, a.text, a.payload, luascript.Flag(a.checkWindow)}
}

// replyScriptReply: "ok" with the conversation's channel, or why the reply is refused.
type replyScriptReply struct {
	code, channel string
}

func parseReplyScriptReply(v any) (replyScriptReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return replyScriptReply{}, err
	}
	switch code {
	case "ok", "not_found", "closed", "not_assigned", "not_accepted", "window_closed":
		return replyScriptReply{code: code, channel: a.Str(1)}, nil
	}
	return replyScriptReply{}, luascript.UnexpectedCode(code)
}

// statusLua is the status machine shared by the scripts below. It tolerates the provider's
// out-of-order delivery: queued < sent < delivered < read < played (a voice message heard); failed
// is final and a failed after read is ignored (read proves delivery); deleted and warning are
// marks beside the status (deleted_at; warning_*), applied once. Only outbound messages take a
// status: a provider id of a customer's message changes nothing.
//
// apply(message key, status, at ms, error code, title, message, details, summary, m, extra) returns
// 'ok', 'stale', 'inbound', 'unknown' or 'not_found'; m is the message as msgRead read it in this
// script (kept up to date by apply's writes: nothing is read twice), or nil (apply reads what it
// needs); extra, fields written with the status when it applies (nil: none).
// drain(message key, pending list, prefix) applies the kept statuses in the machine's order, each an
// integrations event (message.status) when applied. reply(…, m) answers with m's fields (nil: read).
const statusLua = `
local rank = {queued = 1, sent = 2, delivered = 3, read = 4, played = 5}
local order = {queued = 0, sent = 1, delivered = 2, read = 3, played = 4, failed = 5, warning = 6, deleted = 7}
local function msgRead(k)
  local m, f = {}, redis.call('HGETALL', k)
  for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
  return m
end
-- HSET and HDEL of the message, mirrored in m (the values are strings: stored as given)
local function msgSet(k, m, ...)
  redis.call('HSET', k, ...)
  if m then
    local a = {...}
    for i = 1, #a, 2 do m[a[i]] = a[i + 1] end
  end
end
local function msgDel(k, m, ...)
  redis.call('HDEL', k, ...)
  if m then
    for _, f in ipairs({...}) do m[f] = nil end
  end
end
local function apply(k, st, at, code, title, message, details, summary, m, extra)
  extra = extra or {}
  local h = m
  if not h then
    local v = redis.call('HMGET', k, 'id', 'direction', 'status', 'provider_message_id', 'deleted_at', 'warning_code')
    h = {id = v[1], direction = v[2], status = v[3], provider_message_id = v[4], deleted_at = v[5], warning_code = v[6]}
  end
  if not h.id then return 'not_found' end
  if h.direction ~= 'out' then return 'inbound' end
  if not order[st] then return 'unknown' end
  local cur = h.status or 'queued'
  if st == 'deleted' then
    if h.deleted_at then return 'stale' end
    msgSet(k, m, 'deleted_at', at, unpack(extra))
    return 'ok'
  end
  if st == 'warning' then
    if h.warning_code and h.warning_code == code then return 'stale' end
    msgSet(k, m, 'warning_code', code, 'warning_title', title, 'warning_message', message, 'warning_details', details, 'warning_at', at, unpack(extra))
    return 'ok'
  end
  -- failed is final, but for one case: an operator runs an archived send again ("Retry now") whose
  -- failure came before the provider accepted it (no provider id): it goes back to queued.
  if st == 'queued' and cur == 'failed' and (h.provider_message_id or '') == '' then
    msgDel(k, m, 'error_code', 'error_title', 'error_message', 'error_details', 'error_summary')
    msgSet(k, m, 'status', 'queued', 'status_at', at, unpack(extra))
    return 'ok'
  end
  if cur == 'failed' then return 'stale' end
  local cr = rank[cur] or 1
  if st == 'failed' then
    if cr >= rank.read then return 'stale' end
    msgSet(k, m, 'status', 'failed', 'status_at', at, 'error_code', code, 'error_title', title,
      'error_message', message, 'error_details', details, 'error_summary', summary, unpack(extra))
    return 'ok'
  end
  if rank[st] <= cr then return 'stale' end
  msgSet(k, m, 'status', st, 'status_at', at, unpack(extra))
  return 'ok'
end
local function drain(k, list, P)
  local kept = {}
  for i, e in ipairs(redis.call('LRANGE', list, 0, -1)) do
    local ok, v = pcall(cjson.decode, e)
    if ok and type(v) == 'table' and type(v.s) == 'string' then v.i = i; table.insert(kept, v) end
  end
  table.sort(kept, function(a, b)
    local oa, ob = order[a.s] or 99, order[b.s] or 99
    if oa ~= ob then return oa < ob end
    return a.i < b.i
  end)
  for _, v in ipairs(kept) do
    local at = tostring(v.at or '')
    if at == '' then at = ARGV[2] end
    local res = apply(k, v.s, at, tostring(v.code or ''), tostring(v.title or ''), tostring(v.message or ''), tostring(v.details or ''), tostring(v.summary or ''))
    -- each kept status applied is an event of its own for the integrations, as if it came now
    if res == 'ok' and P then
      outboxEmit(P, at, 'message.status', redis.call('HGET', k, 'conversation_id'), 'm', redis.call('HGET', k, 'id'), 's', v.s)
    end
  end
  redis.call('DEL', list)
end
local function convAgent(k, P, m)
  local conv
  if m then conv = m.conversation_id else conv = redis.call('HGET', k, 'conversation_id') end
  return redis.call('HGET', P .. 'conv:' .. (conv or ''), 'agent') or ''
end
local function reply(res, k, P, agent, published, m)
  if res == 'ok' and not agent then agent = convAgent(k, P, m) end
  local out = {res, agent or '', published and '1' or '0'}
  if m then
    for f, v in pairs(m) do
      table.insert(out, f)
      table.insert(out, v)
    end
  else
    for _, v in ipairs(redis.call('HGETALL', k)) do table.insert(out, v) end
  end
  return out
end
`

// statusScript applies a status to a message found by its id. When the status records the
// provider's id (the send's answer), the id is indexed and the statuses the provider sent before
// it (kept by providerStatusScript) are applied at once, in the machine's order.
//
// KEYS[1] message HASH, KEYS[2] pmsg key of the provider id, KEYS[3] its pending LIST, KEYS[4] the
// pending index ZSET
// ARGV: 1 status, 2 at ms, 3 provider message id ("" to keep), 4 error code, 5 error title,
// 6 error message, 7 error details, 8 index the provider id 1|0, 9 index TTL s, 10 prefix,
// 11 error summary (one sentence for the agent), 12 the agent's message.status event as the caller
// expects it ("" none), 13 the events' channel, 14 their STREAMs' length
// The expected event is written to the agent's stream here, in the same step (one round trip fewer
// per send), when the status applied to a message still queued and without a provider id and no
// kept status was applied with it: the message is then exactly what the caller predicted.
// Returns {"ok"|"stale", conversation's agent (when ok), "1" when the event was written, message
// fields…} / {"inbound"} / {"unknown"} / {"not_found"}: the caller tells the agent (unless written)
// without reading anything again.
var statusScript = luascript.New[statusArgs, statusReply]("status", outbox.Lua+sse.AppendLua+statusLua+statusByIDLua+`
return statusByID()
`, parseStatusReply)

const statusByIDLua = `
local function statusByID()
  local k = KEYS[1]
  -- the message, read once (its id and conversation do not change)
  local m = msgRead(k)
  local expected = ARGV[12] ~= '' and m.status == 'queued' and not m.provider_message_id
  -- the provider's id, recorded with the status it comes with
  local pid = nil
  if ARGV[3] ~= '' then pid = {'provider_message_id', ARGV[3]} end
  local res = apply(k, ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[11], m, pid)
  if res ~= 'ok' and res ~= 'stale' then return {res} end
  if res == 'ok' then outboxEmit(ARGV[10], ARGV[2], 'message.status', m.conversation_id, 'm', m.id, 's', ARGV[1]) end
  if res == 'ok' and ARGV[8] == '1' then
    redis.call('SET', KEYS[2], m.id, 'EX', ARGV[9])
    if redis.call('EXISTS', KEYS[3]) == 1 then
      expected = false
      drain(k, KEYS[3], ARGV[10])
      m = nil -- changed by the kept statuses: the reply reads it
      redis.call('ZREM', KEYS[4], KEYS[3])
    end
  end
  if res ~= 'ok' or not expected then return reply(res, k, ARGV[10], nil, false, m) end
  -- the agent's event, appended as routing's publish would (StreamLog)
  local agent = convAgent(k, ARGV[10], m)
  if agent == '' then agent = m.agent or '' end
  if agent == '' then return reply(res, k, ARGV[10], agent, false, m) end
  sseAppend(ARGV[10] .. 'events:' .. agent, ARGV[14], 'message.status', ARGV[12], ARGV[13], agent, '0')
  return reply(res, k, ARGV[10], agent, true, m)
end
`

// statusAdvanceScript is statusScript, then the end of the send's turn in its conversation's
// sequence (ordered.Advance): the status is written before the sequence moves on, in one step.
// KEYS and ARGV: statusScript's, then KEYS[5..8] the sequence's keys, ARGV[15] member, ARGV[16] token,
// ARGV[17] "1" when the script wakes the conversation's next send itself (ordered.Advance.Wake),
// ARGV[18..23] the send's asynq task completed here too, and the next one taken for the server
// (ordered.Advance.CompletionArgs).
// Returns {orderedRemoveWake's reply, statusScript's reply, asynqCompleteAt's}.
var statusAdvanceScript = luascript.New[statusArgs, statusAdvanceReply]("status and advance", outbox.Lua+sse.AppendLua+statusLua+statusByIDLua+ordered.AdvanceLua+`
local out = statusByID()
return {orderedRemoveWake(KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[15], 'done', ARGV[16], ARGV[17]), out, asynqCompleteAt(ARGV, 18)}
`, func(v any) (statusAdvanceReply, error) {
	a, err := luascript.AsArray(v)
	if err != nil || len(a) != 3 {
		return statusAdvanceReply{}, fmt.Errorf("%w: %v", luascript.ErrReply, v)
	}
	st, err := parseStatusReply(a[1])
	return statusAdvanceReply{advanced: a[0], status: st, completed: a[2]}, err
})

// statusAdvanceReply: the sequence's advance (for ordered.Advance.Done), the status's answer, and
// the task's completion (ordered.Advance.Completed).
type statusAdvanceReply struct {
	advanced  any
	status    statusReply
	completed any
}

// statusArgs applies state to the message messageID. providerID, when given, is recorded and
// indexed (on channel) and the statuses kept for it are applied.
type statusArgs struct {
	keys                keys
	messageID           string
	channel, providerID string
	state               string
	at                  int64 // ms
	failure             *MessageError
	indexTTL            int64            // s
	advance             *ordered.Advance // statusAdvanceScript's turn
	event               statusEvent      // the agent's event written by the script ("" body: none)
}

// statusEvent is the agent's message.status event a status script writes itself: its JSON and the
// agents' event log it goes to (the events' channel, the STREAMs' length).
type statusEvent struct {
	body    []byte
	channel string
	maxLen  int64
}

func (a statusArgs) KeysAndArgv() ([]string, []any) {
	channel, pid := a.channel, a.providerID
	if pid == "" {
		// nothing to index: the keys are not touched, but are still given (under the same tag)
		channel, pid = "none", a.messageID
	}
	code, title, message, details, summary := errorArgs(a.failure)
	keys := []string{a.keys.msg(a.messageID), a.keys.pmsg(channel, pid), a.keys.pendingStatuses(channel, pid), a.keys.pendingIndex()}
	argv := []any{a.state, a.at, a.providerID, code, title, message, details, luascript.Flag(a.providerID != ""), a.indexTTL,
		a.keys.prefix(), summary, a.event.body, a.event.channel, a.event.maxLen}
	if a.advance != nil {
		keys = append(keys, a.advance.Keys()...)
		argv = append(argv, a.advance.Member(), a.advance.Token(), a.advance.Wake())
		argv = append(argv, a.advance.CompletionArgs()...)
	}
	return keys, argv
}

// statusReply is a status script's answer: its code (statusLua's apply, or "pending" / "dropped"
// from providerStatusScript) and, for "ok" and "stale", the conversation's agent ("ok" only), whether
// the script wrote the agent's event, and the message's fields, so the caller tells the agent
// without reading anything again.
type statusReply struct {
	code      string
	agent     string
	published bool
	fields    map[string]string
}

func parseStatusReply(v any) (statusReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return statusReply{}, err
	}
	switch code {
	case "ok", "stale":
		return statusReply{code: code, agent: a.Str(1), published: a.Str(2) == "1", fields: a.FieldsFrom(3)}, nil
	case "not_found", "inbound", "unknown", "pending", "dropped":
		return statusReply{code: code}, nil
	}
	return statusReply{}, luascript.UnexpectedCode(code)
}

// providerStatusScript applies a provider's status webhook to the message with that provider id;
// when no message has it yet, the status is kept (bounded per id and overall, with a TTL) for
// statusScript to apply when the send's answer records the id. Lookup and keeping are one step, so
// a status cannot slip between a send recording its id and the buffer being read.
//
// KEYS[1] pmsg key, KEYS[2] its pending LIST, KEYS[3] the pending index ZSET (list key → expiry ms),
// KEYS[4] the key an inbound message with that provider id would have
// ARGV: 1 status, 2 at ms, 3 error code, 4 title, 5 message, 6 details, 7 prefix, 8 pending TTL s,
// 9 most per id, 10 most ids, 11 now ms, 12 error summary
// Returns statusScript's answers, or {"pending"} / {"dropped"}.
var providerStatusScript = luascript.New[providerStatusArgs, statusReply]("provider status", outbox.Lua+statusLua+`
local id = redis.call('GET', KEYS[1])
if id then
  local k = ARGV[7] .. 'msg:' .. id
  local m = msgRead(k)
  local res = apply(k, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[12], m)
  if res ~= 'ok' and res ~= 'stale' then return {res} end
  if res == 'ok' then outboxEmit(ARGV[7], ARGV[2], 'message.status', m.conversation_id, 'm', id, 's', ARGV[1]) end
  return reply(res, k, ARGV[7], nil, false, m)
end
-- a customer's message has no pmsg key: its own key, derived from the provider id, says it is inbound
if redis.call('EXISTS', KEYS[4]) == 1 then return {'inbound'} end
if not order[ARGV[1]] then return {'unknown'} end
local now, ttl = tonumber(ARGV[11]), tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if not redis.call('ZSCORE', KEYS[3], KEYS[2]) then
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[10]) then
    local oldest = redis.call('ZPOPMIN', KEYS[3])
    if oldest[1] then redis.call('DEL', oldest[1]) end
  end
elseif redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[9]) then
  return {'dropped'}
end
redis.call('RPUSH', KEYS[2], cjson.encode({s = ARGV[1], at = ARGV[2], code = ARGV[3], title = ARGV[4], message = ARGV[5], details = ARGV[6], summary = ARGV[12]}))
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[3], now + ttl * 1000, KEYS[2])
return {'pending'}
`, parseStatusReply)

// providerStatusArgs applies state to the message the provider calls providerID on channel, or
// keeps it for that message, within the bounds given.
type providerStatusArgs struct {
	keys                 keys
	channel, providerID  string
	state                string
	at, now              int64 // ms
	failure              *MessageError
	pendingTTL           int64 // s
	perMessage, messages int   // most statuses kept per provider id; most provider ids kept
}

func (a providerStatusArgs) KeysAndArgv() ([]string, []any) {
	code, title, message, details, summary := errorArgs(a.failure)
	return []string{a.keys.pmsg(a.channel, a.providerID), a.keys.pendingStatuses(a.channel, a.providerID), a.keys.pendingIndex(),
			a.keys.msg(InboundMessageID(a.channel, "", a.providerID))},
		[]any{a.state, a.at, code, title, message, details, a.keys.prefix(), a.pendingTTL, a.perMessage, a.messages, a.now, summary}
}

// maxWaitScript marks a waiting card whose wait passed the queue's maximum, once, and for the close
// action closes it, for the overflow action moves it (and its conversation) to the overflow queue,
// first in line there, like a requeued card (only if it is still waiting: an agent may have taken it
// meanwhile). A card is handled by max_wait once: the overflow queue's own max_wait leaves it be.
//
// KEYS[1] card HASH, KEYS[2] waiting ZSET, KEYS[3] the overflow queue's waiting ZSET (KEYS[2] again
// when the action is not overflow)
// ARGV: 1 card id, 2 now ms, 3 max wait ms, 4 action keep|close|overflow, 5 prefix, 6 overflow queue,
// 7 report rows' retention s, 8–12 the daily aggregates' arguments (reportAgg; absent: none)
// Returns {"no"} (not due, not waiting or already handled) or {"kept"} / {"closed", conversation id} /
// {"overflowed", conversation id}.
var maxWaitScript = luascript.New[maxWaitArgs, maxWaitReply]("max wait", outbox.Lua+reportLua+`
local c = redis.call('HMGET', KEYS[1], 'state', 'created_at', 'max_wait_at')
if c[1] ~= 'waiting' or c[3] then return {'no'} end
if tonumber(c[2]) + tonumber(ARGV[3]) > tonumber(ARGV[2]) then return {'no'} end
redis.call('HSET', KEYS[1], 'max_wait_at', ARGV[2])
if ARGV[4] ~= 'close' and ARGV[4] ~= 'overflow' then return {'kept'} end
local P = ARGV[5]
local conv = redis.call('HGET', KEYS[1], 'conversation_id')
local convKey = P .. 'conv:' .. conv
if ARGV[4] == 'overflow' then
  redis.call('HSET', KEYS[1], 'queue', ARGV[6], 'overflowed_from', redis.call('HGET', KEYS[1], 'queue'))
  redis.call('HSET', convKey, 'queue', ARGV[6])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], string.format('%d', tonumber(c[2]) - 10000000000000), ARGV[1])
  return {'overflowed', conv}
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', ARGV[2], 'closed_by', 'max_wait')
redis.call('HSET', convKey, 'state', 'closed', 'closed_at', ARGV[2], 'closed_by', 'max_wait')
local k = redis.call('HMGET', convKey, 'channel', 'entry_point', 'contact_id')
local openKey = P .. 'convopen:' .. k[1] .. ':' .. k[2] .. ':' .. k[3]
if redis.call('GET', openKey) == conv then redis.call('DEL', openKey) end
redis.call('ZREM', KEYS[2], ARGV[1])
local agg = nil
if ARGV[8] then agg = {ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]} end
reportRow(P, conv, ARGV[1], ARGV[2], 'max_wait', ARGV[7], agg)
outboxEmit(P, ARGV[2], 'conversation.closed', conv, 'k', ARGV[1], 'a', '')
return {'closed', conv}
`, parseMaxWaitReply)

// maxWaitArgs ends card's wait in (queue, channel) if it passed maxWait.
type maxWaitArgs struct {
	keys                 keys
	card, queue, channel string
	now, maxWait         int64  // ms
	action               string // keep | close | overflow
	overflowQueue        string // action overflow: the queue the card moves to
	reportRetention      int64  // s, of the conversation's report row
	agg                  []any  // Router.reportAgg; nil: no aggregates
}

func (a maxWaitArgs) KeysAndArgv() ([]string, []any) {
	overflow := a.keys.waiting(a.queue, a.channel)
	if a.action == "overflow" {
		overflow = a.keys.waiting(a.overflowQueue, a.channel)
	}
	return []string{a.keys.card(a.card), a.keys.waiting(a.queue, a.channel), overflow},
		append([]any{a.card, a.now, a.maxWait, a.action, a.keys.prefix(), a.overflowQueue, a.reportRetention}, a.agg...)
}

// maxWaitReply: "no", "kept", or "closed" / "overflowed" with the conversation.
type maxWaitReply struct {
	code, conversationID string
}

func parseMaxWaitReply(v any) (maxWaitReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return maxWaitReply{}, err
	}
	switch code {
	case "no", "kept", "closed", "overflowed":
		return maxWaitReply{code: code, conversationID: a.Str(1)}, nil
	}
	return maxWaitReply{}, luascript.UnexpectedCode(code)
}
