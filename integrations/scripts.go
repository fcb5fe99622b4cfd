package integrations

import (
	"github.com/chatgate/chatgate/internal/luascript"
)

// commonLua: the hold on a conversation (retention's contract: integ:unacked counts, per
// conversation, the events accepted for a subscription and not yet acknowledged, summed over
// subscriptions; integ:unacked_since keeps when the hold began) and the push of an event on a
// subscription's ordered list, which starts a delivery chain when the list was empty.
const commonLua = `
local function isConv(key) return string.sub(key, 1, 2) ~= 'a:' end
local function hold(P, key, n, now)
  if n <= 0 or not isConv(key) then return end
  -- a hold that began before has its time already (unhold removes both together)
  if redis.call('HINCRBY', P .. 'integ:unacked', key, n) == n then
    redis.call('ZADD', P .. 'integ:unacked_since', 'NX', now, key)
  end
end
local function unhold(P, key, n)
  if n <= 0 or not isConv(key) then return end
  if tonumber(redis.call('HINCRBY', P .. 'integ:unacked', key, -n)) <= 0 then
    redis.call('HDEL', P .. 'integ:unacked', key)
    redis.call('ZREM', P .. 'integ:unacked_since', key)
  end
end
-- push returns the new chain's task id when the list was empty (a chain starts), else false. A list
-- element is an event id, or "id|ms" for an event sent again (a retried dead letter, a replay):
-- its max_age counts from ms.
local function push(P, sub, key, el, now)
  local n = redis.call('RPUSH', P .. 'integ:q:' .. sub .. ':' .. key, el)
  if n ~= 1 then return false end
  local tid = sub .. ':' .. key .. ':' .. el
  redis.call('HSET', P .. 'integ:chain:' .. sub, key, tid)
  redis.call('ZADD', P .. 'integ:chains:' .. sub, now, key)
  return tid
end
local disabledSubs = {}
-- disabled: asked once per script call and subscription (a call cannot see it change)
local function disabled(P, sub)
  if disabledSubs[sub] == nil then
    disabledSubs[sub] = redis.call('HGET', P .. 'integ:health:' .. sub, 'state') == 'disabled'
  end
  return disabledSubs[sub]
end
-- head reads up to n events at the head of a list: {'ok', {id, body, at ms, type, element, again
-- ms}, …} or, when the list is empty, ends the chain: {'end'}. n = 0 reads nothing: {'ok'}.
local function head(P, sub, key, q, n)
  if n <= 0 then return {'ok'} end
  local els = redis.call('LRANGE', q, 0, n - 1)
  if #els == 0 then
    redis.call('HDEL', P .. 'integ:chain:' .. sub, key)
    redis.call('ZREM', P .. 'integ:chains:' .. sub, key)
    return {'end'}
  end
  local out = {'ok'}
  for i, el in ipairs(els) do
    local eid, again = string.match(el, '^([^|]*)|?(%d*)$')
    local ev = redis.call('HMGET', P .. 'integ:ev:' .. eid, 'b', 'at', 't')
    out[i + 1] = {eid, ev[1] or '', ev[2] or '0', ev[3] or '', el, again}
  end
  return out
end
`

// chainStart is a delivery chain to enqueue: the subscription, the order key and the task id.
type chainStart struct{ sub, key, taskID string }

func parseStarts(a luascript.Array) []chainStart {
	out := make([]chainStart, 0, len(a))
	for i := range a {
		s := a.Array(i)
		if len(s) == 3 {
			out = append(out, chainStart{sub: s.Str(0), key: s.Str(1), taskID: s.Str(2)})
		}
	}
	return out
}

// acceptScript moves a batch of outbox entries into delivery, atomically with the cursor: each
// event is retained (its body, for deliveries and replays) and pushed on the list of every
// subscription that wants it (holding its conversation), and its outbox entry is deleted. The
// cursor must still be where the dispatcher read it (another dispatcher may have moved it).
//
// KEYS[1] cursor, KEYS[2] outbox stream
// ARGV: 1 prefix, 2 expected cursor, 3 new cursor, 4 now ms, 5 retain ms, 6 n, then per event:
// id, stream entry id, type, order key, at ms, body, subscriptions (comma-separated), queue.
// Returns {"moved"} or {"ok", {{sub, key, task id}, …} (chains started)}.
var acceptScript = luascript.New[acceptArgs, acceptReply]("integrations accept", commonLua+`
local P, now, retain = ARGV[1], tonumber(ARGV[4]), ARGV[5]
if (redis.call('GET', KEYS[1]) or '0-0') ~= ARGV[2] then return {'moved'} end
local starts, sids, dated = {}, {}, {}
local i = 7
for _ = 1, tonumber(ARGV[6]) do
  local eid, sid, typ, key, at, body, subs = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local queue = ARGV[i + 7]
  i = i + 8
  if eid ~= '' then
    local ek = P .. 'integ:ev:' .. eid
    redis.call('HSET', ek, 't', typ, 'k', key, 'q', queue, 'at', at, 'b', body)
    redis.call('PEXPIRE', ek, retain)
    dated[#dated + 1] = at
    dated[#dated + 1] = eid
    for sub in string.gmatch(subs, '[^,]+') do
      if not disabled(P, sub) then
        hold(P, key, 1, now)
        local tid = push(P, sub, key, eid, now)
        if tid then table.insert(starts, {sub, key, tid}) end
      end
    end
  end
  sids[#sids + 1] = sid
end
if #sids > 0 then redis.call('XDEL', KEYS[2], unpack(sids)) end
if #dated > 0 then redis.call('ZADD', P .. 'integ:events', unpack(dated)) end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', P .. 'integ:events', '-inf', now - tonumber(retain))
return {'ok', starts}
`, parseAcceptReply)

// acceptedEvent is one outbox entry made an event ("" id: an entry dropped, e.g. unreadable).
type acceptedEvent struct {
	id, streamID, typ, key string
	at                     int64
	body                   []byte
	subs, queue            string
}

type acceptArgs struct {
	keys             keys
	outbox           string
	expected, cursor string
	now, retain      int64
	events           []acceptedEvent
}

func (a acceptArgs) KeysAndArgv() ([]string, []any) {
	argv := make([]any, 0, 6+8*len(a.events))
	argv = append(argv, a.keys.prefix(), a.expected, a.cursor, a.now, a.retain, len(a.events))
	for _, e := range a.events {
		argv = append(argv, e.id, e.streamID, e.typ, e.key, e.at, e.body, e.subs, e.queue)
	}
	return []string{a.keys.cursor(), a.outbox}, argv
}

type acceptReply struct {
	moved  bool
	starts []chainStart
}

func parseAcceptReply(v any) (acceptReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return acceptReply{}, err
	}
	switch code {
	case "moved":
		return acceptReply{moved: true}, nil
	case "ok":
		return acceptReply{starts: parseStarts(a.Array(1))}, nil
	}
	return acceptReply{}, luascript.UnexpectedCode(code)
}

// headScript reads the first events of a chain's list (up to chainBatch), if the task is still the chain's.
//
// KEYS[1] chain HASH, KEYS[2] the list. ARGV: 1 prefix, 2 sub, 3 key, 4 task id, 5 how many to read.
// Returns {"stale"} / {"end"} / {"ok", {event id, body, at ms, type, element, again ms}, …}.
var headScript = luascript.New[chainArgs, headReply]("integrations head", commonLua+`
if redis.call('HGET', KEYS[1], ARGV[3]) ~= ARGV[4] then return {'stale'} end
return head(ARGV[1], ARGV[2], ARGV[3], KEYS[2], tonumber(ARGV[5]))
`, parseHeadReply)

type chainArgs struct {
	keys             keys
	sub, key, taskID string
}

func (a chainArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.chain(a.sub), a.keys.queue(a.sub, a.key)}, []any{a.keys.prefix(), a.sub, a.key, a.taskID, chainBatch}
}

// headReply: the events to deliver, in order, or the chain is over (end) or no longer this task's (stale).
type headReply struct {
	code  string // ok | end | stale
	heads []head
}

// head is one event at the head of a chain's list.
type head struct {
	eventID string
	body    []byte
	at      int64 // ms: when the event was emitted
	typ     string
	element string // the list element (the id, or "id|ms" when sent again)
	again   int64  // ms: when it was sent again (0: never); max_age counts from the later
}

func parseHeadReply(v any) (headReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return headReply{}, err
	}
	switch code {
	case "stale", "end":
		return headReply{code: code}, nil
	case "ok":
		r := headReply{code: code, heads: make([]head, 0, len(a)-1)}
		for i := 1; i < len(a); i++ {
			h := a.Array(i)
			r.heads = append(r.heads, head{eventID: h.Str(0), body: []byte(h.Str(1)), at: h.Int(2), typ: h.Str(3), element: h.Str(4), again: h.Int(5)})
		}
		return r, nil
	}
	return headReply{}, luascript.UnexpectedCode(code)
}

// doneScript records the end of the deliveries of the first events of a chain's list, in one call
// for several (a chain records its acknowledgements a batch at a time): all acknowledged (their
// holds released), or the last one dead-lettered (kept, with its hold, until an operator retries or
// deletes it); then it reads the next heads (n of them; 0: none, the chain waits for a retry).
//
// KEYS[1] chain HASH, KEYS[2] the list, KEYS[3] dead ZSET, KEYS[4] dead info HASH
// ARGV: 1 prefix, 2 sub, 3 key, 4 task id, 5 ack|dead (the last element's end), 6 now ms, 7 dead
// info JSON, 8 the dead event's id, 9 how many heads to read next, 10… the list elements ended, in order.
// Returns headScript's answers.
var doneScript = luascript.New[doneArgs, headReply]("integrations done", commonLua+`
local P, sub, key = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[1], key) ~= ARGV[4] then return {'stale'} end
local m = #ARGV - 9
local els = redis.call('LRANGE', KEYS[2], 0, m - 1)
for i = 1, m do
  if els[i] ~= ARGV[9 + i] then return {'stale'} end
end
redis.call('LTRIM', KEYS[2], m, -1)
local acked = m
if ARGV[5] == 'dead' then
  acked = m - 1
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[8])
  redis.call('HSET', KEYS[4], ARGV[8], ARGV[7])
  redis.call('PERSIST', P .. 'integ:ev:' .. ARGV[8])
end
unhold(P, key, acked)
-- the chain's task is alive: the sweeper leaves it alone for another SweepEvery
redis.call('ZADD', P .. 'integ:chains:' .. sub, 'XX', ARGV[6], key)
return head(P, sub, key, KEYS[2], tonumber(ARGV[9]))
`, parseHeadReply)

type doneArgs struct {
	chainArgs
	elements []string // the list elements ended, in order (the list's first ones)
	dead     bool     // the last one is dead-lettered, the others acknowledged
	eventID  string   // the dead one's event
	now      int64
	info     string
	next     int // heads to read next
}

func (a doneArgs) KeysAndArgv() ([]string, []any) {
	mode := "ack"
	if a.dead {
		mode = "dead"
	}
	argv := make([]any, 0, 9+len(a.elements))
	argv = append(argv, a.keys.prefix(), a.sub, a.key, a.taskID, mode, a.now, a.info, a.eventID, a.next)
	for _, el := range a.elements {
		argv = append(argv, el)
	}
	return []string{a.keys.chain(a.sub), a.keys.queue(a.sub, a.key), a.keys.dead(a.sub), a.keys.deadInfo(a.sub)}, argv
}

// dropScript forgets everything a subscription still had to deliver: its lists (releasing their
// holds) and its dead letters (releasing theirs). Mode "disabled" (a 410 Gone) marks it disabled;
// "removed" (no longer configured) forgets it.
//
// KEYS[1] chain HASH, KEYS[2] chains ZSET, KEYS[3] dead ZSET, KEYS[4] dead info HASH, KEYS[5] health
// HASH, KEYS[6] subscriptions SET
// ARGV: 1 prefix, 2 sub, 3 disabled|removed, 4 reason, 5 now ms. Returns the events dropped.
var dropScript = luascript.New[dropArgs, int64]("integrations drop", commonLua+`
local P, sub = ARGV[1], ARGV[2]
local dropped = 0
for _, key in ipairs(redis.call('HKEYS', KEYS[1])) do
  local q = P .. 'integ:q:' .. sub .. ':' .. key
  local n = redis.call('LLEN', q)
  unhold(P, key, n)
  dropped = dropped + n
  redis.call('DEL', q)
end
for _, eid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local ok, info = pcall(cjson.decode, redis.call('HGET', KEYS[4], eid) or '')
  if ok and type(info) == 'table' and type(info.key) == 'string' then unhold(P, info.key, 1) end
  dropped = dropped + 1
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
if ARGV[3] == 'disabled' then
  redis.call('HSET', KEYS[5], 'state', 'disabled', 'disabled_at', ARGV[5], 'last_error', ARGV[4])
else
  redis.call('DEL', KEYS[5])
  redis.call('SREM', KEYS[6], sub)
end
return dropped
`, luascript.Integer)

type dropArgs struct {
	keys      keys
	sub, mode string
	reason    string
	now       int64
}

func (a dropArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.chain(a.sub), a.keys.chains(a.sub), a.keys.dead(a.sub), a.keys.deadInfo(a.sub), a.keys.health(a.sub), a.keys.subs()},
		[]any{a.keys.prefix(), a.sub, a.mode, a.reason, a.now}
}

// deadScript acts on one dead letter: "delete" releases its hold and lets the retained event expire
// in retain ms; "retry" puts it back at the end of its list (its hold stays: it is still owed).
//
// KEYS[1] dead ZSET, KEYS[2] dead info HASH
// ARGV: 1 prefix, 2 sub, 3 event id, 4 delete|retry, 5 now ms, 6 retain ms
// Returns {"not_found"} or {"ok", chain started: {sub, key, task id} or {}}.
var deadScript = luascript.New[deadArgs, deadReply]("integrations dead letter", commonLua+`
local P, sub, eid = ARGV[1], ARGV[2], ARGV[3]
if not redis.call('ZSCORE', KEYS[1], eid) then return {'not_found'} end
local ok, info = pcall(cjson.decode, redis.call('HGET', KEYS[2], eid) or '')
local key = ''
if ok and type(info) == 'table' and type(info.key) == 'string' then key = info.key end
redis.call('ZREM', KEYS[1], eid)
redis.call('HDEL', KEYS[2], eid)
if ARGV[4] == 'delete' or key == '' then
  unhold(P, key, 1)
  redis.call('PEXPIRE', P .. 'integ:ev:' .. eid, ARGV[6])
  return {'ok', {}}
end
redis.call('PEXPIRE', P .. 'integ:ev:' .. eid, ARGV[6])
local tid = push(P, sub, key, eid .. '|' .. ARGV[5], tonumber(ARGV[5]))
if tid then return {'ok', {{sub, key, tid}}} end
return {'ok', {}}
`, parseDeadReply)

type deadArgs struct {
	keys         keys
	sub, eventID string
	retry        bool
	now, retain  int64
}

func (a deadArgs) KeysAndArgv() ([]string, []any) {
	mode := "delete"
	if a.retry {
		mode = "retry"
	}
	return []string{a.keys.dead(a.sub), a.keys.deadInfo(a.sub)}, []any{a.keys.prefix(), a.sub, a.eventID, mode, a.now, a.retain}
}

type deadReply struct {
	found  bool
	starts []chainStart
}

func parseDeadReply(v any) (deadReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return deadReply{}, err
	}
	switch code {
	case "not_found":
		return deadReply{}, nil
	case "ok":
		return deadReply{found: true, starts: parseStarts(a.Array(1))}, nil
	}
	return deadReply{}, luascript.UnexpectedCode(code)
}

// replayScript pushes retained events again on a subscription's lists (same ids), holding their
// conversations; events that expired meanwhile are skipped.
//
// KEYS[1] health HASH. ARGV: 1 prefix, 2 sub, 3 now ms, then pairs: event id, order key.
// Returns {"disabled"} or {"ok", pushed, {{sub, key, task id}, …}}.
var replayScript = luascript.New[replayArgs, replayReply]("integrations replay", commonLua+`
local P, sub, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
if disabled(P, sub) then return {'disabled'} end
local starts, n = {}, 0
for i = 4, #ARGV, 2 do
  local eid, key = ARGV[i], ARGV[i + 1]
  if redis.call('EXISTS', P .. 'integ:ev:' .. eid) == 1 then
    hold(P, key, 1, now)
    local tid = push(P, sub, key, eid .. '|' .. ARGV[3], now)
    if tid then table.insert(starts, {sub, key, tid}) end
    n = n + 1
  end
end
return {'ok', n, starts}
`, parseReplayReply)

type replayArgs struct {
	keys   keys
	sub    string
	now    int64
	events [][2]string // id, order key
}

func (a replayArgs) KeysAndArgv() ([]string, []any) {
	argv := []any{a.keys.prefix(), a.sub, a.now}
	for _, e := range a.events {
		argv = append(argv, e[0], e[1])
	}
	return []string{a.keys.health(a.sub)}, argv
}

type replayReply struct {
	disabled bool
	pushed   int64
	starts   []chainStart
}

func parseReplayReply(v any) (replayReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return replayReply{}, err
	}
	switch code {
	case "disabled":
		return replayReply{disabled: true}, nil
	case "ok":
		return replayReply{pushed: a.Int(1), starts: parseStarts(a.Array(2))}, nil
	}
	return replayReply{}, luascript.UnexpectedCode(code)
}

// healthScript records an attempt's outcome and says when the subscription's health changed (so
// one log line is written per change, whichever process saw it). A subscription is unhealthy after
// threshold failed attempts in a row, healthy again at the first success; a disabled one stays so.
//
// KEYS[1] health HASH. ARGV: 1 ok|fail, 2 now ms, 3 error, 4 threshold.
// Returns "" or the new state.
var healthScript = luascript.New[healthArgs, string]("integrations health", `
local st = redis.call('HGET', KEYS[1], 'state') or 'healthy'
if st == 'disabled' then return '' end
if ARGV[1] == 'ok' then
  redis.call('HSET', KEYS[1], 'failures', 0, 'last_success_at', ARGV[2])
  if st ~= 'healthy' then
    redis.call('HSET', KEYS[1], 'state', 'healthy', 'changed_at', ARGV[2])
    redis.call('HDEL', KEYS[1], 'failing_since')
    return 'healthy'
  end
  return ''
end
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[3], 'last_failure_at', ARGV[2])
if n == 1 then redis.call('HSET', KEYS[1], 'failing_since', ARGV[2]) end
if st ~= 'unhealthy' and n >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'state', 'unhealthy', 'changed_at', ARGV[2])
  return 'unhealthy'
end
return ''
`, func(v any) (string, error) {
	s, _ := v.(string)
	return s, nil
})

type healthArgs struct {
	key       string
	ok        bool
	now       int64
	err       string
	threshold int
}

func (a healthArgs) KeysAndArgv() ([]string, []any) {
	r := "fail"
	if a.ok {
		r = "ok"
	}
	return []string{a.key}, []any{r, a.now, a.err, a.threshold}
}
