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
	// Running the floor (floor.go).
	EventConversationTransferred = "conversation.transferred" // to the former and the new holder, and supervisors
	EventConversationUnanswered  = "conversation.unanswered"  // to the holder and supervisors
	EventWrapUpStarted           = "wrap_up.started"          // to the agent and supervisors
	EventWrapUpEnded             = "wrap_up.ended"            // to the agent and supervisors
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
	Transfer     any       `json:"transfer,omitempty"`
	Unanswered   any       `json:"unanswered,omitempty"`
	WrapUp       any       `json:"wrap_up,omitempty"`
}

// Publisher appends an event to an agent's stream, durably for the resume window, and wakes the
// agent's open streams on every replica.
type Publisher interface {
	Publish(ctx context.Context, agent string, ev Event) (id string, err error)
}

// SupervisorPublisher carries events meant for supervisors (the supervisor stream). Routing publishes
// conversation.transferred, conversation.unanswered and wrap-up events to it; without one set, they
// go only to the agents' streams.
type SupervisorPublisher interface {
	PublishSupervisor(ctx context.Context, ev Event) error
}
