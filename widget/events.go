package widget

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/sse"
)

// Event types on a visitor's stream.
const (
	EventMessage            = "message"             // a message of the conversation (from the visitor or an agent)
	EventTyping             = "typing"              // the agent is writing
	EventConversationClosed = "conversation.closed" // the agent ended the conversation
)

// Event is one entry of a visitor's stream. ID is the Redis stream entry id, the SSE id a widget
// resumes from with Last-Event-ID.
type Event struct {
	ID           string          `json:"id,omitempty"`
	Type         string          `json:"type"`
	At           time.Time       `json:"at"`
	Message      *VisitorMessage `json:"message,omitempty"`
	Conversation *EventConv      `json:"conversation,omitempty"`
}

// VisitorMessage is a message as the visitor sees it: no agent ids, only what the widget shows.
type VisitorMessage struct {
	ID             string          `json:"id"`
	ConversationID string          `json:"conversation_id,omitempty"`
	From           string          `json:"from"` // visitor | agent
	Kind           string          `json:"kind"`
	Text           string          `json:"text,omitempty"`
	Media          json.RawMessage `json:"media,omitempty"`
	Attachments    json.RawMessage `json:"attachments,omitempty"`
	At             time.Time       `json:"at"`
}

// EventConv names the conversation an event concerns.
type EventConv struct {
	ID string `json:"id"`
}

// Keys of the widget, under the tenant's hash tag like every chatgate key:
//
//	cg:{t}:wcevents:<site>:<visitor>  STREAM   the visitor's events (type, event JSON), trimmed
//	cg:{t}:wcevents                   pub/sub  announces "<site>:<visitor>\n<id>\n<JSON>\n<type>" to every replica
//	rate:cg:{t}:wcrate:<kind>:<who>   STRING   rate limiter state (go-redis/redis_rate adds "rate:")
type keys struct{ ks keyspace.Space }

func (k keys) events(site, visitor string) string { return k.ks.Key("wcevents", site, visitor) }
func (k keys) channel() string                    { return k.ks.Key("wcevents") }
func (k keys) rate(kind, who string) string       { return k.ks.Key("wcrate", kind, who) }

// EventLog keeps each visitor's events in a Redis STREAM and announces new ones on the tenant's
// channel, so a widget connected to any replica sees them and can resume after a reconnect.
type EventLog struct {
	log  *sse.Log
	keys keys
}

// NewEventLog builds the visitors' event log. Each stream keeps maxLen events and expires ttl after
// its last event (a visitor's token cannot outlive that usefully).
func NewEventLog(client redis.UniversalClient, ks keyspace.Space, maxLen int64, ttl time.Duration) *EventLog {
	if maxLen <= 0 {
		maxLen = 500
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	k := keys{ks}
	return &EventLog{log: sse.NewLog(client, k.channel(), maxLen, ttl), keys: k}
}

// sseLog is the log the widget's hub reads; nil for a widget built without one (tests of its gates).
func (l *EventLog) sseLog() *sse.Log {
	if l == nil {
		return nil
	}
	return l.log
}

// subscriber is the hub's id of a visitor: its site and visitor id.
func subscriber(site, visitor string) string { return site + ":" + visitor }

// Publish appends an event to the visitor's stream and returns its id.
func (l *EventLog) Publish(ctx context.Context, site, visitor string, ev Event) (string, error) {
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	ev.ID = ""
	body, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	return l.log.Append(ctx, l.keys.events(site, visitor), subscriber(site, visitor), ev.Type, body)
}

// Announce tells the visitor's open streams of a passing event (typing) without keeping it: it has
// no id and is not replayed on resume.
func (l *EventLog) Announce(ctx context.Context, site, visitor string, ev Event) error {
	ev.ID = ""
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return l.log.Announce(ctx, subscriber(site, visitor), ev.Type, body)
}

// Since returns the visitor's events after id ("0" for every kept one), oldest first.
func (l *EventLog) Since(ctx context.Context, site, visitor, id string) ([]Event, error) {
	stored, err := l.log.After(ctx, l.keys.events(site, visitor), id, 0)
	if err != nil {
		return nil, err
	}
	return sse.Decode(stored, func(ev *Event, id string) { ev.ID = id }), nil
}
