package sse

import (
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
		h.mu.Lock()
		var open []*client
		for _, set := range h.subs {
			for c := range set {
				open = append(open, c)
			}
		}
		h.mu.Unlock()
		for _, c := range open {
			c.end()
		}
	})
}

func (h *Hub) fanOut(subscriber string, ev Event) {
	var behind []*client
	h.mu.Lock()
	for c := range h.subs[subscriber] {
		if !c.push(ev) {
			behind = append(behind, c)
		}
	}
	h.mu.Unlock()
	// A client this far behind is closed rather than allowed to hold events without bound; it
	// resumes from its Last-Event-ID. Ended outside the lock: ending removes it from subs.
	for _, c := range behind {
		c.end()
	}
}

// register adds a stream of the subscriber; ErrSubscriberFull beyond MaxPerSubscriber.
func (h *Hub) register(subscriber string, s Stream) (*client, error) {
	c := &client{hub: h, stream: s, sent: s.Last}
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
// fasthttp. An open stream holds no goroutine and no buffer: only its connection, its queue of
// unwritten events and two timers (keep-alive, expiry). A goroutine writes while there is something
// to write (events, a keep-alive, the expiry) and ends, so 50,000 idle streams cost no stacks, and a
// client that stops reading holds up only its own writer, for at most writeTimeout. No write timeout
// of fasthttp cuts a stream. The response is delimited by closing the connection (HTTP/1.1 allows
// it), which every EventSource client handles. An error (ErrSubscriberFull, or the log not read)
// leaves the request to the caller's error handler.
//
// With fasthttp's KeepHijackedConns (httpx.NewApp sets it) the hijack handler returns at once and
// fasthttp's request context and read buffer go back to it; without, the handler waits for the
// stream's end, since fasthttp closes the connection when it returns.
func (h *Hub) Serve(c *fiber.Ctx, s Stream) error {
	// The stream outlives the request, whose buffers fasthttp reuses at once: nothing of it may point
	// into them (the callbacks must not capture such strings either).
	s.Subscriber, s.Key, s.Last, s.Header = strings.Clone(s.Subscriber), strings.Clone(s.Key), strings.Clone(s.Last), strings.Clone(s.Header)
	// Register before reading the backlog, so nothing published in between is lost.
	cl, err := h.register(s.Subscriber, s)
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
	// The connection itself rather than fasthttp's wrapper, which holds the request's read buffer.
	conn := c.Context().Conn()
	keep := c.App().Server().KeepHijackedConns
	if !keep {
		cl.done = make(chan struct{})
	}
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(net.Conn) {
		cl.start(conn, backlog)
		if !keep {
			<-cl.done
		}
	})
	return nil
}

const (
	streamHeader = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\nConnection: close\r\n"
	// retry asks EventSource to reconnect after 2s.
	streamStart = "\r\nretry: 2000\n\n"
	// writeTimeout bounds one write: a client that stops reading is let go.
	writeTimeout     = 10 * time.Second
	keepAliveComment = ": keep-alive\n\n"
)

// client is one open stream. Events wait in queue until a writer goroutine, started when there is
// something to write and none runs (writing), writes them; sent, the last id written, and the
// stream's callbacks are only touched by that writer, one at a time.
type client struct {
	hub    *Hub
	stream Stream
	sent   string
	done   chan struct{} // closed at the end when Serve waits for it; nil otherwise

	mu           sync.Mutex
	conn         net.Conn // nil until the connection is taken over
	queue        []Event
	keepAliveDue bool
	expired      bool
	writing      bool
	ended        bool
	keepAlive    *time.Timer
	expiry       *time.Timer
}

// push queues a live event and has it written; false when the client is too far behind.
func (c *client) push(ev Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return true
	}
	if len(c.queue) >= clientBuffer {
		return false
	}
	c.queue = append(c.queue, ev)
	c.wakeLocked()
	return true
}

// wakeLocked starts a writer when the stream is under way and none runs.
func (c *client) wakeLocked() {
	if c.conn == nil || c.writing || c.ended {
		return
	}
	c.writing = true
	go c.write()
}

// start writes the header and the backlog on the taken-over connection, then lets live events,
// keep-alives and the expiry through.
func (c *client) start(conn net.Conn, backlog []Event) {
	buf := getBuffer()
	defer putBuffer(buf)
	*buf = append(*buf, streamHeader...)
	*buf = append(*buf, c.stream.Header...)
	*buf = append(*buf, streamStart...)
	var sent []Event
	for _, ev := range backlog {
		*buf = appendEvent(*buf, ev)
		if ev.ID != "" {
			c.sent = ev.ID
			sent = append(sent, ev)
		}
	}
	c.mu.Lock()
	c.conn, c.writing = conn, true // the writing is this goroutine's until it lets go below
	ended := c.ended
	c.mu.Unlock()
	if ended { // dropped or shut down before it started: end saw no connection to close
		_ = conn.Close()
		return
	}
	select {
	case <-c.hub.stop: // opened while the hub was shutting down
		c.end()
		return
	default:
	}
	if !c.flush(*buf) {
		c.end()
		return
	}
	c.notifySent(sent)
	c.mu.Lock()
	if !c.ended {
		c.keepAlive = time.AfterFunc(c.hub.opts.KeepAlive, c.keepAliveFired)
		if !c.stream.Expires.IsZero() {
			c.expiry = time.AfterFunc(time.Until(c.stream.Expires), c.expiryFired)
		}
	}
	c.writing = false
	c.wakeIfDueLocked()
	c.mu.Unlock()
}

// wakeIfDueLocked starts a writer when something waits to be written.
func (c *client) wakeIfDueLocked() {
	if len(c.queue) > 0 || c.keepAliveDue || c.expired {
		c.wakeLocked()
	}
}

func (c *client) keepAliveFired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	c.keepAlive.Reset(c.hub.opts.KeepAlive)
	c.keepAliveDue = true
	c.wakeLocked()
}

func (c *client) expiryFired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expired = true
	c.wakeLocked()
}

// write writes what is due until nothing is, then lets go; the stream ends on a failed write or at
// its expiry.
func (c *client) write() {
	var events []Event
	for {
		c.mu.Lock()
		if c.ended {
			c.writing = false
			c.mu.Unlock()
			return
		}
		events, c.queue = c.queue, events[:0]
		keepAlive, expired := c.keepAliveDue, c.expired
		c.keepAliveDue = false
		if len(events) == 0 && !keepAlive && !expired {
			c.writing = false
			c.queue = nil // an idle stream keeps no array
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if expired {
			// A stream must not carry anything past its credentials: only the last word is written.
			if c.stream.Expired != nil {
				buf := getBuffer()
				*buf = appendEvent(*buf, c.stream.Expired())
				c.flush(*buf)
				putBuffer(buf)
			}
			c.end()
			return
		}
		buf := getBuffer()
		var sent []Event
		for _, ev := range events {
			if ev.ID != "" && c.sent != "" && !IDLess(c.sent, ev.ID) {
				continue // already sent from the backlog
			}
			*buf = appendEvent(*buf, ev)
			if ev.ID != "" { // an event without an id is a passing notice: it moves no resume point
				c.sent = ev.ID
				sent = append(sent, ev)
			}
		}
		if keepAlive {
			*buf = append(*buf, keepAliveComment...)
		}
		ok := len(*buf) == 0 || c.flush(*buf)
		putBuffer(buf)
		if !ok {
			c.end()
			return
		}
		c.notifySent(sent)
		if keepAlive && c.stream.Alive != nil {
			c.stream.Alive()
		}
		clear(events)
	}
}

func (c *client) notifySent(events []Event) {
	if c.stream.Sent == nil {
		return
	}
	for _, ev := range events {
		c.stream.Sent(ev)
	}
}

// flush writes b within writeTimeout.
func (c *client) flush(b []byte) bool {
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.conn.Write(b)
	return err == nil
}

// end closes the stream once: its timers, its connection (a write under way fails), its place in
// the hub.
func (c *client) end() {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	c.queue = nil
	if c.keepAlive != nil {
		c.keepAlive.Stop()
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
	c.hub.remove(c.stream.Subscriber, c)
	if c.done != nil {
		close(c.done)
	}
}

// buffers holds the writers' buffers between writes: streams keep none while idle.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > 64<<10 {
		return // one large backlog's buffer is not kept
	}
	*b = (*b)[:0]
	buffers.Put(b)
}

func appendEvent(b []byte, ev Event) []byte {
	if ev.ID != "" {
		b = append(b, "id: "...)
		b = append(b, ev.ID...)
		b = append(b, '\n')
	}
	if ev.Type != "" {
		b = append(b, "event: "...)
		b = append(b, ev.Type...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, ev.Data...)
	return append(b, "\n\n"...)
}
