package routing

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/auth"
)

// Heartbeater records that an agent's client is alive (presence.Store satisfies it).
type Heartbeater interface {
	Heartbeat(ctx context.Context, agent string) error
}

// StreamsOptions tune the live streams.
type StreamsOptions struct {
	Logger    *slog.Logger
	KeepAlive time.Duration
	Heartbeat Heartbeater
	// Known reports whether an agent exists; unknown agents get 404.
	Known func(agent string) bool
}

// Streams serves the agents' Server-Sent Events. One Redis subscription per process carries every
// agent's announcements; a local hub hands each to the agent's open streams, so 10,000 open streams
// cost no Redis connection each. A client that reconnects with Last-Event-ID, to this replica or
// another, first gets what it missed from the agent's Redis STREAM, then live events, never twice.
type Streams struct {
	log    *StreamLog
	opts   StreamsOptions
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
	gone   chan struct{} // closed when the hub drops a slow subscriber or shuts down
}

type liveEvent struct {
	id   string
	json string
}

const subscriberBuffer = 32

// NewStreams builds the streams over the event log.
func NewStreams(log *StreamLog, opts StreamsOptions) *Streams {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	opts.Logger = opts.Logger.With("component", "streams")
	return &Streams{log: log, opts: opts, subs: map[string]map[*subscriber]struct{}{}, stop: make(chan struct{})}
}

// Start subscribes this process to the tenant's event channel.
func (s *Streams) Start() error {
	s.pubsub = s.log.client.Subscribe(context.Background(), s.log.keys.eventsChannel())
	// Wait for the subscription when Redis answers; when it does not, go-redis keeps retrying and the
	// streams catch up from the log once it is back.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.pubsub.Receive(ctx); err != nil {
		s.opts.Logger.Warn("event subscription not confirmed yet", "err", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ch := s.pubsub.Channel(redis.WithChannelSize(4096))
		for {
			select {
			case <-s.stop:
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				agent, rest, ok1 := strings.Cut(msg.Payload, "\n")
				id, body, ok2 := strings.Cut(rest, "\n")
				if ok1 && ok2 {
					s.fanOut(agent, liveEvent{id: id, json: body})
				}
			}
		}
	}()
	return nil
}

// Shutdown ends every open stream (clients resume elsewhere with Last-Event-ID) and unsubscribes.
func (s *Streams) Shutdown() {
	s.closed.Do(s.shutdown)
}

func (s *Streams) shutdown() {
	close(s.stop)
	s.mu.Lock()
	for _, set := range s.subs {
		for sub := range set {
			sub.drop()
		}
	}
	s.mu.Unlock()
	if s.pubsub != nil {
		_ = s.pubsub.Close()
	}
	s.wg.Wait()
}

func (sub *subscriber) drop() { sub.once.Do(func() { close(sub.gone) }) }

func (s *Streams) fanOut(agent string, ev liveEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs[agent] {
		select {
		case sub.events <- ev:
		default:
			// A consumer this far behind is closed rather than allowed to block the hub; it resumes
			// from its Last-Event-ID.
			sub.drop()
		}
	}
}

func (s *Streams) subscribe(agent string) *subscriber {
	sub := &subscriber{events: make(chan liveEvent, subscriberBuffer), gone: make(chan struct{})}
	s.mu.Lock()
	if s.subs[agent] == nil {
		s.subs[agent] = map[*subscriber]struct{}{}
	}
	s.subs[agent][sub] = struct{}{}
	s.mu.Unlock()
	return sub
}

func (s *Streams) unsubscribe(agent string, sub *subscriber) {
	s.mu.Lock()
	delete(s.subs[agent], sub)
	if len(s.subs[agent]) == 0 {
		delete(s.subs, agent)
	}
	s.mu.Unlock()
}

// Open reports how many streams this process holds (for metrics and tests).
func (s *Streams) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, set := range s.subs {
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

// Handler is GET /v1/agents/:id/events (mount it behind the auth middleware).
func (s *Streams) Handler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		agent, err := auth.Subject(c, c.Params("id"))
		if err != nil {
			return err
		}
		if s.opts.Known != nil && !s.opts.Known(agent) {
			return errAgentNotFound
		}
		last := strings.Clone(c.Get("Last-Event-ID"))
		if last == "" {
			last = strings.Clone(c.Query("last_event_id"))
		}
		if last != "" && !validStreamID(last) {
			return errBadEventID
		}
		// Subscribe before reading the backlog, so nothing published in between is lost.
		sub := s.subscribe(agent)
		backlog, err := s.backlog(c.UserContext(), agent, last)
		if err != nil {
			s.unsubscribe(agent, sub)
			return err
		}
		expires := auth.Caller(c).ExpiresAt
		s.heartbeat(agent)
		// The connection is taken over from fasthttp: its per-connection buffers and goroutine are
		// released, and a stream costs one goroutine and a small writer. The response is delimited by
		// closing the connection (HTTP/1.1 allows it), which every EventSource client handles.
		c.Context().HijackSetNoResponse(true)
		c.Context().Hijack(func(conn net.Conn) {
			defer conn.Close()
			defer s.unsubscribe(agent, sub)
			s.serve(conn, agent, sub, backlog, last, expires)
		})
		return nil
	}
}

const streamHeader = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
	"X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n"

// EventSessionExpired is the last event of a stream whose token expired: the client signs in again
// and reconnects with Last-Event-ID (the event has no id, so the client's last id stays put).
const EventSessionExpired = "session.expired"

// serve writes the backlog, then live events and keep-alives, until the client goes, the hub drops
// the stream, the process shuts down or the token expires (then session.expired ends it: a stream
// must not carry customers' messages nor keep the agent's presence alive past its credentials).
func (s *Streams) serve(conn net.Conn, agent string, sub *subscriber, backlog []liveEvent, last string, expires time.Time) {
	w := bufio.NewWriterSize(conn, 2048)
	sent := last
	write := func(f func()) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		f()
		return w.Flush() == nil
	}
	if !write(func() { w.WriteString(streamHeader) }) {
		return
	}
	for _, ev := range backlog {
		ev := ev
		if !write(func() { writeEvent(w, ev.id, ev.json) }) {
			return
		}
		sent = ev.id
	}
	ticker := time.NewTicker(s.opts.KeepAlive)
	defer ticker.Stop()
	var expiry <-chan time.Time
	if !expires.IsZero() {
		t := time.NewTimer(time.Until(expires))
		defer t.Stop()
		expiry = t.C
	}
	for {
		select {
		case <-expiry:
			write(func() {
				w.WriteString("event: " + EventSessionExpired + "\ndata: ")
				w.WriteString(`{"type":"` + EventSessionExpired + `","at":"` + time.Now().UTC().Format(time.RFC3339Nano) +
					`","message":"the token has expired: sign in again and reconnect with Last-Event-ID"}` + "\n\n")
			})
			s.opts.Logger.Info("event stream ended at its token's expiry", "agent", agent)
			return
		case ev := <-sub.events:
			if sent != "" && !streamIDLess(sent, ev.id) {
				continue // already sent from the backlog
			}
			if !write(func() { writeEvent(w, ev.id, ev.json) }) {
				return
			}
			sent = ev.id
		case <-ticker.C:
			if !write(func() { w.WriteString(": keep-alive\n\n") }) {
				return
			}
			if expires.IsZero() || time.Now().Before(expires) {
				s.heartbeat(agent)
			}
		case <-sub.gone:
			return
		case <-s.stop:
			return
		}
	}
}

func (s *Streams) heartbeat(agent string) {
	if s.opts.Heartbeat == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.opts.Heartbeat.Heartbeat(ctx, agent); err != nil {
		s.opts.Logger.Debug("heartbeat failed", "agent", agent, "err", err)
	}
}

// backlog returns the events after last (nothing when last is empty: a new stream starts live). When
// last is older than what is kept, a stream.reset event tells the client to refetch its state.
func (s *Streams) backlog(ctx context.Context, agent, last string) ([]liveEvent, error) {
	if last == "" {
		return nil, nil
	}
	entries, err := s.log.client.XRange(ctx, s.log.keys.events(agent), "("+last, "+").Result()
	if err != nil {
		return nil, err
	}
	out := make([]liveEvent, 0, len(entries)+1)
	first, err := s.log.client.XRangeN(ctx, s.log.keys.events(agent), "-", "+", 1).Result()
	if err == nil && len(first) == 1 && streamIDLess(last, first[0].ID) && len(entries) > 0 && entries[0].ID == first[0].ID {
		out = append(out, liveEvent{id: last, json: `{"type":"stream.reset","at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`})
	}
	for _, e := range entries {
		if body, ok := e.Values["event"].(string); ok {
			out = append(out, liveEvent{id: e.ID, json: body})
		}
	}
	return out, nil
}

func writeEvent(w *bufio.Writer, id, body string) {
	typ := ""
	if i := strings.Index(body, `"type":"`); i >= 0 {
		rest := body[i+8:]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			typ = rest[:j]
		}
	}
	w.WriteString("id: ")
	w.WriteString(id)
	if typ != "" {
		w.WriteString("\nevent: ")
		w.WriteString(typ)
	}
	w.WriteString("\ndata: ")
	w.WriteString(body)
	w.WriteString("\n\n")
}
