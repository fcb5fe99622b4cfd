package sse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
)

// server is one process serving streams of the log on a real listener.
type server struct {
	url string
	hub *Hub
}

func newServer(t *testing.T, log *Log, o HubOptions, stream func(c *fiber.Ctx) Stream) *server {
	t.Helper()
	return newServerKeeping(t, log, o, stream, false)
}

// newServerKeeping is newServer with fasthttp's KeepHijackedConns as given (httpx.NewApp sets it):
// without, Serve waits in the hijack handler for the stream's end.
func newServerKeeping(t *testing.T, log *Log, o HubOptions, stream func(c *fiber.Ctx) Stream, keepHijacked bool) *server {
	t.Helper()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := NewHub(log, o)
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Server().KeepHijackedConns = keepHijacked
	app.Get("/events/:who", func(c *fiber.Ctx) error {
		last, ok := LastEventID(c)
		if !ok {
			return c.SendStatus(http.StatusBadRequest)
		}
		s := stream(c)
		s.Last = last
		err := hub.Serve(c, s)
		if errors.Is(err, ErrSubscriberFull) {
			return c.SendStatus(http.StatusTooManyRequests)
		}
		return err
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { hub.Shutdown(); _ = app.ShutdownWithTimeout(time.Second) })
	return &server{url: "http://" + ln.Addr().String(), hub: hub}
}

// reader reads a stream frame by frame: an event's field lines, or a comment.
type reader struct {
	resp *http.Response
	br   *bufio.Reader
}

func open(t *testing.T, url, last string) *reader {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &reader{resp: resp, br: bufio.NewReader(resp.Body)}
}

// next returns the next frame (lines up to a blank line), skipping the retry line.
func (r *reader) next(t *testing.T) string {
	t.Helper()
	var lines []string
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended after %q: %v", lines, err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if len(lines) == 0 || lines[0] == "retry: 2000" {
				lines = nil
				continue
			}
			return strings.Join(lines, "|")
		}
		lines = append(lines, line)
	}
}

func testLog(t *testing.T, ttl time.Duration) (*redis.Client, *Log) {
	client := redistest.Client(t)
	return client, NewLog(client, "cg:{t}:ssetest", 3, ttl)
}

func TestResumesOnAnotherProcessWithTypesFromTheStoredField(t *testing.T) {
	client, log := testLog(t, time.Hour)
	ctx := context.Background()
	stream := func(c *fiber.Ctx) Stream {
		return Stream{Subscriber: c.Params("who"), Key: "cg:{t}:sse:" + c.Params("who"), ResetWhenTrimmed: true}
	}
	a := newServer(t, log, HubOptions{KeepAlive: time.Hour}, stream)
	b := newServer(t, log, HubOptions{KeepAlive: time.Hour}, stream)

	live := open(t, a.url+"/events/ana", "")
	if ct := live.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	waitOpen(t, a.hub, 1)
	// The type comes from the stored field, whatever the JSON says.
	id1, err := log.Append(ctx, "cg:{t}:sse:ana", "ana", "card.offered", []byte(`{"note":"\"type\":\"other\""}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := live.next(t), "id: "+id1+`|event: card.offered|data: {"note":"\"type\":\"other\""}`; got != want {
		t.Fatalf("live frame %q, want %q", got, want)
	}
	if ttl := client.TTL(ctx, "cg:{t}:sse:ana").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("stream TTL %v, want up to an hour", ttl)
	}
	// Another subscriber's events never reach ana.
	if _, err := log.Append(ctx, "cg:{t}:sse:bob", "bob", "x", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	id2, _ := log.Append(ctx, "cg:{t}:sse:ana", "ana", "message.received", []byte(`{"n":2}`))
	if got := live.next(t); got != "id: "+id2+`|event: message.received|data: {"n":2}` {
		t.Fatalf("second live frame %q", got)
	}

	// Resuming on the other process after id1 gets id2 from the log, then live events.
	resumed := open(t, b.url+"/events/ana", id1)
	if got := resumed.next(t); !strings.HasPrefix(got, "id: "+id2+"|") {
		t.Fatalf("resumed backlog %q, want %s first", got, id2)
	}
	waitOpen(t, b.hub, 1)
	if err := log.Announce(ctx, "ana", "typing", []byte(`{"t":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := resumed.next(t); got != `event: typing|data: {"t":1}` {
		t.Fatalf("passing notice %q", got)
	}
	kept, _ := log.After(ctx, "cg:{t}:sse:ana", "", 0)
	if len(kept) != 2 || kept[0].Type != "card.offered" || kept[1].ID != id2 {
		t.Fatalf("a passing notice was kept, or the log reads wrong: %+v", kept)
	}
	type numbered struct {
		ID string
		N  int `json:"n"`
	}
	decoded := Decode(append(kept, Event{ID: "9-9", Data: "not json"}), func(v *numbered, id string) { v.ID = id })
	if len(decoded) != 2 || decoded[1] != (numbered{ID: id2, N: 2}) || decoded[0].ID != id1 {
		t.Fatalf("decoded %+v", decoded)
	}

	// Resuming from an event trimmed away starts with stream.reset, under the client's own id.
	for i := 0; i < 200; i++ {
		if _, err := log.Append(ctx, "cg:{t}:sse:ana", "ana", "filler", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	stale := open(t, b.url+"/events/ana", id1)
	if got := stale.next(t); !strings.HasPrefix(got, "id: "+id1+"|event: "+EventStreamReset+"|data: {\"type\":\"stream.reset\"") {
		t.Fatalf("trimmed resume starts %q", got)
	}
	if got := stale.next(t); !strings.Contains(got, "event: filler") {
		t.Fatalf("after the reset %q", got)
	}

	if r := open(t, a.url+"/events/ana", "not-an-id"); r.resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad Last-Event-ID: %d", r.resp.StatusCode)
	}
}

func TestKeepAliveExpiryAndBounds(t *testing.T) {
	_, log := testLog(t, 0)
	ctx := context.Background()
	alive := make(chan struct{}, 16)
	var sent []string
	expires := time.Now().Add(400 * time.Millisecond)
	srv := newServer(t, log, HubOptions{KeepAlive: 100 * time.Millisecond, MaxPerSubscriber: 1}, func(c *fiber.Ctx) Stream {
		return Stream{Subscriber: "v", Key: "cg:{t}:sse:v", ReplayAll: true, Header: "X-Test: yes\r\n", Expires: expires,
			Expired: func() Event { return Event{Type: "session.expired", Data: `{"type":"session.expired"}`} },
			Alive:   func() { alive <- struct{}{} },
			Sent:    func(ev Event) { sent = append(sent, ev.ID) }}
	})
	id, _ := log.Append(ctx, "cg:{t}:sse:v", "v", "message", []byte(`{"n":1}`))
	r := open(t, srv.url+"/events/v", "")
	if r.resp.Header.Get("X-Test") != "yes" {
		t.Fatalf("extra header missing: %v", r.resp.Header)
	}
	// A new stream that replays all starts with what is kept.
	if got := r.next(t); got != "id: "+id+`|event: message|data: {"n":1}` {
		t.Fatalf("replayed %q", got)
	}
	if full := open(t, srv.url+"/events/v", ""); full.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second stream of one subscriber: %d", full.resp.StatusCode)
	}
	if got := r.next(t); got != ": keep-alive" {
		t.Fatalf("idle stream wrote %q", got)
	}
	if got := r.next(t); got != ": keep-alive" {
		t.Fatalf("idle stream wrote %q", got)
	}
	for got := r.next(t); got != `event: session.expired|data: {"type":"session.expired"}`; got = r.next(t) {
		if got != ": keep-alive" {
			t.Fatalf("before expiry %q", got)
		}
	}
	if _, err := r.br.ReadString('\n'); err == nil {
		t.Fatal("the stream went on past its expiry")
	}
	if len(alive) < 3 { // at open and after each keep-alive
		t.Fatalf("alive called %d times", len(alive))
	}
	waitOpen(t, srv.hub, 0)
	if len(sent) != 1 || sent[0] != id {
		t.Fatalf("sent %v", sent)
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	_, log := testLog(t, 0)
	srv := newServer(t, log, HubOptions{KeepAlive: time.Hour}, func(c *fiber.Ctx) Stream {
		return Stream{Subscriber: "s", Key: "cg:{t}:sse:s"}
	})
	r := open(t, srv.url+"/events/s", "")
	waitOpen(t, srv.hub, 1)
	srv.hub.Shutdown()
	if _, err := io.ReadAll(r.br); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	waitOpen(t, srv.hub, 0)
}

func TestIDs(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{{"1-0", "2-0", true}, {"2-0", "10-0", true}, {"5-2", "5-10", true}, {"5-10", "5-2", false}, {"7-1", "7-1", false}} {
		if IDLess(c.a, c.b) != c.less {
			t.Errorf("IDLess(%s, %s) != %v", c.a, c.b, c.less)
		}
	}
	for id, valid := range map[string]bool{"1-0": true, "1700000000000-3": true, "1": false, "a-1": false, "1-": false, "": false, "-1-1": false} {
		if ValidID(id) != valid {
			t.Errorf("ValidID(%q) != %v", id, valid)
		}
	}
	for payload, want := range map[string]Event{
		"a\n1-0\n{}\nt":                       {ID: "1-0", Type: "t", Data: "{}"},
		"a\n\n{\"x\":\"\\n\"}\ntyping":        {Type: "typing", Data: `{"x":"\n"}`},
		"a\n1-0\n{\"type\":\"card.offered\"}": {ID: "1-0", Type: "card.offered", Data: `{"type":"card.offered"}`}, // previous version
	} {
		if who, got, ok := parseAnnouncement(payload); !ok || who != "a" || got != want {
			t.Errorf("announcement %q: %q %+v %v, want %+v", payload, who, got, ok, want)
		}
	}
	if _, _, ok := parseAnnouncement("a-without-id"); ok {
		t.Error("an announcement without an id was parsed")
	}
}

func waitOpen(t *testing.T, h *Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for h.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("open streams %d, want %d", h.Open(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Idle streams hold no goroutine when fasthttp keeps hijacked connections, and every one of them still
// gets its events.
func TestIdleStreamsHoldNoGoroutine(t *testing.T) {
	_, log := testLog(t, 0)
	srv := newServerKeeping(t, log, HubOptions{KeepAlive: time.Hour}, func(c *fiber.Ctx) Stream {
		return Stream{Subscriber: c.Params("who"), Key: "cg:{t}:sse:" + c.Params("who")}
	}, true)
	const n = 200
	before := runtime.NumGoroutine()
	readers := make([]*bufio.Reader, n)
	for i := range readers {
		// A bare connection: an http.Client would add goroutines of its own to the count.
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /events/s%d HTTP/1.1\r\nHost: x\r\n\r\n", i); err != nil {
			t.Fatal(err)
		}
		readers[i] = bufio.NewReader(c)
		if status, err := readers[i].ReadString('\n'); err != nil || !strings.Contains(status, " 200 ") {
			t.Fatalf("stream %d: %q %v", i, status, err)
		}
	}
	waitOpen(t, srv.hub, n)
	time.Sleep(100 * time.Millisecond) // let fasthttp's hijack goroutines end
	if grew := runtime.NumGoroutine() - before; grew > n/10 {
		t.Fatalf("%d idle streams added %d goroutines", n, grew)
	}
	for i := range readers {
		if _, err := log.Append(context.Background(), fmt.Sprintf("cg:{t}:sse:s%d", i), fmt.Sprintf("s%d", i), "ping", []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range readers {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream %d ended before its event: %v", i, err)
			}
			if line == "event: ping\n" {
				break
			}
		}
	}
}
