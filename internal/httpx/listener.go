package httpx

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Accept backoff: from acceptDelayMin doubling to acceptDelayMax while Accept keeps failing.
const (
	acceptDelayMin = 5 * time.Millisecond
	acceptDelayMax = time.Second
	acceptLogEvery = 10 * time.Second
)

// Listener keeps a server accepting through errors that are not the listener's end. fasthttp's Serve
// returns on any accept error but a timeout, so running out of file descriptors (accept4: too many
// open files) used to stop the server and with it the process. Here Accept waits (5 ms doubling to
// 1 s) and tries again, logging at most once per 10 s with how many attempts failed; only a closed
// listener ends it. Accepted connections can run a function when they close (see StreamGate).
type Listener struct {
	net.Listener
	logger *slog.Logger
	// Only the server's accepting goroutine touches these.
	failures int
	lastLog  time.Time
}

// NewListener wraps ln.
func NewListener(ln net.Listener, logger *slog.Logger) *Listener {
	return &Listener{Listener: ln, logger: logger}
}

// Accept returns the next connection, retrying every error but the listener's closing.
func (l *Listener) Accept() (net.Conn, error) {
	delay := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if l.failures > 0 {
				l.logger.Info("accepting connections again", "failed_attempts", l.failures)
				l.failures, l.lastLog = 0, time.Time{}
			}
			return &trackedConn{Conn: c}, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		l.failures++
		if now := time.Now(); now.Sub(l.lastLog) >= acceptLogEvery {
			l.logger.Error("accept failed; retrying with backoff (out of file descriptors? see http.max_connections and ulimit -n)",
				"err", err, "failed_attempts", l.failures)
			l.lastLog = now
		}
		delay = min(max(2*delay, acceptDelayMin), acceptDelayMax)
		time.Sleep(delay)
	}
}

// trackedConn runs functions once the connection is closed, however often Close is called.
type trackedConn struct {
	net.Conn
	mu      sync.Mutex
	closed  bool
	onClose []func()
}

func (c *trackedConn) Close() error {
	c.mu.Lock()
	hooks := c.onClose
	c.onClose, c.closed = nil, true
	c.mu.Unlock()
	err := c.Conn.Close()
	for _, f := range hooks {
		f()
	}
	return err
}

// afterClose runs f when the connection closes (at once when it already has).
func (c *trackedConn) afterClose(f func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		f()
		return
	}
	c.onClose = append(c.onClose, f)
	c.mu.Unlock()
}
