package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/medialink"
	"github.com/chatgate/chatgate/internal/redisx"
	"github.com/chatgate/chatgate/internal/tasks"
	whatsappapi "github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/webhooks"
	"github.com/chatgate/chatgate/widget"
)

type mode int

const (
	modeServe    mode = iota // HTTP API and workers
	modeWorker               // workers, with only the operations endpoints on HTTP
	modeHTTPOnly             // HTTP API without workers (serve --workers=false), workers scaled apart
)

// component is a background part with a lifecycle: started after wiring, shut down in reverse order.
type component interface {
	Start() error
	Shutdown()
}

// gateway is the composition root: config → slog → one Redis client → stores → asynq → fiber.
type gateway struct {
	cfg    configs.Config
	mode   mode
	logger *slog.Logger
	clock  clock.Clock
	store  *redisx.Store
	health *redisx.Health
	// resets notices that Redis lost or replaced its state and rebuilds (wire.go).
	resets   *redisx.ResetWatcher
	registry *prometheus.Registry
	keys     keyspace.Space
	verifier *auth.Verifier
	app      *fiber.App
	tasks    *tasks.Server
	// enqueuer puts tasks on the shared Redis; it owns no connection, so it is never closed.
	enqueuer   *asynq.Client
	components []component
	// beforeDrain runs when shutdown begins, before HTTP drains: long-lived streams end here so
	// that draining does not wait for them.
	beforeDrain []func()
	closing     atomic.Bool

	// WebChat (wire.go): the visitors' event log and the shared webhook metrics.
	webchatEvents  *widget.EventLog
	webhookMetrics *webhooks.Metrics
	// streamGate bounds the event streams of every kind this process holds.
	streamGate *httpx.StreamGate
	// whatsapp is the Cloud API client of uploads, media downloads and receipts (wire.go).
	whatsapp *whatsappapi.Client
	// links signs media links (media.link_key); integrations' events carry them.
	links *medialink.Signer
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, m mode) int {
	fs := newFlagSet("serve", stderr)
	configFile := fs.String("config", "", "configuration file")
	listen := fs.String("listen", "", "address to listen on (overrides listen and CHATGATE_LISTEN)")
	workers := true
	if m == modeServe {
		fs.BoolVar(&workers, "workers", true, "run the asynq workers in this process (false: HTTP only; run `chatgate worker` apart)")
	}
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if !workers {
		m = modeHTTPOnly
	}
	cfg, path, ok := loadConfig(*configFile, stderr)
	if !ok {
		return exitInvalid
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	logger, logs := newLogger(cfg.Log, stderr)
	defer logs.Close()
	logger.Info("configuration loaded", "source", path, "env", cfg.Env, "tenant", cfg.Tenant)
	for _, p := range cfg.Deprecations() {
		logger.Warn("deprecated setting", "setting", p.Path, "problem", p.Message)
	}
	if cfg.Development() && m != modeWorker {
		logger.Warn("DEVELOPMENT MODE: the console's sign-in picker mints agent tokens for anyone on this host, "+
			"and the configuration's development secrets are accepted; never expose this process",
			"endpoints", "/console/dev-agents, /console/dev-token", "env", cfg.Env)
	}

	soft, hard, raised, err := raiseOpenFilesLimit()
	if err != nil {
		logger.Warn("open files limit unknown", "err", err)
	} else {
		logger.Info("open files limit", "soft", soft, "hard", hard, "raised_to_hard", raised)
	}
	g, err := newGateway(ctx, cfg, m, logger)
	if err != nil {
		logger.Error("start failed", "err", err)
		return exitFailure
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		logger.Error("listen failed", "addr", cfg.Listen, "err", err)
		g.close()
		return exitFailure
	}
	if err := g.run(ctx, ln); err != nil {
		logger.Error("stopped with an error", "err", err)
		return exitFailure
	}
	return exitOK
}

// newGateway opens Redis and wires every package; nothing listens yet.
func newGateway(ctx context.Context, cfg configs.Config, m mode, logger *slog.Logger) (*gateway, error) {
	g := &gateway{cfg: cfg, mode: m, logger: logger, clock: clock.Real{}, keys: keyspace.New(cfg.Tenant)}
	store, err := redisx.Open(ctx, cfg.Redis, logger.With("component", "redis"))
	if err != nil {
		return nil, err
	}
	g.store = store
	g.health = redisx.NewHealth(store.Client, logger.With("component", "redis"), 500*time.Millisecond)

	g.registry = prometheus.NewRegistry()
	g.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	agents := make(map[string]bool, len(cfg.Agents))
	for _, a := range cfg.Agents {
		agents[a.ID] = true
	}
	g.verifier = auth.NewVerifier(cfg.Auth.JWTSecret, cfg.Auth.PreviousJWTSecret, cfg.Auth.Issuer).
		WithMaxTTL(cfg.Auth.MaxTokenTTL).WithAgents(func(agent string) bool { return agents[agent] })

	g.app = httpx.NewApp(httpx.Options{
		Logger:      logger.With("component", "http"),
		Registerer:  g.registry,
		Unavailable: redisx.IsUnavailable,
		BodyLimit:   cfg.HTTP.BodyLimit,
		// Meta's notifications are larger than anything else the gateway takes.
		RouteBodyLimits: map[string]int{"/webhooks/whatsapp": cfg.HTTP.WhatsAppBodyLimit},
		// A file reply from the agent's computer: up to Meta's largest document.
		BodyLimitFor:   fileReplyLimit(cfg.Media.UploadLimit),
		HeaderLimit:    cfg.HTTP.HeaderLimit,
		ReadTimeout:    cfg.HTTP.ReadTimeout,
		WriteTimeout:   cfg.HTTP.WriteTimeout,
		IdleTimeout:    cfg.HTTP.IdleTimeout,
		MaxConnections: cfg.HTTP.MaxConnections,
		TrustedProxies: cfg.HTTP.TrustedProxies,
		ProxyHeader:    cfg.HTTP.ProxyHeader,
		Ready:          g.ready,
		ReadyDetail:    g.readyDetail,
	})
	budget := streamBudget(cfg.HTTP.MaxConnections)
	g.streamGate = httpx.NewStreamGate(budget, cfg.HTTP.MaxStreamsPerIP, g.registry)
	if m != modeWorker {
		logger.Info("event streams bounded", "max", budget, "per_ip", cfg.HTTP.MaxStreamsPerIP)
		if soft, err := openFilesLimit(); err == nil && uint64(cfg.HTTP.MaxConnections) > soft {
			logger.Warn("http.max_connections is above the open-files limit: descriptors run out first, and accepting then backs off until some close",
				"max_connections", cfg.HTTP.MaxConnections, "open_files", soft)
		}
	}
	g.app.Get("/metrics", g.verifier.Middleware(), auth.Require(auth.RoleAdmin), httpx.MetricsHandler(g.registry))
	g.tasks = tasks.NewServer(store.Client, logger, tasks.Options{Concurrency: cfg.Outbound.Concurrency, ShutdownTimeout: shutdownBudget(cfg.ShutdownGrace).handBack,
		RetryDelay: tasks.Backoff(cfg.Outbound.RetryBase, cfg.Outbound.RetryMax)})
	g.enqueuer = asynq.NewClientFromRedisClient(store.Client)
	if err := g.wire(); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// streamBudget is how many event streams one process may hold: three quarters of http.max_connections
// and of the open-files limit, whichever is lower, so that streams never take every connection or
// descriptor from requests, Redis and the provider's API.
func streamBudget(maxConnections int) int {
	limit := maxConnections
	if soft, err := openFilesLimit(); err == nil && soft > 0 {
		byFiles := int(min(soft, uint64(1<<30)))
		if limit <= 0 || byFiles < limit {
			limit = byFiles
		}
	}
	if limit <= 0 {
		return 0
	}
	return max(1, limit/4*3)
}

// ready fails while shutting down or while Redis cannot be reached.
func (g *gateway) ready(context.Context) error {
	if g.closing.Load() {
		return errors.New("shutting down")
	}
	return g.health.Err()
}

// readyDetail tells /readyz about the last time Redis lost its state, once it has: when it was
// noticed, why, and when the rebuild finished (or that it is still running).
func (g *gateway) readyDetail() map[string]any {
	if g.resets == nil {
		return nil
	}
	st := g.resets.Status()
	if st.Resets == 0 {
		return nil
	}
	store := map[string]any{"resets": st.Resets, "reason": st.Reason, "store_reset_at": st.ResetAt, "rebuilding": st.Rebuilding}
	if !st.RebuiltAt.IsZero() {
		store["rebuilt_at"] = st.RebuiltAt
	}
	return map[string]any{"store": store}
}

// run serves until ctx ends, then shuts down gracefully within the configured grace.
func (g *gateway) run(ctx context.Context, ln net.Listener) error {
	g.health.Start()
	started := 0
	for _, c := range g.components {
		if err := c.Start(); err != nil {
			g.shutdownComponents(started)
			g.health.Shutdown()
			g.close()
			_ = ln.Close()
			return fmt.Errorf("start: %w", err)
		}
		started++
	}
	serveErr := make(chan error, 1)
	// The wrapped listener retries failed accepts (out of descriptors) instead of ending the server.
	go func() {
		serveErr <- g.app.Listener(httpx.NewListener(ln, g.logger.With("component", "http"), g.cfg.HTTP.MaxConnections))
	}()
	g.logger.Info("chatgate is listening", "addr", ln.Addr().String(), "mode", g.modeName())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	g.shutdown()
	return err
}

// budget splits the shutdown grace: after the shutdown delay, HTTP drains and active tasks finish
// (side by side, since workers stop taking tasks when shutdown begins) until drain; then asynq hands back what is still running
// within handBack (asynq fixes that timeout at construction), and the rest is for closing. So the
// whole shutdown stays within the grace, where HTTP and asynq each having the full grace could take
// twice as long.
type budget struct{ drain, handBack time.Duration }

func shutdownBudget(grace time.Duration) budget {
	tail := min(grace/5, 2*time.Second)
	return budget{drain: grace - tail, handBack: tail / 2}
}

// shutdown: readiness fails and workers take no new tasks → the shutdown delay → HTTP drains → active tasks finish →
// workers stop (handing back the unfinished) → Redis closes, each step logged, all within the grace.
func (g *gateway) shutdown() {
	start := time.Now()
	b := shutdownBudget(g.cfg.ShutdownGrace)
	g.logger.Info("shutting down", "grace", g.cfg.ShutdownGrace)
	g.closing.Store(true)
	if g.mode != modeHTTPOnly {
		g.tasks.Stop()
	}
	if d := g.cfg.ShutdownDelay; d > 0 {
		g.logger.Info("not ready; serving for the shutdown delay before draining", "delay", d)
		time.Sleep(d)
	}
	for _, f := range g.beforeDrain {
		f()
	}
	drainCtx, cancel := context.WithDeadline(context.Background(), start.Add(b.drain))
	defer cancel()
	if err := g.app.ShutdownWithContext(drainCtx); err != nil {
		g.logger.Warn("http did not drain in time", "err", err)
	} else {
		g.logger.Info("http drained")
	}
	if !g.tasks.Wait(drainCtx) {
		g.logger.Warn("tasks still running at the end of the drain; handing them back", "active", g.tasks.Active())
	}
	g.shutdownComponents(len(g.components))
	g.health.Shutdown()
	g.close()
	g.logger.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
}

func (g *gateway) shutdownComponents(n int) {
	for i := n - 1; i >= 0; i-- {
		g.components[i].Shutdown()
	}
	if n > 0 {
		g.logger.Info("background components stopped")
	}
}

func (g *gateway) close() {
	if err := g.store.Close(); err != nil {
		g.logger.Warn("redis close", "err", err)
	} else {
		g.logger.Info("redis closed")
	}
}

func (g *gateway) modeName() string {
	switch g.mode {
	case modeWorker:
		return "worker"
	case modeHTTPOnly:
		return "serve (no workers)"
	}
	return "serve"
}

// fileReplyLimit gives multipart POST /v1/conversations/{id}/messages the upload limit.
func fileReplyLimit(limit int) func(path, contentType string) int {
	return func(path, contentType string) int {
		rest, ok := strings.CutPrefix(path, "/v1/conversations/")
		if !ok || !strings.HasPrefix(contentType, "multipart/form-data") {
			return 0
		}
		id, tail, _ := strings.Cut(rest, "/")
		if id == "" || tail != "messages" {
			return 0
		}
		return limit
	}
}
