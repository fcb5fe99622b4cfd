package routing

import (
	"context"

	"github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/sse"
	"github.com/chatgate/chatgate/presence"
)

// StreamLog is the durable part of the agents' event streams: one Redis STREAM per agent, trimmed
// to maxLen entries, whose entry ids are the events' ids (the SSE ids a client resumes from).
type StreamLog struct {
	log  *sse.Log
	keys keys
}

var _ Publisher = (*StreamLog)(nil)

// NewStreamLog builds the per-agent event log.
func NewStreamLog(client redis.UniversalClient, ks keyspace.Space, maxLen int64) *StreamLog {
	if maxLen <= 0 {
		maxLen = 1000
	}
	k := keys{ks}
	return &StreamLog{log: sse.NewLog(client, k.eventsChannel(), maxLen, 0), keys: k}
}

// Publish appends the event to the agent's stream, wakes its open streams on every replica, and
// returns the event's id.
func (s *StreamLog) Publish(ctx context.Context, agent string, ev Event) (string, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	return s.log.Append(ctx, s.keys.events(agent), agent, ev.Type, body)
}

// scriptAppender is a Publisher that lets a script append events of a type to the agent's log itself
// (sse.AppendLua), in the same step as the change they report, and be told afterwards.
type scriptAppender interface {
	// scriptLog is the log a script may append events of type typ to; nil when they must pass through Publish.
	scriptLog(typ string) *StreamLog
	// appended: a script appended an event of type typ to the agent's log; card is the card's id for a card.offered.
	appended(agent, typ, card string)
}

var _ scriptAppender = (*StreamLog)(nil)

func (s *StreamLog) scriptLog(string) *StreamLog     { return s }
func (s *StreamLog) appended(string, string, string) {}

// Since returns the agent's events after id ("0" for all kept), oldest first.
func (s *StreamLog) Since(ctx context.Context, agent, id string, count int64) ([]Event, error) {
	stored, err := s.log.After(ctx, s.keys.events(agent), id, count)
	if err != nil {
		return nil, err
	}
	return sse.Decode(stored, func(ev *Event, id string) { ev.ID = id }), nil
}

// PresenceEvents fans presence changes out to the agents' streams as presence.changed events.
type PresenceEvents struct {
	Publisher Publisher
}

// PresenceChanged publishes one event per changed channel to the agent concerned.
func (p PresenceEvents) PresenceChanged(ctx context.Context, changes []presence.Change) {
	for _, c := range changes {
		_, _ = p.Publisher.Publish(ctx, c.Agent, Event{Type: EventPresenceChanged, At: c.At, Presence: presenceEvent{ID: c.Agent + ":" + c.Channel, Change: c}})
	}
}

// presenceEvent gives the change an id, as every object on a stream has one.
type presenceEvent struct {
	ID string `json:"id"`
	presence.Change
}
