// Package redistest gives tests a real Redis: a database of its own on the throwaway redis-server
// that the test command (scripts/test.sh) starts, or a private redis-server for tests that stop it.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// AddrEnv names the variable through which the test command passes its Redis address.
const AddrEnv = "CHATGATE_TEST_REDIS_ADDR"

// databases is how many logical databases scripts/test.sh gives its redis-server.
const databases = 1024

// Addr returns the shared test Redis address, failing the test when the test command did not start one.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(AddrEnv)
	if addr == "" {
		t.Fatalf("%s is not set: run the tests with `make test` (or scripts/test.sh ./pkg/...), which starts a throwaway redis-server", AddrEnv)
	}
	return addr
}

// Client returns a client on a fresh, empty database of the shared test Redis, flushed again at cleanup.
// Packages run in parallel; each test's own database keeps them apart.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	addr := Addr(t)
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	n, err := admin.Incr(ctx, "chatgate:test:next-db").Result()
	if err != nil {
		t.Fatalf("allocate a test database on %s: %v", addr, err)
	}
	db := int(n%(databases-1)) + 1
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush test database %d: %v", db, err)
	}
	t.Cleanup(func() {
		_ = c.FlushDB(context.Background()).Err()
		_ = c.Close()
	})
	return c
}

// URL returns a redis:// URL of a fresh, empty database on the shared test Redis, for code that
// opens its own client from configuration.
func URL(t testing.TB) string {
	t.Helper()
	c := Client(t)
	return fmt.Sprintf("redis://%s/%d", c.Options().Addr, c.Options().DB)
}

// Server is a redis-server process owned by one test, for tests that stop and restart Redis.
type Server struct {
	Addr string
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
	// exited closes when cmd has been waited for.
	exited chan struct{}
}

// StartServer runs a private redis-server on a free loopback port; it is stopped at cleanup. A port
// found free can be taken by another process before redis-server binds it, so a failed start is
// retried on another port.
func StartServer(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (apt-get install redis-server): %v", err)
	}
	s := &Server{dir: t.TempDir()}
	t.Cleanup(func() { s.Stop(t) })
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.Port = FreePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		s.args = append([]string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", s.dir, "--daemonize", "no", "--logfile", ""}, extraArgs...)
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("start redis-server: %v", err)
	return nil
}

// Start (re)starts the process on the same port and waits until it answers.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) start() error {
	s.cmd = exec.Command("redis-server", s.args...)
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	cmd := s.cmd
	go func() { _ = cmd.Wait(); close(exited) }()
	s.exited = exited
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	var exitedAtStart bool
	up := testutil.Within(10*time.Second, func() bool {
		select {
		case <-exited: // the port was taken, or the arguments refused
			exitedAtStart = true
			return true
		default:
		}
		return c.Ping(context.Background()).Err() == nil
	})
	if exitedAtStart {
		s.cmd = nil
		return fmt.Errorf("redis-server on %s exited at start", s.Addr)
	}
	if up {
		return nil
	}
	_ = cmd.Process.Kill()
	<-exited
	s.cmd = nil
	return fmt.Errorf("redis-server on %s did not answer within 10s", s.Addr)
}

// Stop ends the process (by its PID) and waits for it.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL returns a redis:// URL for the server.
func (s *Server) URL() string { return fmt.Sprintf("redis://%s/0", s.Addr) }
