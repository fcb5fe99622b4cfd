package routing

import (
	"context"
	"time"
)

// Event types on an agent's stream; clients rely on these names.
const (
	EventCardOffered        = "card.offered"
	EventCardRevoked        = "card.revoked"
	EventCardAccepted       = "card.accepted" // to the accepting agent: its other tabs follow
	EventCardDeclined       = "card.declined" // to the declining agent: its other tabs drop the card
	EventMessageReceived    = "message.received"
	EventMessageStatus      = "message.status"
	EventPresenceChanged    = "presence.changed"
	EventConversationClosed = "conversation.closed"
)

// Event is one entry of an agent's stream: a JSON object with type, at and the objects it concerns,
// each with its own id. ID is assigned when the event is stored and is the SSE id used by Last-Event-ID.
type Event struct {
	ID           string    `json:"id,omitempty"`
	Type         string    `json:"type"`
	At           time.Time `json:"at"`
	Card         any       `json:"card,omitempty"`
	Conversation any       `json:"conversation,omitempty"`
	Message      any       `json:"message,omitempty"`
	Presence     any       `json:"presence,omitempty"`
}

// Publisher appends an event to an agent's stream, durably for the resume window, and wakes the
// agent's open streams on every replica.
type Publisher interface {
	Publish(ctx context.Context, agent string, ev Event) (id string, err error)
}
