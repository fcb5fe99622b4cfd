package httpx

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"

	"github.com/chatgate/chatgate/internal/logging"
)

// Options configures the fiber application every chatgate process serves.
type Options struct {
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	Unavailable UnavailableFunc
	BodyLimit   int
	// RouteBodyLimits raises (or lowers) BodyLimit for exact paths, e.g. a provider's webhook whose
	// notifications are larger than anything else the process takes. Other paths keep BodyLimit,
	// read limit included: a body declared over twice it is still refused from its header.
	RouteBodyLimits map[string]int
	// BodyLimitFor, when set, gives the limit of requests RouteBodyLimits does not name (0:
	// BodyLimit), by path and content type: routes with parameters (a file reply to any conversation).
	// Its arguments point into the request's buffer: valid during the call only.
	BodyLimitFor func(path, contentType string) int
	HeaderLimit  int
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// MaxConnections bounds concurrent connections, so slow clients cannot exhaust the process.
	MaxConnections int
	// TrustedProxies and ProxyHeader: requests from these addresses carry the client's address in
	// ProxyHeader (what c.IP() returns, e.g. for per-IP rate limits); from anyone else it is ignored.
	TrustedProxies []string
	ProxyHeader    string
	// Ready reports why the process should not receive traffic, or nil.
	Ready func(ctx context.Context) error
	// ReadyDetail adds fields to /readyz's answer (what happened to the store, for example); nil
	// adds nothing.
	ReadyDetail func() map[string]any
}

const requestIDLocal = "requestid"

// NewApp builds the fiber application with request ids, panic recovery, request logs, HTTP metrics,
// the JSON error handler, /healthz and /readyz. Routes of the domain packages are added by the caller.
func NewApp(o Options) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:                 "chatgate",
		DisableStartupMessage:   true,
		BodyLimit:               readLimit(o.BodyLimit),
		ReadBufferSize:          o.HeaderLimit,
		ReadTimeout:             o.ReadTimeout,
		WriteTimeout:            o.WriteTimeout,
		IdleTimeout:             o.IdleTimeout,
		Concurrency:             o.MaxConnections,
		ProxyHeader:             o.ProxyHeader,
		EnableTrustedProxyCheck: true,
		TrustedProxies:          o.TrustedProxies,
		EnableIPValidation:      true,
		ErrorHandler:            ErrorHandler(o.Logger, o.Unavailable),
		JSONEncoder:             json.Marshal,
		JSONDecoder:             json.Unmarshal,
	})
	// Event streams (internal/sse) take their connection over and keep it past the hijack handler,
	// so fasthttp's request context, read buffer and goroutine are not held for a stream's life. A
	// hijack handler closes its connection itself.
	app.Server().KeepHijackedConns = true
	// fiber answers a method outside its list (PROPFIND, a lowercase get) in plain text before any
	// middleware runs: the catalogue's JSON 405 instead, as for a known method a path does not take.
	serve := app.Server().Handler
	app.Server().Handler = func(ctx *fasthttp.RequestCtx) {
		if !knownMethod(ctx.Method()) {
			unknownMethod(ctx)
			return
		}
		serve(ctx)
	}
	app.Use(requestIDs)
	// observe wraps recover so that a panic is measured and logged as the 500 it becomes.
	app.Use(observe(o.Logger, newHTTPMetrics(o.Registerer)))
	app.Use(recover.New(recover.Config{
		EnableStackTrace: true,
		StackTraceHandler: func(c *fiber.Ctx, e any) {
			o.Logger.Error("handler panicked", "request_id", RequestID(c), "path", c.Path(), "panic", fmt.Sprint(e), "stack", string(debug.Stack()))
		},
	}))

	routeLimits := make(map[string]int, len(o.RouteBodyLimits))
	for path, limit := range o.RouteBodyLimits {
		if limit > 0 {
			routeLimits[routeKey(path)] = limit
		}
	}
	limitOf := func(path, contentType string) (int, bool) {
		if limit, ok := routeLimits[routeKey(path)]; ok {
			return limit, true
		}
		if o.BodyLimitFor != nil {
			if limit := o.BodyLimitFor(path, contentType); limit > 0 {
				return limit, true
			}
		}
		return 0, false
	}
	if len(routeLimits) > 0 || o.BodyLimitFor != nil {
		// fasthttp reads a request's body up to the limit this returns, decided from the header alone.
		app.Server().HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			// Strings over the header's own bytes, not copies: this runs for every request, and
			// neither limitOf nor BodyLimitFor keeps them past the call.
			path, _, _ := strings.Cut(utils.UnsafeString(h.RequestURI()), "?")
			if limit, ok := limitOf(path, utils.UnsafeString(h.ContentType())); ok {
				return fasthttp.RequestConfig{MaxRequestBodySize: readLimit(limit)}
			}
			return fasthttp.RequestConfig{}
		}
	}
	if o.BodyLimit > 0 || len(routeLimits) > 0 || o.BodyLimitFor != nil {
		// fasthttp answers a body over its own limit and closes the connection with the rest of the
		// body unread, so the client, still writing, often sees a reset instead of the 413. Bodies up
		// to twice the limit are read whole and refused here, on a connection that stays usable.
		app.Use(func(c *fiber.Ctx) error {
			limit, ok := limitOf(c.Path(), c.Get(fiber.HeaderContentType))
			if !ok {
				limit = o.BodyLimit
			}
			if limit > 0 && len(c.Request().Body()) > limit {
				return ErrBodyTooLarge
			}
			return c.Next()
		})
	}

	app.Get("/healthz", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	})
	app.Get("/readyz", func(c *fiber.Ctx) error {
		if o.Ready != nil {
			if err := o.Ready(c.UserContext()); err != nil {
				return c.Status(ErrNotReady.Status).JSON(errorBody{Error: errorDetail{
					Code: ErrNotReady.Code, Message: err.Error(), RequestID: RequestID(c)}})
			}
		}
		body := fiber.Map{"status": "ready"}
		if o.ReadyDetail != nil {
			for k, v := range o.ReadyDetail() {
				body[k] = v
			}
		}
		return c.JSON(body)
	})
	return app
}

// knownMethod: the methods fiber routes (fiber.DefaultMethods, which NewApp keeps).
func knownMethod(m []byte) bool {
	for _, known := range fiber.DefaultMethods {
		if string(m) == known {
			return true
		}
	}
	return false
}

// unknownMethod writes ErrMethodNotAllowed as the error handler would, with a fresh request id.
func unknownMethod(ctx *fasthttp.RequestCtx) {
	rid := utils.UUID()
	body, _ := json.Marshal(errorBody{Error: errorDetail{Code: ErrMethodNotAllowed.Code, Message: ErrMethodNotAllowed.Message, RequestID: rid}})
	ctx.Response.Header.Set(fiber.HeaderXRequestID, rid)
	ctx.SetStatusCode(ErrMethodNotAllowed.Status)
	ctx.SetContentType(fiber.MIMEApplicationJSON)
	ctx.SetBody(body)
}

// MetricsHandler serves the Prometheus registry.
func MetricsHandler(g prometheus.Gatherer) fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
}

// MaxRequestIDLength bounds a client's X-Request-ID that the gateway keeps.
const MaxRequestIDLength = 64

// requestIDs keeps the client's X-Request-ID when it is short and made of [A-Za-z0-9._-], so a
// caller can follow its request through the logs; anything else (long, spaces, quotes, control
// characters that could forge a log line) is replaced by a fresh id, and the refused one is dropped
// unread and unlogged.
func requestIDs(c *fiber.Ctx) error {
	rid := c.Get(fiber.HeaderXRequestID)
	if SafeRequestID(rid) {
		rid = strings.Clone(rid) // fasthttp reuses the header buffer after the request
	} else {
		rid = utils.UUID()
	}
	c.Set(fiber.HeaderXRequestID, rid)
	c.Locals(requestIDLocal, rid)
	return c.Next()
}

// SafeRequestID reports whether a client's request id may be kept as it is.
func SafeRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// RequestID returns the id given to this request (also sent back as X-Request-ID).
func RequestID(c *fiber.Ctx) string {
	if v, ok := c.Locals(requestIDLocal).(string); ok {
		return v
	}
	return ""
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// cache holds the children of the (method, route, status) seen so far: a child's lookup hashes its
	// labels, for every request. Routes and methods are bounded (methodLabel, "unmatched"), and so
	// are the statuses a handler sends.
	cache sync.Map // childKey → *children
}

type childKey struct {
	method, route string
	status        int
}

type children struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (m *httpMetrics) children(method, route string, status int) (prometheus.Counter, prometheus.Observer) {
	k := childKey{method, route, status}
	if c, ok := m.cache.Load(k); ok {
		ch := c.(*children)
		return ch.requests, ch.duration
	}
	ch := &children{requests: m.requests.WithLabelValues(method, route, strconv.Itoa(status)), duration: m.duration.WithLabelValues(method, route)}
	c, _ := m.cache.LoadOrStore(k, ch)
	ch = c.(*children)
	return ch.requests, ch.duration
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatgate_http_requests_total", Help: "HTTP requests by method, route and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chatgate_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// methodLabel is the request's method as a metric label: one of the standard methods (constants, so
// the label never points into fasthttp's reused request buffer), or "other", so a client sending
// made-up methods cannot grow the metrics without bound.
func methodLabel(m string) string {
	for _, known := range [...]string{fiber.MethodGet, fiber.MethodPost, fiber.MethodPut, fiber.MethodDelete,
		fiber.MethodPatch, fiber.MethodHead, fiber.MethodOptions} {
		if m == known {
			return known
		}
	}
	return "other"
}

// observe logs and measures each request. Event streams are long-lived; their duration is not a latency.
func observe(logger *slog.Logger, m *httpMetrics) fiber.Handler {
	rw, _ := logger.Handler().(logging.RequestWriter)
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		if err != nil {
			// Render now so the status below is the one the client gets.
			if herr := c.App().ErrorHandler(c, err); herr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}
		status := c.Response().StatusCode()
		route := c.Route().Path
		if status == fiber.StatusNotFound && route == "/" && c.Path() != "/" {
			route = "unmatched"
		}
		method := methodLabel(c.Method())
		elapsed := time.Since(start)
		requests, duration := m.children(method, route, status)
		requests.Inc()
		duration.Observe(elapsed.Seconds())
		level := requestLogLevel(route, status)
		if ctx := c.UserContext(); logger.Enabled(ctx, level) {
			// The path without its query: a query can carry a secret (hub.verify_token). The line is
			// written by the process's handler directly where it can (a line per request, that was a
			// few percent of the webhook path's CPU), else as a typed record without the caller's
			// program counter (no source is logged).
			line := logging.Request{ID: RequestID(c), Method: method, Path: c.Path(), Route: route, Status: status, Duration: elapsed, IP: c.IP()}
			now := time.Now()
			if rw == nil || !rw.WriteRequest(now, level, "request", &line) {
				r := slog.NewRecord(now, level, "request", 0)
				attrs := line.Attrs()
				r.AddAttrs(attrs[:]...)
				_ = logger.Handler().Handle(ctx, r)
			}
		}
		return nil
	}
}

// requestLogLevel: every request is an info line, so an operator at the default level sees the
// traffic; 5xx are warnings. Probes and scrapes come every few seconds from every load balancer and
// Prometheus and say nothing new, so they are debug, failing or not: a Redis outage is logged once
// by the health watcher, not once per /readyz.
func requestLogLevel(route string, status int) slog.Level {
	switch {
	case route == "/healthz" || route == "/readyz" || route == "/metrics":
		return slog.LevelDebug
	case status >= 500:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// routeKey is how a path is matched against RouteBodyLimits: as fiber routes it, case and a
// trailing slash aside.
func routeKey(path string) string {
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	return strings.ToLower(path)
}

// readLimit is how much of a body fasthttp reads before giving up on the connection: twice the
// configured limit (see NewApp), or fiber's default when none is set.
func readLimit(limit int) int {
	if limit <= 0 {
		return 0
	}
	return 2 * limit
}
