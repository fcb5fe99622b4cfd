package e2e

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
)

// TestStreamEndsWithItsToken: an agent's event stream opened with a short-lived token delivers
// events until the token expires, then sends session.expired and closes; from then on it delivers
// no customer text and no longer keeps the agent's presence alive. A heartbeat or a stream with an
// expired token is 401 and changes nothing; a new token resumes from Last-Event-ID with what was
// missed, so the client keeps its place.
func TestStreamEndsWithItsToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{agents: 2})
	r1, r2 := e.replicas[0].url(), e.replicas[1].url()
	e.mustOnline(r1, "whatsapp", agentID(1))
	ctx := context.Background()
	seen := func() float64 {
		v, _ := e.client.ZScore(ctx, prefix+"presence:seen", agentID(1)).Result()
		return v
	}

	short, err := auth.Mint(jwtSecret, "chatgate", agentID(1), auth.RoleAgent, 3*time.Second, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	claims, err := auth.NewVerifier(jwtSecret, "", "chatgate").Verify(short)
	if err != nil {
		t.Fatal(err)
	}
	expires := claims.ExpiresAt
	req, _ := http.NewRequest("GET", r2+"/v1/agents/me/events", nil)
	req.Header.Set("Authorization", "Bearer "+short)
	resp, err := (&http.Client{}).Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	var mu sync.Mutex
	var events []sseEvent
	var at []time.Time
	ended := make(chan time.Time, 1)
	go func() {
		_ = readSSE(resp.Body, func(ev sseEvent) {
			mu.Lock()
			events, at = append(events, ev), append(at, time.Now())
			mu.Unlock()
		})
		ended <- time.Now()
	}()
	seenAtOpen := seen()

	// Live while the token is valid.
	if r, err := e.postWhatsApp(r1, whatsAppMessage(customer(1), "wamid.expiry.1", "antes de expirar")); err != nil || r.status != 200 {
		t.Fatalf("webhook: %d %v", r.status, err)
	}
	var endedAt time.Time
	select {
	case endedAt = <-ended:
	case <-time.After(time.Until(expires) + 5*time.Second):
		t.Fatalf("the stream was still open 5 s after its token expired at %s", expires.Format(time.RFC3339))
	}
	mu.Lock()
	got := append([]sseEvent(nil), events...)
	gotAt := append([]time.Time(nil), at...)
	mu.Unlock()
	offered := false
	for _, ev := range got[:max(len(got)-1, 0)] {
		offered = offered || ev.typ == "card.offered"
	}
	if len(got) < 2 || !offered {
		t.Fatalf("events before the expiry: %v, want the card.offered among them", got)
	}
	last := got[len(got)-1]
	if last.typ != "session.expired" || last.data["type"] != "session.expired" || last.id != "" {
		t.Errorf("last event: %+v, want session.expired without an id", last)
	}
	if d := gotAt[len(gotAt)-1].Sub(expires); d < -100*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("session.expired came %v from the token's expiry, want at it", d)
	}
	if d := endedAt.Sub(expires); d > 2*time.Second {
		t.Errorf("the connection closed %v after the expiry", d)
	}
	lastID := got[len(got)-2].id
	if seenAtExpiry := seen(); seenAtExpiry <= seenAtOpen {
		t.Errorf("presence heartbeat did not advance while the stream was open (%v → %v): the check below would prove nothing", seenAtOpen, seenAtExpiry)
	}

	// After the expiry: a customer writes; the closed stream keeps nothing alive.
	seenAfter := seen()
	if r, err := e.postWhatsApp(r1, whatsAppMessage(customer(1), "wamid.expiry.2", "depois de expirar")); err != nil || r.status != 200 {
		t.Fatalf("webhook after the expiry: %d %v", r.status, err)
	}
	time.Sleep(2500 * time.Millisecond) // the keep-alive (and its heartbeat) is every second here
	if s := seen(); s != seenAfter {
		t.Errorf("presence still kept alive after the stream's token expired: last seen %v → %v", seenAfter, s)
	}

	expired, _ := auth.Mint(jwtSecret, "chatgate", agentID(1), auth.RoleAgent, time.Minute, time.Now().Add(-time.Hour))
	withExpired := map[string]string{"Authorization": "Bearer " + expired}
	runHostile(t, e, []hostile{
		{name: "heartbeat with an expired token", method: "POST", path: "/v1/agents/me/heartbeat", headers: withExpired, status: 401, code: "invalid_token"},
		{name: "event stream with an expired token", method: "GET", path: "/v1/agents/me/events", headers: withExpired, status: 401, code: "invalid_token"},
		{name: "presence with an expired token", method: "GET", path: "/v1/agents/me/presence", headers: withExpired, status: 401, code: "invalid_token"},
	}, nil)

	// Signed in again, the client resumes where it was: the message written meanwhile comes first.
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(rctx, "GET", r1+"/v1/agents/me/events", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, agentID(1), auth.RoleAgent, time.Hour))
	req.Header.Set("Last-Event-ID", lastID)
	resp2, err := (&http.Client{}).Do(req)
	if err != nil || resp2.StatusCode != 200 {
		t.Fatalf("stream with a new token: %v %v", resp2, err)
	}
	defer resp2.Body.Close()
	var resumed []sseEvent
	_ = readSSE(resp2.Body, func(ev sseEvent) {
		resumed = append(resumed, ev)
		if ev.typ == "message.received" {
			cancel()
		}
	})
	found := false
	for _, ev := range resumed {
		if m, ok := ev.data["message"].(map[string]any); ok && ev.typ == "message.received" && m["text"] == "depois de expirar" {
			found = true
		}
	}
	if !found {
		t.Errorf("resumed stream did not replay the message written after the expiry: %v", resumed)
	}
}
