package routing

import (
	"github.com/chatgate/chatgate/internal/luascript"
	"github.com/chatgate/chatgate/internal/outbox"
)

// Scripts of running the floor: transfers, wrap-up and the first-response timer. They follow the
// card's rules of scripts.go (a card is in one place at a time; load and agentcards follow its holder).

// wrapUpLua starts an agent's wrap-up on a channel: the presence HASH field <channel>:wrap_up_until
// (the offer script skips the agent there until it passes), the wrapups ZSET the sweeper ends it
// from, and — when no wrap-up was already running there — an entry in the agent's presence history
// from its state to wrap_up, so reports can sum wrap-up time (wrap-up's end writes the entry back).
// A wrap-up already running is extended to the later end. Nothing starts for an agent that is
// offline on the channel. Returns the end (ms, as a string) or "".
// historyAddLua appends to an agent's presence history with an id on the gateway's clock (<ms>-*),
// as presence's own script does, so reports read a period by id and wrap-ups fall in it; never
// below the last entry, and a refused id falls back to Redis's own.
const historyAddLua = `
local function historyAdd(key, nowMs, ...)
  local ms = nowMs
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if last[1] then
    local l = tonumber(string.match(last[1][1], '^(%d+)'))
    if l and l > ms then ms = l end
  end
  local added = redis.pcall('XADD', key, string.format('%d', ms) .. '-*', ...)
  if type(added) == 'table' and added.err then redis.call('XADD', key, '*', ...) end
end
`

const wrapUpLua = historyAddLua + `
local function startWrapUp(P, a, ch, nowMs, ms, by)
  local pk = P .. 'presence:' .. a
  local st = redis.call('HGET', pk, ch) or 'offline'
  if st == 'offline' then return '' end
  local field = ch .. ':wrap_up_until'
  local prev = tonumber(redis.call('HGET', pk, field) or '0')
  local untilMs = math.max(prev, nowMs + ms)
  local s = string.format('%d', untilMs)
  redis.call('HSET', pk, field, s)
  redis.call('ZADD', P .. 'wrapups', s, a .. '|' .. ch)
  if prev == 0 then
    historyAdd(P .. 'presence:history:' .. a, nowMs, 'channel', ch, 'from', st, 'to', 'wrap_up', 'reason', '',
      'by', by, 'cause', 'wrap_up', 'at', string.format('%d', nowMs))
  end
  return s
end
`

// transferReleaseLua takes a card from its holder for a transfer: the holder's load and agentcards
// drop it, and the holder counts as having refused it (the card's refused ZSET and a re-offer entry),
// so it goes to someone else first and comes back to the holder only as a re-offer.
const transferReleaseLua = `
local function releaseHolder(P, card, holder, ch, nowMs, reofferMs)
  if holder == '' then return end
  if tonumber(redis.call('HINCRBY', P .. 'load:' .. holder, ch, -1)) < 0 then redis.call('HSET', P .. 'load:' .. holder, ch, 0) end
  redis.call('SREM', P .. 'agentcards:' .. holder, card)
  redis.call('ZADD', P .. 'refused:' .. card, nowMs, holder)
  if tonumber(reofferMs) > 0 then
    redis.call('ZADD', P .. 'reoffers', string.format('%d', tonumber(nowMs) + tonumber(reofferMs)), card .. '|' .. holder)
  end
end
local function recordTransfer(P, convKey, by, from, toAgent, toQueue, note, nowMs)
  redis.call('HINCRBY', convKey, 'transfers', 1)
  redis.call('HSET', convKey, 'last_transfer_by', by, 'last_transfer_from', from, 'last_transfer_to_agent', toAgent,
    'last_transfer_to_queue', toQueue, 'last_transfer_note', note, 'last_transfer_at', nowMs)
end
`

// transferAgentScript offers a conversation's card to one agent only, taking it from its holder in
// the same step. The caller must hold the card accepted, unless it is a supervisor (force: any open
// card, waiting or offered included). The target must be enabled on the card's channel, online there
// (not paused), not in wrap-up there, and below capacity; else nothing changes and the reason is
// returned. The card is offered to the target with the queue's offer timeout and marked
// transfer_pending: a decline or a timeout puts it first in line in its queue (releaseScript).
//
// KEYS[1] card HASH, KEYS[2] offers ZSET
// ARGV: 1 prefix, 2 card id, 3 caller, 4 force 1|0, 5 target agent, 6 now ms, 7 offer timeout ms,
// 8 note, 9 audit 1|0, 10 re-offer delay ms (the holder's refusal)
// Returns {"ok", former holder, queue, channel, conversation id} / {"unavailable", reason}
// (already_holder, channel_not_enabled, offline, paused, wrap_up, at_capacity) / {"not_found"} /
// {"not_yours"} / {"state", s}.
var transferAgentScript = luascript.New[transferAgentArgs, transferReply]("transfer to agent", outbox.Lua+transferReleaseLua+`
local P, card, to, nowMs = ARGV[1], ARGV[2], ARGV[5], ARGV[6]
local now = tonumber(nowMs)
local c = redis.call('HMGET', KEYS[1], 'state', 'agent', 'queue', 'channel', 'conversation_id')
if not c[1] then return {'not_found'} end
local st, holder, queue, ch, conv = c[1], c[2] or '', c[3], c[4], c[5]
if ARGV[4] ~= '1' and holder ~= ARGV[3] then return {'not_yours'} end
if st == 'closed' or (ARGV[4] ~= '1' and st ~= 'accepted') then return {'state', st} end
if holder == to and st ~= 'waiting' then return {'unavailable', 'already_holder'} end
local cap = tonumber(redis.call('HGET', P .. 'cap:' .. to, ch) or '0')
if cap == 0 then return {'unavailable', 'channel_not_enabled'} end
local ps = redis.call('HMGET', P .. 'presence:' .. to, ch, ch .. ':wrap_up_until')
if ps[1] == 'paused' then return {'unavailable', 'paused'} end
if ps[1] ~= 'online' then return {'unavailable', 'offline'} end
if tonumber(ps[2] or '0') > now then return {'unavailable', 'wrap_up'} end
local load = tonumber(redis.call('HGET', P .. 'load:' .. to, ch) or '0')
if load >= cap then return {'unavailable', 'at_capacity'} end
if st ~= 'waiting' then releaseHolder(P, card, holder, ch, nowMs, ARGV[10]) end
redis.call('ZREM', P .. 'waiting:' .. queue .. ':' .. ch, card)
local expires = string.format('%d', now + tonumber(ARGV[7]))
redis.call('ZADD', KEYS[2], expires, card)
redis.call('HSET', KEYS[1], 'state', 'offered', 'agent', to, 'offered_at', nowMs, 'expires_at', expires, 'accepted_at', '',
  'transfer_pending', to, 'transferred_by', ARGV[3], 'transferred_from', holder, 'transfer_note', ARGV[8], 'transferred_at', nowMs)
load = redis.call('HINCRBY', P .. 'load:' .. to, ch, 1)
redis.call('SADD', P .. 'agentcards:' .. to, card)
local convKey = P .. 'conv:' .. conv
redis.call('HSET', convKey, 'agent', to)
recordTransfer(P, convKey, ARGV[3], holder, to, '', ARGV[8], nowMs)
outboxEmit(P, nowMs, 'conversation.transferred', conv, 'd', cjson.encode({transfer = {by = ARGV[3], from = holder,
  to_agent = to, note = ARGV[8], at_ms = now}, card_id = card}))
if ARGV[9] == '1' then
  redis.call('RPUSH', P .. 'audit', card .. '|' .. to .. '|' .. ps[1] .. '|' .. load .. '|' .. cap)
end
return {'ok', holder, queue, ch, conv}
`, parseTransferReply)

// transferAgentArgs: caller transfers card to agent to (force: a supervisor, any open card).
type transferAgentArgs struct {
	keys                   keys
	card, caller, to, note string
	force, audit           bool
	now, offerTimeout      int64 // ms
	reofferAfter           int64 // ms
}

func (a transferAgentArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.card(a.card), a.keys.offers()},
		[]any{a.keys.prefix(), a.card, a.caller, luascript.Flag(a.force), a.to, a.now, a.offerTimeout, a.note, luascript.Flag(a.audit), a.reofferAfter}
}

// transferQueueScript puts a conversation's card first in line in a queue (its own or another that
// serves the card's channel: the caller checks), taking it from its holder in the same step. Who may
// transfer is as for transferAgentScript.
//
// KEYS[1] card HASH, KEYS[2] offers ZSET
// ARGV: 1 prefix, 2 card id, 3 caller, 4 force 1|0, 5 target queue, 6 now ms, 7 note,
// 8 re-offer delay ms (the holder's refusal)
// Returns {"ok", former holder, former queue, channel, conversation id} / {"not_found"} /
// {"not_yours"} / {"state", s}.
var transferQueueScript = luascript.New[transferQueueArgs, transferReply]("transfer to queue", outbox.Lua+transferReleaseLua+`
local P, card, to, nowMs = ARGV[1], ARGV[2], ARGV[5], ARGV[6]
local c = redis.call('HMGET', KEYS[1], 'state', 'agent', 'queue', 'channel', 'conversation_id', 'created_at')
if not c[1] then return {'not_found'} end
local st, holder, queue, ch, conv = c[1], c[2] or '', c[3], c[4], c[5]
if ARGV[4] ~= '1' and holder ~= ARGV[3] then return {'not_yours'} end
if st == 'closed' or (ARGV[4] ~= '1' and st ~= 'accepted') then return {'state', st} end
if st ~= 'waiting' then releaseHolder(P, card, holder, ch, nowMs, ARGV[8]) end
redis.call('ZREM', KEYS[2], card)
redis.call('ZREM', P .. 'waiting:' .. queue .. ':' .. ch, card)
redis.call('HSET', KEYS[1], 'state', 'waiting', 'agent', '', 'offered_at', '', 'expires_at', '', 'accepted_at', '',
  'queue', to, 'last_outcome', 'transferred', 'transferred_by', ARGV[3], 'transferred_from', holder,
  'transfer_note', ARGV[7], 'transferred_at', nowMs)
redis.call('HDEL', KEYS[1], 'transfer_pending')
redis.call('ZADD', P .. 'waiting:' .. to .. ':' .. ch, string.format('%d', tonumber(c[6]) - 10000000000000), card)
local convKey = P .. 'conv:' .. conv
redis.call('HSET', convKey, 'agent', '', 'queue', to)
recordTransfer(P, convKey, ARGV[3], holder, '', to, ARGV[7], nowMs)
outboxEmit(P, nowMs, 'conversation.transferred', conv, 'd', cjson.encode({transfer = {by = ARGV[3], from = holder,
  from_queue = queue, to_queue = to, note = ARGV[7], at_ms = tonumber(nowMs)}, card_id = card}))
return {'ok', holder, queue, ch, conv}
`, parseTransferReply)

// transferQueueArgs: caller transfers card to queue to.
type transferQueueArgs struct {
	keys                   keys
	card, caller, to, note string
	force                  bool
	now, reofferAfter      int64 // ms
}

func (a transferQueueArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.card(a.card), a.keys.offers()},
		[]any{a.keys.prefix(), a.card, a.caller, luascript.Flag(a.force), a.to, a.now, a.note, a.reofferAfter}
}

// transferReply: "ok" with the former holder, queue, channel and conversation; or why not
// ("unavailable" with its reason in state).
type transferReply struct {
	cardReply
	holder, queue, channel, conversationID string
}

func parseTransferReply(v any) (transferReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return transferReply{}, err
	}
	switch code {
	case "ok":
		return transferReply{cardReply: cardReply{code: code}, holder: a.Str(1), queue: a.Str(2), channel: a.Str(3), conversationID: a.Str(4)}, nil
	case "unavailable", "not_found", "not_yours", "state":
		return transferReply{cardReply: cardReply{code: code, state: a.Str(1)}}, nil
	}
	return transferReply{}, luascript.UnexpectedCode(code)
}

// endWrapUpScript ends an agent's wrap-up on a channel: when due (the sweeper) or at once (early,
// the agent asks). It writes the history entry from wrap_up back to the channel's state.
//
// KEYS[1] presence HASH, KEYS[2] presence history STREAM, KEYS[3] wrapups ZSET
// ARGV: 1 agent, 2 channel, 3 now ms, 4 early 1|0, 5 by, 6 cause
// Returns {"ended", until ms, state} / {"none"} (no wrap-up) / {"not_due"}.
var endWrapUpScript = luascript.New[endWrapUpArgs, endWrapUpReply]("end wrap-up", historyAddLua+`
local ch, nowMs = ARGV[2], ARGV[3]
local field = ch .. ':wrap_up_until'
local member = ARGV[1] .. '|' .. ch
local untilMs = redis.call('HGET', KEYS[1], field)
if not untilMs then
  redis.call('ZREM', KEYS[3], member)
  return {'none'}
end
if ARGV[4] ~= '1' and tonumber(untilMs) > tonumber(nowMs) then return {'not_due'} end
redis.call('HDEL', KEYS[1], field)
redis.call('ZREM', KEYS[3], member)
local st = redis.call('HGET', KEYS[1], ch) or 'offline'
historyAdd(KEYS[2], tonumber(nowMs), 'channel', ch, 'from', 'wrap_up', 'to', st, 'reason', '', 'by', ARGV[5], 'cause', ARGV[6], 'at', nowMs)
return {'ended', untilMs, st}
`, parseEndWrapUpReply)

// endWrapUpArgs ends agent's wrap-up on channel (early: whether due or not).
type endWrapUpArgs struct {
	keys           keys
	agent, channel string
	now            int64 // ms
	early          bool
	by, cause      string
}

func (a endWrapUpArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.presence(a.agent), a.keys.presenceHistory(a.agent), a.keys.wrapUps()},
		[]any{a.agent, a.channel, a.now, luascript.Flag(a.early), a.by, a.cause}
}

type endWrapUpReply struct {
	code  string
	until int64
	state string
}

func parseEndWrapUpReply(v any) (endWrapUpReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return endWrapUpReply{}, err
	}
	switch code {
	case "ended", "none", "not_due":
		return endWrapUpReply{code: code, until: a.Int(1), state: a.Str(2)}, nil
	}
	return endWrapUpReply{}, luascript.UnexpectedCode(code)
}

// firstResponseScript checks one conversation whose first-response timer came due: its card still
// accepted by the same acceptance (accepted_at + timeout passed) and no agent message since it was
// accepted (the conversation's last_agent_message_at, set by replyScript) → unanswered, recorded on
// the conversation (unanswered_at); for action requeue the card also goes back first in line, its
// holder freed and counted as having refused it. The timer entry is dropped in every case.
//
// KEYS[1] card HASH, KEYS[2] first-response ZSET
// ARGV: 1 prefix, 2 card id, 3 now ms, 4 timeout ms, 5 action notify|requeue, 6 re-offer delay ms
// Returns {"no"} or {"unanswered", agent, queue, channel, conversation id, accepted at ms}.
var firstResponseScript = luascript.New[firstResponseArgs, firstResponseReply]("first response", transferReleaseLua+`
local P, card, nowMs = ARGV[1], ARGV[2], ARGV[3]
redis.call('ZREM', KEYS[2], card)
local c = redis.call('HMGET', KEYS[1], 'state', 'agent', 'accepted_at', 'conversation_id', 'queue', 'channel', 'created_at')
if c[1] ~= 'accepted' then return {'no'} end
local acc = tonumber(c[3] or '0')
if acc + tonumber(ARGV[4]) > tonumber(nowMs) then
  redis.call('ZADD', KEYS[2], string.format('%d', acc + tonumber(ARGV[4])), card)
  return {'no'}
end
local convKey = P .. 'conv:' .. c[4]
if tonumber(redis.call('HGET', convKey, 'last_agent_message_at') or '0') >= acc then return {'no'} end
redis.call('HSET', convKey, 'unanswered_at', nowMs)
if ARGV[5] == 'requeue' then
  releaseHolder(P, card, c[2], c[6], nowMs, ARGV[6])
  redis.call('HSET', KEYS[1], 'state', 'waiting', 'agent', '', 'offered_at', '', 'expires_at', '', 'accepted_at', '', 'last_outcome', 'unanswered')
  redis.call('ZADD', P .. 'waiting:' .. c[5] .. ':' .. c[6], string.format('%d', tonumber(c[7]) - 10000000000000), card)
  redis.call('HSET', convKey, 'agent', '')
end
return {'unanswered', c[2], c[5], c[6], c[4], c[3]}
`, parseFirstResponseReply)

// firstResponseArgs checks card's first response after timeout.
type firstResponseArgs struct {
	keys                       keys
	card                       string
	now, timeout, reofferAfter int64 // ms
	action                     string
}

func (a firstResponseArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.card(a.card), a.keys.firstResponses()},
		[]any{a.keys.prefix(), a.card, a.now, a.timeout, a.action, a.reofferAfter}
}

type firstResponseReply struct {
	unanswered                            bool
	agent, queue, channel, conversationID string
	acceptedAt                            int64
}

func parseFirstResponseReply(v any) (firstResponseReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return firstResponseReply{}, err
	}
	switch code {
	case "no":
		return firstResponseReply{}, nil
	case "unanswered":
		return firstResponseReply{unanswered: true, agent: a.Str(1), queue: a.Str(2), channel: a.Str(3), conversationID: a.Str(4),
			acceptedAt: a.Int(5)}, nil
	}
	return firstResponseReply{}, luascript.UnexpectedCode(code)
}
