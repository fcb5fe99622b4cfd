package httpx

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goccy/go-json"
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
// listener ends it.
//
// With max > 0 it also bounds the connections open at once, event streams included: fasthttp counts a
// connection only while it serves requests on it, and a stream's connection, once taken over, leaves
// that count. Beyond max a new connection gets a 503 with a JSON error and is closed at once.
// Accepted connections can run a function when they close (see StreamGate).
type Listener struct {
	net.Listener
	logger *slog.Logger
	max    int64
	open   atomic.Int64
	// Only the server's accepting goroutine touches these.
	failures    int
	lastLog     time.Time
	refused     int
	lastRefusal time.Time
}

// NewListener wraps ln; max bounds the open connections (0: no bound).
func NewListener(ln net.Listener, logger *slog.Logger, max int) *Listener {
	return &Listener{Listener: ln, logger: logger, max: int64(max)}
}

// Open reports how many accepted connections are not closed yet.
func (l *Listener) Open() int { return int(l.open.Load()) }

// connectionsFull is what a connection over the bound gets before it is closed: written before
// fasthttp sees the connection, so the error handler cannot render it.
var connectionsFull = func() []byte {
	body, err := json.Marshal(errorBody{Error: errorDetail{Code: ErrTooManyConnections.Code, Message: ErrTooManyConnections.Message}})
	if err != nil {
		panic(err)
	}
	return []byte("HTTP/1.1 " + strconv.Itoa(ErrTooManyConnections.Status) + " " + http.StatusText(ErrTooManyConnections.Status) +
		"\r\nContent-Type: application/json\r\nConnection: close\r\n" +
		"Retry-After: 1\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
}()

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
			if l.max > 0 && l.open.Load() >= l.max {
				l.refuse(c)
				continue
			}
			l.open.Add(1)
			return &trackedConn{Conn: c, onFirstClose: func() { l.open.Add(-1) }}, nil
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

// refuse answers a connection over the bound and closes it, logging at most once per interval.
func (l *Listener) refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.Write(connectionsFull)
	_ = c.Close()
	l.refused++
	if now := time.Now(); now.Sub(l.lastRefusal) >= acceptLogEvery {
		l.logger.Warn("connections refused: http.max_connections reached", "max", l.max, "refused", l.refused)
		l.lastRefusal, l.refused = now, 0
	}
}

// trackedConn runs functions once the connection is closed, however often Close is called.
type trackedConn struct {
	net.Conn
	onFirstClose func()
	mu           sync.Mutex
	closed       bool
	onClose      []func()
}

func (c *trackedConn) Close() error {
	c.mu.Lock()
	first := !c.closed
	hooks := c.onClose
	c.onClose, c.closed = nil, true
	c.mu.Unlock()
	err := c.Conn.Close()
	if !first {
		return err
	}
	if c.onFirstClose != nil {
		c.onFirstClose()
	}
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
