package webchat

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
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
//	cg:{t}:wcevents                   pub/sub  announces "<site>:<visitor>\n<id>\n<JSON>" to every replica
//	rate:cg:{t}:wcrate:<kind>:<who>   STRING   rate limiter state (go-redis/redis_rate adds "rate:")
type keys struct{ ks keyspace.Space }

func (k keys) events(site, visitor string) string { return k.ks.Key("wcevents", site, visitor) }
func (k keys) channel() string                    { return k.ks.Key("wcevents") }
func (k keys) rate(kind, who string) string       { return k.ks.Key("wcrate", kind, who) }

// EventLog keeps each visitor's events in a Redis STREAM and announces new ones on the tenant's
// channel, so a widget connected to any replica sees them and can resume after a reconnect.
type EventLog struct {
	client redis.UniversalClient
	keys   keys
	maxLen int64
	ttl    time.Duration
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
	return &EventLog{client: client, keys: keys{ks}, maxLen: maxLen, ttl: ttl}
}

// publishScript appends to the visitor's stream, refreshes its expiry and announces the event in one
// step, so a live reader never sees an announcement of an event it cannot re-read.
//
// KEYS[1] the visitor's STREAM; ARGV: 1 max length, 2 type, 3 event JSON, 4 channel, 5 "<site>:<visitor>",
// 6 TTL seconds. Returns the entry id.
var publishScript = redis.NewScript(`
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[2], 'event', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\n' .. id .. '\n' .. ARGV[3])
return id
`)

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
	return publishScript.Run(ctx, l.client, []string{l.keys.events(site, visitor)}, l.maxLen, ev.Type, body,
		l.keys.channel(), site+":"+visitor, int64(l.ttl/time.Second)).Text()
}

// Announce tells the visitor's open streams of a passing event (typing) without keeping it: it has
// no id and is not replayed on resume.
func (l *EventLog) Announce(ctx context.Context, site, visitor string, ev Event) error {
	ev.ID = ""
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return l.client.Publish(ctx, l.keys.channel(), site+":"+visitor+"\n\n"+string(body)).Err()
}

// Since returns the visitor's events after id ("0" for every kept one), oldest first.
func (l *EventLog) Since(ctx context.Context, site, visitor, id string) ([]Event, error) {
	raw, err := l.since(ctx, site, visitor, id)
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(raw))
	for _, r := range raw {
		var ev Event
		if json.Unmarshal([]byte(r.json), &ev) == nil {
			ev.ID = r.id
			out = append(out, ev)
		}
	}
	return out, nil
}

func (l *EventLog) since(ctx context.Context, site, visitor, id string) ([]liveEvent, error) {
	start := "-"
	if id != "" && id != "0" {
		start = "(" + id
	}
	entries, err := l.client.XRange(ctx, l.keys.events(site, visitor), start, "+").Result()
	if err != nil {
		return nil, err
	}
	out := make([]liveEvent, 0, len(entries))
	for _, e := range entries {
		if body, ok := e.Values["event"].(string); ok {
			out = append(out, liveEvent{id: e.ID, json: body})
		}
	}
	return out, nil
}

type liveEvent struct {
	id   string
	json string
}

// hub hands the tenant's announcements to the visitors' open streams in this process: one Redis
// subscription per process, however many widgets are connected.
type hub struct {
	log    *EventLog
	logger *slog.Logger
	mu     sync.Mutex
	subs   map[string]map[*subscriber]struct{}
	pubsub *redis.PubSub
	stop   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
}

type subscriber struct {
	events chan liveEvent
	once   sync.Once
	gone   chan struct{} // closed when the hub drops a slow subscriber
}

func (s *subscriber) drop() { s.once.Do(func() { close(s.gone) }) }

const subscriberBuffer = 32

func newHub(log *EventLog, logger *slog.Logger) *hub {
	return &hub{log: log, logger: logger, subs: map[string]map[*subscriber]struct{}{}, stop: make(chan struct{})}
}

func (h *hub) start() {
	h.pubsub = h.log.client.Subscribe(context.Background(), h.log.keys.channel())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := h.pubsub.Receive(ctx); err != nil {
		// go-redis keeps retrying; streams catch up from the log once Redis is back.
		h.logger.Warn("visitor event subscription not confirmed yet", "err", err)
	}
	ch := h.pubsub.Channel(redis.WithChannelSize(4096))
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			select {
			case <-h.stop:
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				who, rest, ok1 := strings.Cut(msg.Payload, "\n")
				id, body, ok2 := strings.Cut(rest, "\n")
				if ok1 && ok2 {
					h.fanOut(who, liveEvent{id: id, json: body})
				}
			}
		}
	}()
}

func (h *hub) shutdown() {
	h.closed.Do(func() {
		close(h.stop)
		if h.pubsub != nil {
			_ = h.pubsub.Close()
		}
		h.wg.Wait()
	})
}

func (h *hub) fanOut(who string, ev liveEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[who] {
		select {
		case sub.events <- ev:
		default:
			sub.drop() // far behind: closed, it resumes from its Last-Event-ID
		}
	}
}

// maxStreamsPerVisitor bounds one visitor's open streams in a process (tabs, reconnect storms).
const maxStreamsPerVisitor = 8

// subscribe registers a stream of who; nil when who already holds maxStreamsPerVisitor here.
func (h *hub) subscribe(who string) *subscriber {
	sub := &subscriber{events: make(chan liveEvent, subscriberBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	if len(h.subs[who]) >= maxStreamsPerVisitor {
		h.mu.Unlock()
		return nil
	}
	if h.subs[who] == nil {
		h.subs[who] = map[*subscriber]struct{}{}
	}
	h.subs[who][sub] = struct{}{}
	h.mu.Unlock()
	return sub
}

func (h *hub) unsubscribe(who string, sub *subscriber) {
	h.mu.Lock()
	delete(h.subs[who], sub)
	if len(h.subs[who]) == 0 {
		delete(h.subs, who)
	}
	h.mu.Unlock()
}

// open counts this process's open visitor streams.
func (h *hub) open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.subs {
		n += len(set)
	}
	return n
}

// streamIDLess compares Redis stream ids "ms-seq".
func streamIDLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ams, _ := strconv.ParseUint(am, 10, 64)
	bms, _ := strconv.ParseUint(bm, 10, 64)
	if ams != bms {
		return ams < bms
	}
	asq, _ := strconv.ParseUint(as, 10, 64)
	bsq, _ := strconv.ParseUint(bs, 10, 64)
	return asq < bsq
}

func validStreamID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

func writeEvent(w *bufio.Writer, ev liveEvent) {
	typ := ""
	if i := strings.Index(ev.json, `"type":"`); i >= 0 {
		rest := ev.json[i+8:]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			typ = rest[:j]
		}
	}
	if ev.id != "" {
		w.WriteString("id: ")
		w.WriteString(ev.id)
		w.WriteString("\n")
	}
	if typ != "" {
		w.WriteString("event: ")
		w.WriteString(typ)
		w.WriteString("\n")
	}
	w.WriteString("data: ")
	w.WriteString(ev.json)
	w.WriteString("\n\n")
}
