package routing

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

const streamSecret = "stream-test-secret"

type countingHeartbeat struct{ n atomic.Int64 }

func (h *countingHeartbeat) Heartbeat(context.Context, string) error { h.n.Add(1); return nil }

// replica is one gateway process serving streams on a real listener.
type replica struct {
	url     string
	log     *StreamLog
	streams *Streams
	beats   *countingHeartbeat
}

func newReplica(t *testing.T, client redis.UniversalClient, keepAlive, writeTimeout time.Duration) *replica {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	log := NewStreamLog(client, keyspace.New("t"), 100)
	beats := &countingHeartbeat{}
	streams := NewStreams(log, StreamsOptions{Logger: logger, KeepAlive: keepAlive, Heartbeat: beats,
		Known: func(a string) bool { return a == "ana" || a == "bob" }})
	if err := streams.Start(); err != nil {
		t.Fatal(err)
	}
	app := httpx.NewApp(httpx.Options{Logger: logger, Registerer: prometheus.NewRegistry(), WriteTimeout: writeTimeout})
	app.Get("/v1/agents/:id/events", auth.NewVerifier(streamSecret, "", "chatgate").Middleware(), streams.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { streams.Shutdown(); _ = app.ShutdownWithTimeout(time.Second) })
	return &replica{url: "http://" + ln.Addr().String(), log: log, streams: streams, beats: beats}
}

type sseEvent struct{ id, typ, data string }

// openStream connects as agent and returns the events read, until the stream ends.
func openStream(t *testing.T, url, agent, path, lastID string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	tok, _ := auth.Mint(streamSecret, "chatgate", agent, auth.RoleAgent, time.Hour, time.Now())
	req, _ := http.NewRequest("GET", url+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan sseEvent, 100)
	if resp.StatusCode != 200 {
		close(out)
		return out, resp
	}
	go func() {
		defer close(out)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			case strings.HasPrefix(line, ": keep-alive"):
				out <- sseEvent{typ: "keep-alive"}
			case line == "" && ev.data != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return out, resp
}

func next(t *testing.T, ch <-chan sseEvent, skipKeepAlive bool) sseEvent {
	t.Helper()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("stream ended")
			}
			if skipKeepAlive && ev.typ == "keep-alive" {
				continue
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5s")
		}
	}
}

func publish(t *testing.T, r *replica, agent, typ, cardID string) string {
	t.Helper()
	id, err := r.log.Publish(context.Background(), agent, Event{Type: typ, At: time.Now(), Card: map[string]string{"id": cardID}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestStreamDeliversAndResumesOnAnotherReplica(t *testing.T) {
	client := redistest.Client(t)
	a := newReplica(t, client, time.Minute, 10*time.Second)
	b := newReplica(t, client, time.Minute, 10*time.Second)
	events, _ := openStream(t, a.url, "ana", "/v1/agents/me/events", "")
	waitOpen(t, a.streams, 1)
	id1 := publish(t, b, "ana", EventCardOffered, "c1") // published through the other replica
	ev := next(t, events, true)
	if ev.id != id1 || ev.typ != EventCardOffered || !strings.Contains(ev.data, `"c1"`) {
		t.Fatalf("got %+v, want card.offered c1 with id %s", ev, id1)
	}
	publish(t, b, "bob", EventCardOffered, "not-for-ana")
	id2 := publish(t, a, "ana", EventCardRevoked, "c1")
	if ev = next(t, events, true); ev.id != id2 {
		t.Fatalf("ana got %+v, want only her own event %s", ev, id2)
	}
	// Ana's connection drops; three events happen; she reconnects to the other replica.
	a.streams.Shutdown()
	missed := []string{publish(t, a, "ana", EventMessageReceived, "m1"), publish(t, a, "ana", EventMessageReceived, "m2"), publish(t, a, "ana", EventConversationClosed, "c1")}
	resumed, _ := openStream(t, b.url, "ana", "/v1/agents/ana/events", id2)
	for _, want := range missed {
		if ev := next(t, resumed, true); ev.id != want {
			t.Fatalf("resume: got %s, want %s", ev.id, want)
		}
	}
	live := publish(t, b, "ana", EventCardOffered, "c2")
	if ev := next(t, resumed, true); ev.id != live {
		t.Fatalf("after the backlog: got %s, want the live %s (nothing twice)", ev.id, live)
	}
	if b.beats.n.Load() == 0 {
		t.Error("opening a stream did not refresh the heartbeat")
	}
}

func TestStreamKeepAliveOutlastsWriteTimeout(t *testing.T) {
	r := newReplica(t, redistest.Client(t), 300*time.Millisecond, time.Second)
	events, _ := openStream(t, r.url, "ana", "/v1/agents/me/events", "")
	deadline := time.Now().Add(2500 * time.Millisecond) // longer than the server's write timeout
	n := 0
	for time.Now().Before(deadline) {
		if ev := next(t, events, false); ev.typ == "keep-alive" {
			n++
		}
	}
	if n < 4 {
		t.Fatalf("got %d keep-alives in 2.5s at a 300ms interval", n)
	}
	id := publish(t, r, "ana", EventCardOffered, "late")
	if ev := next(t, events, true); ev.id != id {
		t.Fatalf("after the write timeout: got %+v", ev)
	}
	if r.beats.n.Load() < 4 {
		t.Errorf("keep-alives refreshed the heartbeat %d times", r.beats.n.Load())
	}
}

func TestStreamRefusals(t *testing.T) {
	r := newReplica(t, redistest.Client(t), time.Minute, 10*time.Second)
	for _, tc := range []struct {
		agent, path, last string
		status            int
	}{
		{"bob", "/v1/agents/ana/events", "", 403},
		{"zed", "/v1/agents/me/events", "", 404},
		{"ana", "/v1/agents/me/events", "not-an-id", 400},
	} {
		_, resp := openStream(t, r.url, tc.agent, tc.path, tc.last)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s last=%q: got %d, want %d", tc.agent, tc.path, tc.last, resp.StatusCode, tc.status)
		}
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	r := newReplica(t, redistest.Client(t), time.Minute, 10*time.Second)
	events, _ := openStream(t, r.url, "ana", "/v1/agents/me/events", "")
	waitOpen(t, r.streams, 1)
	r.streams.Shutdown()
	select {
	case _, ok := <-events:
		for ok {
			_, ok = <-events
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream stayed open after shutdown")
	}
}

func TestStreamsOnEmbeddedStore(t *testing.T) {
	m := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	r := newReplica(t, client, time.Minute, 10*time.Second)
	events, _ := openStream(t, r.url, "ana", "/v1/agents/me/events", "")
	waitOpen(t, r.streams, 1)
	id := publish(t, r, "ana", EventCardOffered, "c1")
	if ev := next(t, events, true); ev.id != id {
		t.Fatalf("embedded store: got %+v, want %s", ev, id)
	}
}

func waitOpen(t *testing.T, s *Streams, n int) {
	t.Helper()
	testutil.Eventually(t, 3*time.Second, fmt.Sprintf("%d streams open", n), func() bool { return s.Open() >= n })
}

func TestPresenceChangesReachTheAgentsStream(t *testing.T) {
	client := redistest.Client(t)
	cfg := testConfig("longest_idle")
	ks := keyspace.New("t")
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention})
	log := NewStreamLog(client, ks, 100)
	ps.AddListener(PresenceEvents{Publisher: log})
	ctx := context.Background()
	ps.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle)
	ps.Set(ctx, "ana", "webchat", presence.Online, "", "ana", presence.CauseToggle)
	ps.Set(ctx, "ana", "whatsapp", presence.Paused, "lunch", "ana", presence.CauseToggle)
	events, err := log.Since(ctx, "ana", "0", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 4 { // two logins, then the pause of both channels of the group
		t.Fatalf("got %d presence events, want 4", len(events))
	}
	last, _ := json.Marshal(events[3].Presence)
	for _, want := range []string{`"agent":"ana"`, `"from":"online"`, `"to":"paused"`, `"reason":"lunch"`, `"at":`, `"id":"ana:`} {
		if !strings.Contains(string(last), want) {
			t.Errorf("presence.changed payload %s lacks %s", last, want)
		}
	}
	if events[3].Type != EventPresenceChanged || events[3].ID == "" {
		t.Errorf("event: %+v", events[3])
	}
}
