package httpx

import (
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// StreamGate bounds the event streams one process holds: in all (max) and per client address
// (perIP, the address c.IP() gives, so behind trusted proxies the client's). A stream leaves
// fasthttp's connection count once its connection is taken over, so without this gate anyone able to
// open a stream (a widget visitor needs no account) could hold descriptors until the process ran out.
// Beyond either bound the answer is immediate: 503 or 429 with a JSON error, and the connection closes.
type StreamGate struct {
	max, perIP int
	mu         sync.Mutex
	open       int
	byIP       map[string]int
	gauge      prometheus.Gauge
	refused    *prometheus.CounterVec
}

// NewStreamGate builds a gate; 0 leaves a bound off.
func NewStreamGate(max, perIP int, reg prometheus.Registerer) *StreamGate {
	g := &StreamGate{max: max, perIP: perIP, byIP: map[string]int{},
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatgate_open_streams", Help: "Event streams (agents' and visitors') this process holds open."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_streams_refused_total",
			Help: "Event streams refused at a bound: total (http.max_connections, open files) or per_ip (http.max_streams_per_ip)."}, []string{"bound"}),
	}
	if reg != nil {
		reg.MustRegister(g.gauge, g.refused)
	}
	return g
}

// Open reports how many streams hold a slot.
func (g *StreamGate) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

func (g *StreamGate) acquire(ip string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.max > 0 && g.open >= g.max {
		g.refused.WithLabelValues("total").Inc()
		return ErrTooManyStreams
	}
	if g.perIP > 0 && g.byIP[ip] >= g.perIP {
		g.refused.WithLabelValues("per_ip").Inc()
		return ErrTooManyStreamsFromIP
	}
	g.open++
	g.byIP[ip]++
	g.gauge.Inc()
	return nil
}

func (g *StreamGate) release(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open--
	if g.byIP[ip]--; g.byIP[ip] <= 0 {
		delete(g.byIP, ip)
	}
	g.gauge.Dec()
}

// Handler takes a slot for a GET before the stream handler runs. A stream that takes its connection
// over keeps the slot until that connection closes (connections from a Listener report it); any other
// answer (401, 403, …) gives it back at once.
func (g *StreamGate) Handler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Method() != fiber.MethodGet {
			return c.Next()
		}
		ip := strings.Clone(c.IP())
		if err := g.acquire(ip); err != nil {
			c.Context().SetConnectionClose()
			return err
		}
		release := sync.OnceFunc(func() { g.release(ip) })
		err := c.Next()
		if tc, ok := c.Context().Conn().(*trackedConn); ok && c.Context().Hijacked() {
			tc.afterClose(release)
			return err
		}
		release()
		return err
	}
}
