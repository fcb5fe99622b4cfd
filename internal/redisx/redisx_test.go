package redisx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

func TestEmbeddedStoreExpiresKeysInRealTime(t *testing.T) {
	s, err := Open(context.Background(), configs.Redis{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Embedded {
		t.Fatal("got an external store, want the embedded one when no URL is configured")
	}
	ctx := context.Background()
	if err := s.Client.Set(ctx, "k", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if got := s.Client.Exists(ctx, "k").Val(); got != 1 {
		t.Fatalf("key right after SET: got exists=%d, want 1", got)
	}
	testutil.Eventually(t, 3*time.Second, "the key with a 300ms TTL to expire (the embedded clock is driven)", func() bool {
		return s.Client.Exists(ctx, "k").Val() == 0
	})
}

func TestExternalStoreUsesURL(t *testing.T) {
	srv := redistest.StartServer(t)
	s, err := Open(context.Background(), configs.Redis{URL: srv.URL()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Embedded {
		t.Fatal("got the embedded store, want the configured Redis")
	}
	if err := s.Client.Set(context.Background(), "probe", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	if got := direct.Get(context.Background(), "probe").Val(); got != "1" {
		t.Fatalf("value seen directly on the server: got %q, want 1", got)
	}
}

func TestHealthFollowsRedisAndLogsOutageOnce(t *testing.T) {
	srv := redistest.StartServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer client.Close()
	var logs testutil.Buffer
	h := NewHealth(client, slog.New(slog.NewTextHandler(&logs, nil)), 100*time.Millisecond)
	h.Start()
	defer h.Shutdown()
	if err := h.Err(); err != nil {
		t.Fatalf("health with Redis up: got %v, want nil", err)
	}
	srv.Stop(t)
	testutil.Eventually(t, 2*time.Second, "Redis seen down", func() bool { return h.Err() != nil })
	time.Sleep(500 * time.Millisecond) // the outage lasts several failed pings, logged once for all
	srv.Start(t)
	testutil.Eventually(t, 2*time.Second, "Redis seen up again", func() bool { return h.Err() == nil })
	if got := strings.Count(logs.String(), "redis became unreachable"); got != 1 {
		t.Fatalf("outage logged %d times, want once:\n%s", got, logs.String())
	}
	if got := strings.Count(logs.String(), "redis is reachable again"); got != 1 {
		t.Fatalf("recovery logged %d times, want once", got)
	}
}

// A continuing outage is recalled at the reminder's pace (a minute in the gateway), not per ping.
func TestHealthRecallsALongOutageAtItsPace(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + fmt.Sprint(redistest.FreePort(t)), DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer client.Close()
	var logs testutil.Buffer
	h := NewHealth(client, slog.New(slog.NewTextHandler(&logs, nil)), 20*time.Millisecond)
	h.remind = 400 * time.Millisecond
	start := time.Now()
	h.Start()
	time.Sleep(1300 * time.Millisecond) // the interval under test: dozens of failed pings, three reminders
	h.Shutdown()
	elapsed := time.Since(start)
	if got := strings.Count(logs.String(), "redis became unreachable"); got != 1 {
		t.Fatalf("outage logged %d times, want once:\n%s", got, logs.String())
	}
	if got, most := strings.Count(logs.String(), "redis is still unreachable"), int(elapsed/h.remind); got < 2 || got > most {
		t.Fatalf("a %v outage recalled %d times at a 400 ms pace, want 2 to %d:\n%s", elapsed, got, most, logs.String())
	}
	if !strings.Contains(logs.String(), "down_for=") {
		t.Fatalf("the reminder does not say for how long:\n%s", logs.String())
	}
}

// go-redis's own lines reach the gateway's logger, each kind once per pace.
func TestGoRedisLogsThroughTheGatewayLogger(t *testing.T) {
	var logs testutil.Buffer
	UseLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { UseLogger(slog.New(slog.DiscardHandler)) })
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + fmt.Sprint(redistest.FreePort(t)), DialTimeout: 100 * time.Millisecond,
		MaxRetries: -1, DialerRetries: 1})
	defer client.Close()
	for i := 0; i < 20; i++ {
		_ = client.Ping(context.Background()).Err()
	}
	if got := strings.Count(logs.String(), `msg="redis client"`); got != 1 {
		t.Fatalf("20 failed dials wrote %d go-redis lines through the logger, want one:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Fatalf("the line does not say what failed:\n%s", logs.String())
	}
}

func TestIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redis.Nil, false},
		{errors.New("ERR wrong number of arguments"), false},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{redis.ErrPoolTimeout, true},
		{io.EOF, true},
		{errors.New("LOADING Redis is loading the dataset in memory"), true},
		{errors.New("CLUSTERDOWN The cluster is down"), true},
		// as the scripts' errors come: wrapped in the script's name and the caller's step
		{fmt.Errorf("deliver: %w", fmt.Errorf("deliver script: %w", errors.New("LOADING Redis is loading the dataset in memory"))), true},
		{fmt.Errorf("accept script: %w", errors.New("READONLY You can't write against a read only replica.")), true},
		{fmt.Errorf("accept script: %w", errors.New("ERR Error running script")), false},
	} {
		if got := IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v): got %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestClusterAddressesGiveAClusterClient(t *testing.T) {
	cluster := redistest.StartCluster(t)
	s, err := Open(context.Background(), configs.Redis{Addrs: cluster.Addrs}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Client.(*redis.ClusterClient); !ok {
		t.Fatalf("got %T, want *redis.ClusterClient for several addresses", s.Client)
	}
	ctx := context.Background()
	// Keys of one tenant share a hash tag, so a script may touch several of them on a cluster.
	script := redis.NewScript(`redis.call("SET", KEYS[1], ARGV[1]); redis.call("SET", KEYS[2], ARGV[1]); return redis.call("GET", KEYS[1])`)
	got, err := script.Run(ctx, s.Client, []string{"cg:{t1}:a", "cg:{t1}:b"}, "v").Text()
	if err != nil || got != "v" {
		t.Fatalf("two-key script under one hash tag: got %q, %v", got, err)
	}
	if err := script.Run(ctx, s.Client, []string{"cg:{t1}:a", "cg:{t2}:b"}, "v").Err(); err == nil {
		t.Fatal("a script across two hash tags succeeded; the cluster is not enforcing slots")
	}
}

// rediss:// speaks TLS to the server's TLS port, verifying its certificate against tls_ca_file.
func TestRedissURLUsesTLS(t *testing.T) {
	srv := redistest.StartTLSServer(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(context.Background(), configs.Redis{URL: srv.URL(), TLSCAFile: srv.CAFile}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Client.Set(ctx, "probe", "tls", 0).Err(); err != nil {
		t.Fatalf("SET over TLS: %v", err)
	}
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	if got := direct.Get(ctx, "probe").Val(); got != "tls" {
		t.Fatalf("value seen on the server's plain port: got %q, want tls", got)
	}

	// Without the CA the certificate is not trusted, and redis:// to the TLS port is not TLS.
	for _, cfg := range []configs.Redis{{URL: srv.URL()}, {URL: "redis://" + srv.TLSAddr + "/0"}} {
		bad, err := Open(ctx, cfg, logger)
		if err != nil {
			t.Fatal(err)
		}
		if err := bad.Client.Ping(ctx).Err(); err == nil {
			t.Errorf("%s without the CA: PING succeeded, want a failure", cfg.URL)
		}
		bad.Close()
	}
}

// Sentinel: addrs are the sentinels and master_name the monitored master; the client asks a
// sentinel where the master is.
func TestSentinelAddressesGiveAFailoverClient(t *testing.T) {
	master := redistest.StartServer(t)
	sentinel := redistest.StartSentinel(t, master, "chatgate")
	s, err := Open(context.Background(), configs.Redis{Addrs: []string{sentinel}, MasterName: "chatgate"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Embedded {
		t.Fatal("got the embedded store")
	}
	ctx := context.Background()
	if err := s.Client.Set(ctx, "probe", "via-sentinel", 0).Err(); err != nil {
		t.Fatalf("SET through Sentinel: %v", err)
	}
	direct := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer direct.Close()
	if got := direct.Get(ctx, "probe").Val(); got != "via-sentinel" {
		t.Fatalf("value seen on the master: got %q, want via-sentinel", got)
	}
	// The sentinel is no data server: the value came through the master it named.
	sc := redis.NewClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	if err := sc.Get(ctx, "probe").Err(); err == nil {
		t.Fatal("GET on the sentinel's port succeeded; the client may have talked to it as a server")
	}
}
