package routing

import (
	"context"

	"github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/presence"
)

// StreamLog is the durable part of the agents' event streams: one Redis STREAM per agent, trimmed
// to maxLen entries, whose entry ids are the events' ids (the SSE ids a client resumes from).
type StreamLog struct {
	client redis.UniversalClient
	keys   keys
	maxLen int64
}

var _ Publisher = (*StreamLog)(nil)

// NewStreamLog builds the per-agent event log.
func NewStreamLog(client redis.UniversalClient, ks keyspace.Space, maxLen int64) *StreamLog {
	if maxLen <= 0 {
		maxLen = 1000
	}
	return &StreamLog{client: client, keys: keys{ks}, maxLen: maxLen}
}

// publishScript appends an event to the agent's stream and announces it on the tenant's event
// channel in one step, so a live reader never sees an announcement of an event it cannot re-read.
//
// KEYS[1] the agent's STREAM; ARGV: 1 max length, 2 type, 3 event JSON, 4 channel, 5 agent.
// Returns the entry id.
var publishScript = redis.NewScript(`
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[2], 'event', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\n' .. id .. '\n' .. ARGV[3])
return id
`)

// Publish appends the event to the agent's stream, wakes its open streams on every replica, and
// returns the event's id.
func (s *StreamLog) Publish(ctx context.Context, agent string, ev Event) (string, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	return publishScript.Run(ctx, s.client, []string{s.keys.events(agent)}, s.maxLen, ev.Type, body, s.keys.eventsChannel(), agent).Text()
}

// Since returns the agent's events after id ("0" for all kept), oldest first.
func (s *StreamLog) Since(ctx context.Context, agent, id string, count int64) ([]Event, error) {
	entries, err := s.client.XRangeN(ctx, s.keys.events(agent), "("+id, "+", count).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(entries))
	for _, e := range entries {
		var ev Event
		if raw, ok := e.Values["event"].(string); ok && json.Unmarshal([]byte(raw), &ev) == nil {
			ev.ID = e.ID
			out = append(out, ev)
		}
	}
	return out, nil
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
