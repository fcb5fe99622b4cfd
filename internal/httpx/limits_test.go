package httpx

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// failingListener fails its first n accepts with err, then accepts from the real listener.
type failingListener struct {
	net.Listener
	n     atomic.Int32
	err   error
	tries atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.tries.Add(1)
	if l.n.Add(-1) >= 0 {
		return nil, l.err
	}
	return l.Listener.Accept()
}

// Running out of descriptors used to end fasthttp's Serve, and the process with it: the listener
// backs off and serves again once accepting works, logging the failures once.
func TestListenerRetriesAcceptErrorsAndServesAfterwards(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: inner, err: &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}}
	fl.n.Store(8)
	logs := &testutil.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	app := NewApp(Options{Logger: logger, Registerer: prometheus.NewRegistry()})
	served := make(chan error, 1)
	go func() { served <- app.Listener(NewListener(fl, logger, 0)) }()

	c, err := net.DialTimeout("tcp", inner.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Fatalf("after 8 failed accepts: %q %v, want a 200", line, err)
	}
	if got := fl.tries.Load(); got < 9 {
		t.Errorf("accept tried %d times, want the 8 failures and a success", got)
	}
	select {
	case err := <-served:
		t.Fatalf("the server stopped on an accept error: %v", err)
	default:
	}
	if err := app.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve after shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not stop when its listener closed")
	}
	if n := strings.Count(logs.String(), "accept failed"); n != 1 {
		t.Errorf("logged %d accept failures lines for 8 failures in a burst, want 1:\n%s", n, logs.String())
	}
}

// streamApp serves a stream that takes its connection over and holds it until the client leaves,
// and a stream route that refuses before taking anything over.
func streamApp(t *testing.T, gate *StreamGate) string {
	t.Helper()
	return streamAppWithin(t, gate, 0)
}

// streamAppWithin is streamApp behind a listener bounding the open connections to maxConns.
func streamAppWithin(t *testing.T, gate *StreamGate, maxConns int) string {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := NewApp(Options{Logger: logger, Registerer: prometheus.NewRegistry()})
	app.Get("/stream", gate.Handler(), func(c *fiber.Ctx) error {
		c.Context().HijackSetNoResponse(true)
		c.Context().Hijack(func(conn net.Conn) {
			defer conn.Close() // NewApp keeps hijacked connections: the handler closes them
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n: open\n\n")
			_, _ = io.Copy(io.Discard, conn) // until the client closes
		})
		return nil
	})
	app.Get("/refused", gate.Handler(), func(c *fiber.Ctx) error {
		return ErrInvalidToken
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(NewListener(ln, logger, maxConns)) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return ln.Addr().String()
}

// open sends GET path and returns the connection and the status line's code and JSON error code.
func open(t *testing.T, addr, path string) (net.Conn, string, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	request := "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"
	if path == "/refused" { // an ordinary answer keeps the connection unless asked
		request = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	}
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	code := strings.Fields(status)[1]
	if code == "200" {
		return c, code, ""
	}
	rest, _ := io.ReadAll(r) // the refusal closes the connection
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	head, payload, _ := strings.Cut(string(rest), "\r\n\r\n")
	if !strings.Contains(strings.ToLower(head), "connection: close") {
		t.Errorf("GET %s refused with %s without Connection: close:\n%s", path, code, head)
	}
	if err := json.Unmarshal([]byte(payload), &body); err != nil {
		t.Errorf("GET %s refused with %s and no JSON error: %q", path, code, payload)
	}
	c.Close()
	return nil, code, body.Error.Code
}

func TestStreamGateBoundsStreamsPerAddressAndInAll(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		gate := NewStreamGate(10, 2, prometheus.NewRegistry())
		addr := streamApp(t, gate)
		a, code1, _ := open(t, addr, "/stream")
		b, code2, _ := open(t, addr, "/stream")
		if code1 != "200" || code2 != "200" {
			t.Fatalf("first two streams: %s %s, want 200", code1, code2)
		}
		defer b.Close()
		if _, code, errCode := open(t, addr, "/stream"); code != "429" || errCode != "too_many_streams_from_ip" {
			t.Errorf("third stream from one address: %s %q, want 429 too_many_streams_from_ip", code, errCode)
		}
		if gate.Open() != 2 {
			t.Errorf("open streams after a refusal: %d, want 2", gate.Open())
		}
		a.Close()
		testutil.Eventually(t, 2*time.Second, "the closed stream's slot to be freed", func() bool { return gate.Open() == 1 })
		c, code, _ := open(t, addr, "/stream")
		if code != "200" {
			t.Fatalf("a stream after one closed: %s, want 200", code)
		}
		c.Close()
	})
	t.Run("in all", func(t *testing.T) {
		gate := NewStreamGate(2, 0, prometheus.NewRegistry())
		addr := streamApp(t, gate)
		for i := 0; i < 3; i++ {
			if _, code, _ := open(t, addr, "/refused"); code != "401" {
				t.Fatalf("refused route: %s, want 401", code)
			}
		}
		if gate.Open() != 0 {
			t.Fatalf("answers that started no stream kept %d slots", gate.Open())
		}
		a, _, _ := open(t, addr, "/stream")
		b, _, _ := open(t, addr, "/stream")
		defer a.Close()
		defer b.Close()
		if _, code, errCode := open(t, addr, "/stream"); code != "503" || errCode != "stream_capacity_reached" {
			t.Errorf("third stream with a budget of two: %s %q, want 503 stream_capacity_reached", code, errCode)
		}
		if gate.Open() != 2 {
			t.Errorf("open streams: %d, want 2", gate.Open())
		}
	})
}

// http.max_connections bounds every open connection, a stream's included once it has left fasthttp's
// own count: over it a connection gets a 503 with a JSON error and is closed.
func TestListenerBoundsOpenConnectionsStreamsIncluded(t *testing.T) {
	addr := streamAppWithin(t, NewStreamGate(0, 0, prometheus.NewRegistry()), 2)
	stream, code, _ := open(t, addr, "/stream")
	if code != "200" {
		t.Fatalf("stream: %s", code)
	}
	defer stream.Close()
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, code, errCode := open(t, addr, "/stream"); code != "503" || errCode != "too_many_connections" {
		t.Fatalf("a third connection with a stream and an idle one open: %s %q, want 503 too_many_connections", code, errCode)
	}
	idle.Close()
	testutil.Eventually(t, 2*time.Second, "a connection served after the idle one closed", func() bool {
		c, code, _ := open(t, addr, "/refused")
		if c != nil {
			c.Close()
		}
		return code == "401"
	})
}
