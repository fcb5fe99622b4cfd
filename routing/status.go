package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// StatusUpdate is news about an outbound message: sent (with the provider's id), delivered, read,
// played, failed with the provider's reason, deleted, or a warning (its reason in Error).
type StatusUpdate struct {
	State             string
	At                time.Time
	ProviderMessageID string
	Error             *MessageError
	// Channel is the message's channel when the caller has read the message already: recording a
	// provider id then needs no extra read (empty: UpdateStatus reads it).
	Channel string
}

// RecordOutbound stores a message the agent sends in its conversation, status queued.
func (r *Router) RecordOutbound(ctx context.Context, conversationID, agent, kind, text string, payload json.RawMessage) (Message, error) {
	conv, err := r.Conversation(ctx, conversationID)
	if err != nil {
		return Message{}, err
	}
	now := r.clock.Now()
	m := Message{ID: newID(), ConversationID: conv.ID, Direction: "out", Channel: conv.Channel, Kind: kind, Text: text,
		Payload: payload, At: now.UTC(), Agent: agent, Status: "queued"}
	pipe := r.client.TxPipeline()
	pipe.HSet(ctx, r.keys.msg(m.ID), "id", m.ID, "conversation_id", m.ConversationID, "direction", "out", "channel", m.Channel,
		"kind", kind, "text", text, "payload", string(payload), "at", now.UnixMilli(), "agent", agent, "status", "queued")
	pipe.RPush(ctx, r.keys.convMsgs(conv.ID), m.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return Message{}, err
	}
	return m, nil
}

// StatusOutcome says what a status did to its message.
type StatusOutcome string

// Outcomes of a status.
const (
	// StatusApplied: the message changed (its agent was told).
	StatusApplied StatusOutcome = "applied"
	// StatusStale: the message is already past this status (out-of-order delivery, a repeat).
	StatusStale StatusOutcome = "stale"
	// StatusPending: no message has this provider id yet (the send's answer is still on its way); the
	// status is kept and applied when the id is recorded.
	StatusPending StatusOutcome = "pending"
	// StatusDropped: kept for no one: the pending buffer of this provider id is full.
	StatusDropped StatusOutcome = "dropped"
	// StatusInbound: the id is a customer's message; a status never changes those.
	StatusInbound StatusOutcome = "inbound"
	// StatusUnknown: a status this version does not know; nothing changed.
	StatusUnknown StatusOutcome = "unknown"
)

// Bounds of the statuses kept for provider ids not recorded yet: the send's answer comes within
// seconds (a worker insists for about ten when Redis hiccups), so a quarter of an hour is plenty.
const (
	pendingStatusTTL   = 15 * time.Minute
	pendingPerMessage  = 8     // room for each of the seven statuses Meta sends, once
	pendingStatusesMax = 10000 // provider ids waiting at once, per tenant; the oldest gives way
)

// KnownStatus reports whether state is one the status machine applies.
func KnownStatus(state string) bool {
	switch state {
	case "queued", "sent", "delivered", "read", "played", "failed", "deleted", "warning":
		return true
	}
	return false
}

// statusLua is the status machine shared by the scripts below. It tolerates the provider's
// out-of-order delivery: queued < sent < delivered < read < played (a voice message heard); failed
// is final and a failed after read is ignored (read proves delivery); deleted and warning are
// marks beside the status (deleted_at; warning_*), applied once. Only outbound messages take a
// status: a provider id of a customer's message changes nothing.
//
// apply(message key, status, at ms, error code, title, message, details) returns 'ok', 'stale',
// 'inbound', 'unknown' or 'not_found'. drain(message key, pending list) applies the kept statuses
// in the machine's order.
const statusLua = `
local rank = {queued = 1, sent = 2, delivered = 3, read = 4, played = 5}
local order = {queued = 0, sent = 1, delivered = 2, read = 3, played = 4, failed = 5, warning = 6, deleted = 7}
local function apply(k, st, at, code, title, message, details, summary)
  local h = redis.call('HMGET', k, 'id', 'direction', 'status', 'provider_message_id', 'deleted_at', 'warning_code')
  if not h[1] then return 'not_found' end
  if h[2] ~= 'out' then return 'inbound' end
  if not order[st] then return 'unknown' end
  local cur = h[3] or 'queued'
  if st == 'deleted' then
    if h[5] then return 'stale' end
    redis.call('HSET', k, 'deleted_at', at)
    return 'ok'
  end
  if st == 'warning' then
    if h[6] and h[6] == code then return 'stale' end
    redis.call('HSET', k, 'warning_code', code, 'warning_title', title, 'warning_message', message, 'warning_details', details, 'warning_at', at)
    return 'ok'
  end
  -- failed is final, but for one case: an operator runs an archived send again ("Retry now") whose
  -- failure came before the provider accepted it (no provider id): it goes back to queued.
  if st == 'queued' and cur == 'failed' and (h[4] or '') == '' then
    redis.call('HDEL', k, 'error_code', 'error_title', 'error_message', 'error_details', 'error_summary')
    redis.call('HSET', k, 'status', 'queued', 'status_at', at)
    return 'ok'
  end
  if cur == 'failed' then return 'stale' end
  local cr = rank[cur] or 1
  if st == 'failed' then
    if cr >= rank.read then return 'stale' end
    redis.call('HSET', k, 'status', 'failed', 'status_at', at, 'error_code', code, 'error_title', title,
      'error_message', message, 'error_details', details, 'error_summary', summary)
    return 'ok'
  end
  if rank[st] <= cr then return 'stale' end
  redis.call('HSET', k, 'status', st, 'status_at', at)
  return 'ok'
end
local function drain(k, list)
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
    apply(k, v.s, tostring(v.at or ''), tostring(v.code or ''), tostring(v.title or ''), tostring(v.message or ''), tostring(v.details or ''), tostring(v.summary or ''))
  end
  redis.call('DEL', list)
end
local function reply(res, k, P)
  local agent = ''
  if res == 'ok' then
    agent = redis.call('HGET', P .. 'conv:' .. (redis.call('HGET', k, 'conversation_id') or ''), 'agent') or ''
  end
  local out = {res, agent}
  for _, v in ipairs(redis.call('HGETALL', k)) do table.insert(out, v) end
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
// 11 error summary (one sentence for the agent)
// Returns {"ok"|"stale", conversation's agent (when ok), message fields…} / {"inbound"} /
// {"unknown"} / {"not_found"}: the caller tells the agent without reading anything again.
var statusScript = redis.NewScript(statusLua + `
local k = KEYS[1]
local res = apply(k, ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[11])
if res ~= 'ok' and res ~= 'stale' then return {res} end
if res == 'ok' and ARGV[3] ~= '' then redis.call('HSET', k, 'provider_message_id', ARGV[3]) end
if res == 'ok' and ARGV[8] == '1' then
  redis.call('SET', KEYS[2], redis.call('HGET', k, 'id'), 'EX', ARGV[9])
  if redis.call('EXISTS', KEYS[3]) == 1 then
    drain(k, KEYS[3])
    redis.call('ZREM', KEYS[4], KEYS[3])
  end
end
return reply(res, k, ARGV[10])
`)

// providerStatusScript applies a provider's status webhook to the message with that provider id;
// when no message has it yet, the status is kept (bounded per id and overall, with a TTL) for
// statusScript to apply when the send's answer records the id. Lookup and keeping are one step, so
// a status cannot slip between a send recording its id and the buffer being read.
//
// KEYS[1] pmsg key, KEYS[2] its pending LIST, KEYS[3] the pending index ZSET (list key → expiry ms)
// ARGV: 1 status, 2 at ms, 3 error code, 4 title, 5 message, 6 details, 7 prefix, 8 pending TTL s,
// 9 most per id, 10 most ids, 11 now ms, 12 error summary
// Returns statusScript's answers, or {"pending"} / {"dropped"}.
var providerStatusScript = redis.NewScript(statusLua + `
local id = redis.call('GET', KEYS[1])
if id then
  local k = ARGV[7] .. 'msg:' .. id
  local res = apply(k, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[12])
  if res ~= 'ok' and res ~= 'stale' then return {res} end
  return reply(res, k, ARGV[7])
end
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
`)

// UpdateStatus applies a status to a stored message (see statusLua for the order rules) and tells
// the message's agent. It reports whether the status changed anything.
func (r *Router) UpdateStatus(ctx context.Context, messageID string, u StatusUpdate) (Message, bool, error) {
	at := r.statusTime(u)
	code, title, message, details, summary := errorArgs(u.Error)
	index, channel := "0", "none"
	if u.ProviderMessageID != "" {
		channel = u.Channel
		if channel == "" {
			if h, err := r.client.HGet(ctx, r.keys.msg(messageID), "channel").Result(); err == nil {
				channel = h
			} else {
				channel = "none"
			}
		}
		index = "1"
	}
	pid := u.ProviderMessageID
	if pid == "" {
		pid = messageID
	}
	out, err := statusScript.Run(ctx, r.client, []string{r.keys.msg(messageID), r.keys.pmsg(channel, pid),
		r.keys.pendingStatuses(channel, pid), r.keys.pendingIndex()}, u.State, at.UnixMilli(), u.ProviderMessageID,
		code, title, message, details, index, int64(dedupTTL/time.Second), r.keys.prefix(), summary).StringSlice()
	if err != nil {
		return Message{}, false, fmt.Errorf("status: %w", err)
	}
	if out[0] == "not_found" {
		return Message{}, false, ErrNotFound
	}
	m, outcome := r.statusResult(ctx, out)
	return m, outcome == StatusApplied, nil
}

// ApplyProviderStatus applies a provider's status webhook, finding the message by the provider's id,
// or keeps it for the send whose answer has not recorded that id yet.
func (r *Router) ApplyProviderStatus(ctx context.Context, channel, providerMessageID string, u StatusUpdate) (Message, StatusOutcome, error) {
	if !KnownStatus(u.State) {
		return Message{}, StatusUnknown, nil
	}
	at := r.statusTime(u)
	code, title, message, details, summary := errorArgs(u.Error)
	list := r.keys.pendingStatuses(channel, providerMessageID)
	out, err := providerStatusScript.Run(ctx, r.client, []string{r.keys.pmsg(channel, providerMessageID), list, r.keys.pendingIndex()},
		u.State, at.UnixMilli(), code, title, message, details, r.keys.prefix(), int64(pendingStatusTTL/time.Second),
		pendingPerMessage, pendingStatusesMax, r.clock.Now().UnixMilli(), summary).StringSlice()
	if err != nil {
		return Message{}, "", fmt.Errorf("status: %w", err)
	}
	if out[0] == "not_found" {
		// The index outlived its message: nothing to change.
		return Message{}, StatusStale, nil
	}
	m, outcome := r.statusResult(ctx, out)
	return m, outcome, nil
}

func (r *Router) statusTime(u StatusUpdate) time.Time {
	if u.At.IsZero() {
		return r.clock.Now()
	}
	return u.At
}

func errorArgs(e *MessageError) (code, title, message, details, summary string) {
	if e == nil {
		return "", "", "", "", ""
	}
	c := *e
	c.summarize()
	return strconv.Itoa(c.Code), c.Title, c.Message, c.Details, c.Summary
}

// statusResult reads a status script's answer and tells the agent of a change.
func (r *Router) statusResult(ctx context.Context, out []string) (Message, StatusOutcome) {
	switch out[0] {
	case "ok", "stale":
	case "pending":
		return Message{}, StatusPending
	case "dropped":
		return Message{}, StatusDropped
	case "inbound":
		return Message{}, StatusInbound
	default:
		return Message{}, StatusUnknown
	}
	h := make(map[string]string, (len(out)-2)/2)
	for i := 2; i+1 < len(out); i += 2 {
		h[out[i]] = out[i+1]
	}
	m := messageFrom(h)
	if out[0] != "ok" {
		return m, StatusStale
	}
	agent := out[1]
	if agent == "" {
		agent = m.Agent
	}
	if agent != "" {
		r.publish(ctx, agent, Event{Type: EventMessageStatus, Message: m})
	}
	return m, StatusApplied
}
