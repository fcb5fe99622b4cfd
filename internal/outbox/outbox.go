// Package outbox records the events the gateway hands to integrations (webhook subscriptions) in a
// per-tenant Redis stream, written in the same Lua script as the state change it reports, so an
// event is never lost between the change and its emission: a process that dies after the script
// ran leaves the event in the stream, and the integrations dispatcher moves it on.
//
// The stream is written only while integrations are on for the tenant (the key integ:on exists,
// set by the integrations service at start when a subscription is configured), so a gateway
// without subscriptions pays one EXISTS per emitting script and keeps nothing.
//
// An entry carries references, not bodies: t (event type), c (conversation id, "" when none), at
// (ms) and the ids the dispatcher reads the body from (m message, k card, a agent, s status, …).
package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
)

// Event types.
const (
	ConversationOpened      = "conversation.opened"
	ConversationTransferred = "conversation.transferred"
	ConversationClosed      = "conversation.closed"
	MessageReceived         = "message.received"
	MessageSent             = "message.sent"
	MessageStatus           = "message.status"
	CardOffered             = "card.offered"
	CardAccepted            = "card.accepted"
	CardDeclined            = "card.declined"
	CardTimedOut            = "card.timed_out"
	CardRequeued            = "card.requeued"
	PresenceChanged         = "presence.changed"
)

// Types lists every event type, in the catalogue's order.
var Types = []string{ConversationOpened, MessageReceived, MessageSent, MessageStatus, CardOffered, CardAccepted,
	CardDeclined, CardTimedOut, CardRequeued, ConversationTransferred, ConversationClosed, PresenceChanged}

// Entry fields.
const (
	FieldType         = "t"
	FieldConversation = "c"
	FieldAt           = "at"
	FieldMessage      = "m"
	FieldCard         = "k"
	FieldAgent        = "a"
	FieldStatus       = "s"
	FieldData         = "d" // a JSON object merged into the event's data (Go emitters)
)

// Lua defines outboxEmit(P, nowMs, type, conversation, field, value, …) for a script to append an
// event to the tenant's outbox when integrations are on. Scripts concatenate it before their body.
const Lua = `
local outboxOn
local function outboxEmit(P, nowMs, typ, conv, ...)
  -- the flag cannot change while the script runs: asked once per call
  if outboxOn == nil then outboxOn = redis.call('EXISTS', P .. 'integ:on') == 1 end
  if not outboxOn then return end
  redis.call('XADD', P .. 'integ:outbox', '*', 't', typ, 'c', conv or '', 'at', nowMs, ...)
end
`

// OnKey is the flag that turns the outbox on for a tenant.
func OnKey(ks keyspace.Space) string { return ks.Key("integ", "on") }

// StreamKey is the tenant's outbox stream.
func StreamKey(ks keyspace.Space) string { return ks.Key("integ", "outbox") }

// emitScript appends one event from Go, under the same condition as the Lua emitters.
var emitScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV))
return 1
`)

// Emit appends an event from Go code. It is one atomic step of its own: use it where the state
// change is not a Lua script (or cannot carry an XADD line); a crash between the change and Emit
// loses the event, which a script's outboxEmit does not. fields are extra entry fields (FieldData:
// a JSON object merged into the event's data).
func Emit(ctx context.Context, c redis.Scripter, ks keyspace.Space, typ, conversationID string, at time.Time, fields map[string]string) error {
	argv := make([]any, 0, 6+2*len(fields))
	argv = append(argv, FieldType, typ, FieldConversation, conversationID, FieldAt, at.UnixMilli())
	for k, v := range fields {
		argv = append(argv, k, v)
	}
	if err := emitScript.Run(ctx, c, []string{OnKey(ks), StreamKey(ks)}, argv...).Err(); err != nil {
		return fmt.Errorf("outbox emit %s: %w", typ, err)
	}
	return nil
}
