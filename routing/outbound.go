package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Errors of agent-initiated messages.
var (
	ErrNotLoggedIn          = errors.New("the agent is not logged in on the channel")
	ErrAtCapacity           = errors.New("the agent is at capacity on the channel")
	ErrConversationTaken    = errors.New("the customer has an open conversation with another agent")
	ErrConversationClosed   = errors.New("the conversation is closed")
	ErrNotAssigned          = errors.New("the conversation is not assigned to this agent")
	ErrNotAccepted          = errors.New("the card of the conversation is not accepted yet")
	ErrWindowClosed         = errors.New("the customer service window is closed")
	ErrConversationNotFound = errors.New("no such conversation")
)

// Outbound is a message an agent sends: its kind ("template", "text", or a media kind), the text
// shown in the conversation, and the provider-facing details as JSON.
type Outbound struct {
	Kind    string
	Text    string
	Payload json.RawMessage
}

// StartRequest opens a conversation from the agent's side (a WhatsApp template).
type StartRequest struct {
	Agent        string
	Channel      string
	EntryPoint   string // the sending number
	ContactPhone string // the customer's number, digits only (Meta's wa_id)
	Message      Outbound
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
// 8 new conversation id, 9 new card id, 10 message id, 11 now ms, 12 kind, 13 text, 14 payload, 15 new contact id
// Returns {"ok", conversation id, new 1|0} or {"not_logged_in"} / {"at_capacity"} / {"taken", conversation id}.
var startScript = redis.NewScript(`
local P, agent, ch = ARGV[1], ARGV[2], ARGV[3]
local st = redis.call('HGET', P .. 'presence:' .. agent, ch)
if st ~= 'online' and st ~= 'paused' then return {'not_logged_in'} end
local contact = redis.call('GET', KEYS[1])
local conv
if contact then conv = redis.call('GET', P .. 'convopen:' .. ch .. ':' .. ARGV[4] .. ':' .. contact) end
local new = '0'
if conv then
  local holder = redis.call('HGET', P .. 'conv:' .. conv, 'agent')
  local card = redis.call('HGET', P .. 'conv:' .. conv, 'card')
  if holder ~= agent or redis.call('HGET', P .. 'card:' .. card, 'state') ~= 'accepted' then return {'taken', conv} end
else
  local cap = tonumber(redis.call('HGET', P .. 'cap:' .. agent, ch) or '0')
  local load = tonumber(redis.call('HGET', P .. 'load:' .. agent, ch) or '0')
  if load >= cap then return {'at_capacity'} end
  if not contact then
    contact = ARGV[15]
    redis.call('HSET', P .. 'contact:' .. contact, 'id', contact, 'channel', ch, 'created_at', ARGV[11], 'phone', ARGV[6])
    redis.call('SET', KEYS[1], contact)
    redis.call('SADD', P .. 'contactids:' .. contact, ARGV[5])
  end
  local cf = redis.call('HMGET', P .. 'contact:' .. contact, 'bsuid', 'username', 'name')
  conv, new = ARGV[8], '1'
  redis.call('HSET', P .. 'conv:' .. conv, 'id', conv, 'channel', ch, 'entry_point', ARGV[4], 'queue', ARGV[7],
    'contact_id', contact, 'contact_name', cf[3] or '', 'contact_phone', '+' .. ARGV[6], 'contact_bsuid', cf[1] or '',
    'contact_username', cf[2] or '', 'state', 'open', 'agent', agent,
    'card', ARGV[9], 'opened_at', ARGV[11], 'origin', 'agent')
  redis.call('SET', P .. 'convopen:' .. ch .. ':' .. ARGV[4] .. ':' .. contact, conv)
  redis.call('HSET', P .. 'card:' .. ARGV[9], 'id', ARGV[9], 'conversation_id', conv, 'queue', ARGV[7],
    'channel', ch, 'state', 'accepted', 'agent', agent, 'created_at', ARGV[11], 'offered_at', ARGV[11],
    'accepted_at', ARGV[11], 'preview', ARGV[13])
  redis.call('HINCRBY', P .. 'load:' .. agent, ch, 1)
  redis.call('SADD', P .. 'agentcards:' .. agent, ARGV[9])
end
redis.call('HSET', P .. 'msg:' .. ARGV[10], 'id', ARGV[10], 'conversation_id', conv, 'direction', 'out',
  'channel', ch, 'kind', ARGV[12], 'text', ARGV[13], 'payload', ARGV[14], 'at', ARGV[11], 'agent', agent, 'status', 'queued')
redis.call('RPUSH', P .. 'convmsgs:' .. conv, ARGV[10])
return {'ok', conv, new}
`)

// replyScript records an agent's reply in one step, after checking the conversation is open, held
// by the agent with its card accepted, and — when a window applies — that the customer service
// window is still open.
//
// KEYS[1] conversation HASH
// ARGV: 1 prefix, 2 agent, 3 message id, 4 now ms, 5 kind, 6 text, 7 payload, 8 check window 1|0
// Returns {"ok", channel} or {"not_found"} / {"closed"} / {"not_assigned"} / {"not_accepted"} / {"window_closed"}.
var replyScript = redis.NewScript(`
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
return {'ok', c[4]}
`)

// StartConversation opens a conversation from the agent's side and records its first message as
// queued. It reports the conversation, the message and whether the conversation is new.
func (r *Router) StartConversation(ctx context.Context, req StartRequest) (Conversation, Message, bool, error) {
	queue, ok := r.QueueFor(req.Channel, req.EntryPoint)
	if !ok {
		return Conversation{}, Message{}, false, ErrUnknownQueue
	}
	now := r.clock.Now()
	msgID := newID()
	phone := Identifier{Kind: IdentPhone, Value: strings.TrimPrefix(req.ContactPhone, "+")}
	out, err := startScript.Run(ctx, r.client, []string{r.keys.ident(req.Channel, phone)},
		r.keys.prefix(), req.Agent, req.Channel, req.EntryPoint, phone.Kind+":"+phone.Value, phone.Value, queue,
		newID(), newID(), msgID, now.UnixMilli(), req.Message.Kind, req.Message.Text, string(req.Message.Payload), newID()).StringSlice()
	if err != nil {
		return Conversation{}, Message{}, false, fmt.Errorf("start conversation: %w", err)
	}
	switch out[0] {
	case "not_logged_in":
		return Conversation{}, Message{}, false, ErrNotLoggedIn
	case "at_capacity":
		return Conversation{}, Message{}, false, ErrAtCapacity
	case "taken":
		return Conversation{ID: out[1]}, Message{}, false, ErrConversationTaken
	}
	conv, err := r.Conversation(ctx, out[1])
	if err != nil {
		return Conversation{}, Message{}, false, err
	}
	if out[2] == "1" {
		r.refreshAgent(ctx, req.Agent, req.Channel)
	}
	msg := Message{ID: msgID, ConversationID: conv.ID, Direction: "out", Channel: req.Channel, Kind: req.Message.Kind,
		Text: req.Message.Text, Payload: req.Message.Payload, At: now.UTC(), Agent: req.Agent, Status: "queued"}
	return conv, msg, out[2] == "1", nil
}

// Reply records an agent's message in its conversation as queued. On a channel with a customer
// service window (WhatsApp's 24 hours after the customer's last message), free-form messages are
// refused once it is closed.
func (r *Router) Reply(ctx context.Context, conversationID, agent string, m Outbound) (Conversation, Message, error) {
	now := r.clock.Now()
	msgID := newID()
	window := "0"
	if m.Kind != "template" {
		window = "1"
	}
	conv, err := r.Conversation(ctx, conversationID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Conversation{}, Message{}, ErrConversationNotFound
		}
		return Conversation{}, Message{}, err
	}
	if r.topo.Channel(conv.Channel).Window == 0 {
		window = "0"
	}
	out, err := replyScript.Run(ctx, r.client, []string{r.keys.conv(conversationID)}, r.keys.prefix(), agent, msgID,
		now.UnixMilli(), m.Kind, m.Text, string(m.Payload), window).StringSlice()
	if err != nil {
		return Conversation{}, Message{}, fmt.Errorf("reply: %w", err)
	}
	switch out[0] {
	case "not_found":
		return Conversation{}, Message{}, ErrConversationNotFound
	case "closed":
		return conv, Message{}, ErrConversationClosed
	case "not_assigned":
		return conv, Message{}, ErrNotAssigned
	case "not_accepted":
		return conv, Message{}, ErrNotAccepted
	case "window_closed":
		return conv, Message{}, ErrWindowClosed
	}
	msg := Message{ID: msgID, ConversationID: conv.ID, Direction: "out", Channel: out[1], Kind: m.Kind, Text: m.Text,
		Payload: m.Payload, At: now.UTC(), Agent: agent, Status: "queued"}
	return conv, msg, nil
}

// Message returns one stored message.
func (r *Router) Message(ctx context.Context, id string) (Message, error) {
	h, err := r.client.HGetAll(ctx, r.keys.msg(id)).Result()
	if err != nil {
		return Message{}, err
	}
	if len(h) == 0 {
		return Message{}, ErrNotFound
	}
	return messageFrom(h), nil
}

// FailMessage marks a queued message failed when it could not even be handed to its channel.
func (r *Router) FailMessage(ctx context.Context, id string, code int, title string) {
	if _, _, err := r.UpdateStatus(ctx, id, StatusUpdate{State: "failed", Error: &MessageError{Code: code, Title: title}}); err != nil {
		r.logger.Warn("could not mark a message failed", "message_id", id, "err", err)
	}
}
