package presence

import (
	"context"
	"time"

	"github.com/chatgate/chatgate/internal/keyspace"
)

// State is an agent's state on one channel.
type State string

const (
	Offline State = "offline"
	Online  State = "online"
	Paused  State = "paused"
)

// Change is one channel's stored transition. Routing learns of every Change through a Listener.
type Change struct {
	Agent   string    `json:"agent"`
	Channel string    `json:"channel"`
	From    State     `json:"from"`
	To      State     `json:"to"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`    // who asked: the agent, a supervisor's id, or "system"
	Cause   string    `json:"cause,omitempty"` // toggle, group (shared-queue rule), disconnected, no_answer
	At      time.Time `json:"at"`
}

// Listener learns of transitions after they are stored: routing offers waiting cards on login and
// resume, requeues conversations on logout, and fans presence.changed out to the event streams.
type Listener interface {
	PresenceChanged(ctx context.Context, changes []Change)
}

// StateKey is the HASH holding an agent's presence: field <channel> → state, <channel>:since → Unix
// milliseconds, <channel>:reason → pause reason id. Routing's scripts read field <channel> to check
// "online at the moment of the offer" atomically with the offer.
func StateKey(ks keyspace.Space, agent string) string { return ks.Key("presence", agent) }
