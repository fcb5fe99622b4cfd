package sse

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
)

// HubOptions tune a hub.
type HubOptions struct {
	Logger    *slog.Logger
	KeepAlive time.Duration // between comment lines on an idle stream; 15s when zero
	// MaxPerSubscriber bounds one subscriber's open streams in this process (tabs, reconnect storms);
	// 0 leaves it unbounded.
	MaxPerSubscriber int
}

// ErrSubscriberFull is the answer to a stream beyond HubOptions.MaxPerSubscriber.
var ErrSubscriberFull = errors.New("sse: the subscriber holds as many streams as it may")

// Hub hands a log's announcements to the streams open in this process, by subscriber id: one Redis
// subscription per process, however many streams are open, so 10,000 streams cost no Redis
// connection each.
type Hub struct {
	log    *Log
	opts   HubOptions
	mu     sync.Mutex
	subs   map[string]map[*client]struct{}
	pubsub *redis.PubSub
	stop   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
}

// client is one open stream as the hub sees it.
type client struct {
	events chan Event
	once   sync.Once
	gone   chan struct{} // closed when the hub drops a slow client
}

func (c *client) drop() { c.once.Do(func() { close(c.gone) }) }

// clientBuffer is how many events a stream may fall behind before the hub drops it.
const clientBuffer = 32

// NewHub builds a hub over the log.
func NewHub(log *Log, o HubOptions) *Hub {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	return &Hub{log: log, opts: o, subs: map[string]map[*client]struct{}{}, stop: make(chan struct{})}
}

// Start subscribes this process to the log's channel.
func (h *Hub) Start() error {
	h.pubsub = h.log.client.Subscribe(context.Background(), h.log.channel)
	// Wait for the subscription when Redis answers; when it does not, go-redis keeps retrying and the
	// streams catch up from the log once it is back.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := h.pubsub.Receive(ctx); err != nil {
		h.opts.Logger.Warn("event subscription not confirmed yet", "err", err)
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
				if subscriber, ev, ok := parseAnnouncement(msg.Payload); ok {
					h.fanOut(subscriber, ev)
				}
			}
		}
	}()
	return nil
}

// Shutdown ends every open stream (clients resume elsewhere with Last-Event-ID) and unsubscribes.
func (h *Hub) Shutdown() {
	h.closed.Do(func() {
		close(h.stop)
		if h.pubsub != nil {
			_ = h.pubsub.Close()
		}
		h.wg.Wait()
	})
}

func (h *Hub) fanOut(subscriber string, ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs[subscriber] {
		select {
		case c.events <- ev:
		default:
			// A client this far behind is closed rather than allowed to block the hub; it resumes
			// from its Last-Event-ID.
			c.drop()
		}
	}
}

// register adds a stream of the subscriber; ErrSubscriberFull beyond MaxPerSubscriber.
func (h *Hub) register(subscriber string) (*client, error) {
	c := &client{events: make(chan Event, clientBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.opts.MaxPerSubscriber > 0 && len(h.subs[subscriber]) >= h.opts.MaxPerSubscriber {
		return nil, ErrSubscriberFull
	}
	if h.subs[subscriber] == nil {
		h.subs[subscriber] = map[*client]struct{}{}
	}
	h.subs[subscriber][c] = struct{}{}
	return c, nil
}

func (h *Hub) remove(subscriber string, c *client) {
	h.mu.Lock()
	delete(h.subs[subscriber], c)
	if len(h.subs[subscriber]) == 0 {
		delete(h.subs, subscriber)
	}
	h.mu.Unlock()
}

// Open reports how many streams this process holds.
func (h *Hub) Open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.subs {
		n += len(set)
	}
	return n
}

// LastEventID is where the client resumes: the Last-Event-ID header, or ?last_event_id= for clients
// that cannot set it. ok is false when it is given but not an event id.
func LastEventID(c *fiber.Ctx) (last string, ok bool) {
	last = strings.Clone(c.Get("Last-Event-ID"))
	if last == "" {
		last = strings.Clone(c.Query("last_event_id"))
	}
	return last, last == "" || ValidID(last)
}

// Stream is one client's stream.
type Stream struct {
	Subscriber string // whose announcements it carries
	Key        string // the subscriber's STREAM in the log
	Last       string // the event the client resumes after (LastEventID); empty for a new stream
	// ReplayAll starts a new stream with every kept event instead of live.
	ReplayAll bool
	// ResetWhenTrimmed sends stream.reset first when events after Last are no longer kept.
	ResetWhenTrimmed bool
	// Header holds response header lines to add, each ending in "\r\n".
	Header string
	// Expires, when set, ends the stream then, with the event Expired returns as its last.
	Expires time.Time
	Expired func() Event
	// Alive is called as the stream opens and after every keep-alive it writes.
	Alive func()
	// Sent is called after each event with an id is written.
	Sent func(Event)
}

// Serve registers the stream, reads what the client missed, and takes the connection over from
// fasthttp: its per-connection buffers and goroutine are released, a stream costs one goroutine and
// a small writer, and no write timeout cuts it. The response is delimited by closing the connection
// (HTTP/1.1 allows it), which every EventSource client handles. An error (ErrSubscriberFull, or the
// log not read) leaves the request to the caller's error handler.
func (h *Hub) Serve(c *fiber.Ctx, s Stream) error {
	// Register before reading the backlog, so nothing published in between is lost.
	cl, err := h.register(s.Subscriber)
	if err != nil {
		return err
	}
	backlog, err := h.log.backlog(c.UserContext(), s.Key, s.Last, s.ReplayAll, s.ResetWhenTrimmed)
	if err != nil {
		h.remove(s.Subscriber, cl)
		return err
	}
	if s.Alive != nil {
		s.Alive()
	}
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(conn net.Conn) {
		defer conn.Close()
		defer h.remove(s.Subscriber, cl)
		h.serve(conn, cl, s, backlog)
	})
	return nil
}

const (
	streamHeader = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\nConnection: close\r\n"
	// retry asks EventSource to reconnect after 2s.
	streamStart = "\r\nretry: 2000\n\n"
	// writeTimeout bounds one write: a client that stops reading is let go.
	writeTimeout = 10 * time.Second
)

// serve writes the backlog, then live events and keep-alives, until the client goes, the hub drops
// the stream, the process shuts down or the stream expires.
func (h *Hub) serve(conn net.Conn, cl *client, s Stream, backlog []Event) {
	w := bufio.NewWriterSize(conn, 2048)
	sent := s.Last
	write := func(f func()) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		f()
		return w.Flush() == nil
	}
	send := func(ev Event) bool {
		if !write(func() { writeEvent(w, ev) }) {
			return false
		}
		if ev.ID == "" {
			return true // a passing notice: it moves no resume point
		}
		sent = ev.ID
		if s.Sent != nil {
			s.Sent(ev)
		}
		return true
	}
	if !write(func() { w.WriteString(streamHeader + s.Header + streamStart) }) {
		return
	}
	for _, ev := range backlog {
		if !send(ev) {
			return
		}
	}
	ticker := time.NewTicker(h.opts.KeepAlive)
	defer ticker.Stop()
	var expiry <-chan time.Time
	if !s.Expires.IsZero() {
		t := time.NewTimer(time.Until(s.Expires))
		defer t.Stop()
		expiry = t.C
	}
	for {
		select {
		case <-expiry:
			if s.Expired != nil {
				ev := s.Expired()
				write(func() { writeEvent(w, ev) })
			}
			return
		case ev := <-cl.events:
			if ev.ID != "" && sent != "" && !IDLess(sent, ev.ID) {
				continue // already sent from the backlog
			}
			if !send(ev) {
				return
			}
		case <-ticker.C:
			if !write(func() { w.WriteString(": keep-alive\n\n") }) {
				return
			}
			if s.Alive != nil {
				s.Alive()
			}
		case <-cl.gone:
			return
		case <-h.stop:
			return
		}
	}
}

func writeEvent(w *bufio.Writer, ev Event) {
	if ev.ID != "" {
		w.WriteString("id: ")
		w.WriteString(ev.ID)
		w.WriteString("\n")
	}
	if ev.Type != "" {
		w.WriteString("event: ")
		w.WriteString(ev.Type)
		w.WriteString("\n")
	}
	w.WriteString("data: ")
	w.WriteString(ev.Data)
	w.WriteString("\n\n")
}
