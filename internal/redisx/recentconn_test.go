package redisx

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/redistest"
)

// TestRecentConnectionSkipsTheCheck: go-redis's check reads the socket of a connection idle longer
// than recentWindow, and not of one that has just read a reply.
func TestRecentConnectionSkipsTheCheck(t *testing.T) {
	rs := redistest.StartServer(t)
	conn, err := recentDialer(time.Second)(context.Background(), "tcp", rs.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	raw, err := conn.(*recentConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	checked := false
	peek := func(uintptr) bool { checked = true; return true }
	if err := raw.Read(peek); err != nil || checked {
		t.Errorf("just after a reply: checked %v, %v; want no check", checked, err)
	}
	time.Sleep(recentWindow + 20*time.Millisecond)
	if err := raw.Read(peek); err != nil || !checked {
		t.Errorf("idle past %v: checked %v, %v; want the check", recentWindow, checked, err)
	}
}

// TestRestartedRedisConnectionsDroppedBeforeUse: after Redis restarts, the pooled connections it
// closed are found dead by the check and dropped; the next command needs no retry.
func TestRestartedRedisConnectionsDroppedBeforeUse(t *testing.T) {
	rs := redistest.StartServer(t)
	opts, err := universalOptions(configs.Redis{URL: rs.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Dialer == nil {
		t.Fatal("a plain TCP Redis should be dialed by recentDialer")
	}
	opts.MaxRetries = -1 // a dead connection used would fail the command
	client := redis.NewUniversalClient(opts)
	defer client.Close()
	ctx := context.Background()
	for range 3 {
		if err := client.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rs.Stop(t)
	rs.Start(t)
	time.Sleep(recentWindow + 50*time.Millisecond)
	if err := client.Set(ctx, "k", "again", 0).Err(); err != nil {
		t.Errorf("first command after the restart: %v", err)
	}
}
