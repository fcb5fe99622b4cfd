package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/integrations"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/medialink"
	"github.com/chatgate/chatgate/internal/openapi"
	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/redisx"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/media"
	"github.com/chatgate/chatgate/outbound"
	"github.com/chatgate/chatgate/outbound/webchat"
	whatsappapi "github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/reports"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/web"
	"github.com/chatgate/chatgate/webhooks"
	webchathook "github.com/chatgate/chatgate/webhooks/webchat"
	"github.com/chatgate/chatgate/webhooks/whatsapp"
	"github.com/chatgate/chatgate/widget"
)

// wire builds the domain packages on the shared Redis client and mounts their routes. In worker mode
// only the workers and the operations endpoints are wired.
func (g *gateway) wire() error {
	cfg := &g.cfg
	logger := g.logger
	// The contact center's shape, built once and shared by routing, presence and outbound.
	topo := topology.New(cfg)
	presenceStore := presence.NewStore(g.store.Client, g.keys, topo, presence.Options{
		Clock: g.clock, Logger: logger, Registerer: g.registry, HistoryRetention: cfg.Presence.HistoryRetention,
	})
	events := routing.NewStreamLog(g.store.Client, g.keys, cfg.Events.MaxLen)
	// Every agent event passes through the wallboard, which tells the supervisors' stream.
	board := routing.NewWallboard(g.store.Client, events, presenceStore, cfg.Events.MaxLen, time.Second, logger)
	// The reports' zone decides the day of the daily aggregates routing writes.
	loc, err := time.LoadLocation(cfg.Reports.Timezone)
	if err != nil {
		return err
	}
	router := routing.NewRouter(g.store.Client, g.keys, topo, routing.Options{
		Clock: g.clock, Logger: logger, Registerer: g.registry, Publisher: board, Pauser: presenceStore,
		ReportRetention: cfg.Reports.DetailRetention, ReportSummaryRetention: cfg.Reports.SummaryRetention, ReportLocation: loc,
		Retention: routing.RetentionOptions{ClosedConversations: cfg.Retention.ClosedConversations, IdleClose: cfg.Retention.IdleCloseAfter()},
	})
	board.SetRouter(router)
	router.SetSupervisorPublisher(board)
	presenceStore.AddListener(router)
	presenceStore.AddListener(routing.PresenceEvents{Publisher: board})
	integ, err := g.wireIntegrations(router, presenceStore)
	if err != nil {
		return err
	}
	// One sequencer per process: the service enqueues through it, the workers are gated by it.
	sends := outbound.NewSequencer(g.store.Client, g.keys, g.enqueuer, router, logger)
	if err := g.wireOutboundWorker(router, sends); err != nil {
		return err
	}
	webchatSender := g.wireWebChatWorker(router)
	// Components shut down in reverse order: sweepers, then workers, then the router they use.
	g.components = append(g.components, router)
	g.wireResetWatcher(router)
	if g.mode != modeHTTPOnly {
		g.components = append(g.components, g.tasks)
	}
	if g.mode == modeWorker {
		return nil
	}
	streams := routing.NewStreams(events, routing.StreamsOptions{Logger: logger, KeepAlive: cfg.Events.KeepAlive,
		Heartbeat: presenceStore, Known: presenceStore.Known})
	g.beforeDrain = append(g.beforeDrain, streams.Shutdown)
	g.components = append(g.components,
		streams,
		presence.NewReaper(presenceStore, cfg.Presence.ReaperInterval, cfg.Presence.DisconnectGrace),
		routing.NewSweeper(router, time.Second, 30*time.Second),
		board,
	)

	hooks := webhooks.NewMetrics(g.registry)
	g.webhookMetrics = hooks
	webhooks.NewHandler("whatsapp", whatsapp.New(cfg.WhatsApp.AppSecret, cfg.WhatsApp.PreviousAppSecret, cfg.WhatsApp.VerifyToken),
		router, logger, hooks).Register(g.app)

	// Before the /v1 group: a signed media link carries no Bearer token.
	receipts, err := g.wireMedia(router)
	if err != nil {
		return err
	}
	v1 := g.app.Group("/v1", g.verifier.Middleware())
	presence.NewHandler(presenceStore, topo).Register(v1)
	routing.NewHandler(router).Register(v1)
	reports.NewHandler(reports.New(g.store.Client, g.keys, topo, reports.Options{Clock: g.clock, Location: loc,
		DetailRetention: cfg.Reports.DetailRetention})).Register(v1)
	outboundSvc := outbound.NewService(router, sends, topo, outbound.ServiceOptions{Templates: cfg.WhatsApp.Templates,
		Tasks:    outbound.TaskOptions{MaxRetry: cfg.Outbound.MaxRetry, Timeout: cfg.Outbound.SendTimeout},
		Uploader: g.whatsapp, Tokens: g.numberTokens()}, logger)
	outboundHandler := outbound.NewHandler(outboundSvc, g.store.Client, g.keys)
	outboundHandler.SetReceipts(receipts)
	outboundHandler.Register(v1)
	router.SetAutoReplier(outboundSvc)
	g.wireWebChat(v1, router, outboundSvc, webchatSender, receipts)
	v1.Get("/agents/:id/events", g.streamGate.Handler(), streams.Handler())
	board.Register(v1, streams, g.streamGate.Handler())

	// The embedded pages: the agent console, the operations view and their endpoints.
	web.Register(g.app, web.Options{Config: cfg, Verifier: g.verifier, Redis: g.store.Client,
		Queues: append(slices.Collect(maps.Keys(tasks.Weights)), integ.Queues()...)})
	integ.Register(g.app.Group("/v1/ops", g.verifier.Middleware(), auth.Require(auth.RoleAdmin)))
	// The description of all the above, for integrators' client generators.
	return openapi.Register(g.app)
}

// wireIntegrations builds the event subscriptions: the dispatcher and sweeper run in every process
// (one dispatches at a time), the delivery workers wherever asynq workers run.
func (g *gateway) wireIntegrations(router *routing.Router, presenceStore *presence.Store) (*integrations.Service, error) {
	cfg := &g.cfg
	links, err := g.mediaLinks()
	if err != nil {
		return nil, err
	}
	integ, err := integrations.New(g.store.Client, g.keys, router, cfg.Integrations, integrations.Options{
		Clock: g.clock, Logger: g.logger, Registerer: g.registry, MediaLinks: links, NoWorkers: g.mode == modeHTTPOnly,
	})
	if err != nil {
		return nil, err
	}
	g.components = append(g.components, integ)
	return integ, nil
}

// wireResetWatcher makes every process notice that Redis came back empty, restored or failed over
// (within a second) and rebuild what it derives from configuration and presence: capacities,
// candidate sets and the offers they allow; and puts back to pending the tasks a restore left active
// without a lease. The orphan pass also runs on its own every orphanCheck.
func (g *gateway) wireResetWatcher(router *routing.Router) {
	const orphanCheck = 10 * time.Second
	// Longer than a send can run, so a worker still holding a task from before the loss is done.
	grace := max(30*time.Second, 2*g.cfg.Outbound.SendTimeout)
	orphans := tasks.NewOrphans(g.store.Client, g.logger, grace, orphanCheck)
	g.resets = redisx.NewResetWatcher(g.store.Client, redisx.MarkerKey(g.keys), g.logger.With("component", "redis"), time.Second,
		redisx.Rebuild{Name: "capacities and candidates", Run: router.SyncCapacity},
		redisx.Rebuild{Name: "orphaned tasks", Run: func(ctx context.Context) error { _, err := orphans.Pass(ctx); return err }})
	g.components = append(g.components, g.resets, orphans)
}

// wireOutboundWorker mounts the WhatsApp send workers: every process runs them (serve and worker).
func (g *gateway) wireOutboundWorker(router *routing.Router, sends *ordered.Sequencer) error {
	cfg := &g.cfg
	timeout := cfg.Outbound.SendTimeout
	if timeout <= 0 {
		timeout = whatsappapi.DefaultTimeout
	}
	// Sends on the client's own transport (fasthttp unless a proxy is configured), bounded by the
	// send timeout.
	client, err := whatsappapi.New(whatsappapi.Config{BaseURL: cfg.WhatsApp.APIBaseURL, APIVersion: cfg.WhatsApp.APIVersion,
		Timeout: timeout, Logger: g.logger})
	if err != nil {
		return err
	}
	// Uploads, downloads and receipts share the API's settings, on net/http, without the sends'
	// short timeout (a 100 MB file takes longer than a message).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = max(64, cfg.Outbound.Concurrency)
	g.whatsapp, err = whatsappapi.New(whatsappapi.Config{BaseURL: cfg.WhatsApp.APIBaseURL, APIVersion: cfg.WhatsApp.APIVersion,
		HTTPClient: &http.Client{Timeout: 5 * time.Minute, Transport: transport}, Logger: g.logger})
	if err != nil {
		return err
	}
	rates, tokens := map[string]int{}, map[string]string{}
	for _, n := range cfg.WhatsApp.Numbers {
		rates[n.PhoneNumberID] = n.RatePerSecond
		tokens[n.PhoneNumberID] = n.AccessToken
	}
	limits := outbound.NewLimits(g.store.Client, g.keys, rates, cfg.Outbound.RecipientInterval)
	outbound.NewWorker(router, client, limits, outbound.WorkerOptions{Tokens: tokens, Sequencer: sends, Logger: g.logger, Registerer: g.registry}).Register(g.tasks)
	return nil
}

// ---- WebChat ------------------------------------------------------------------------------------

// wireWebChatWorker builds the WebChat reply sender, registers its callback worker (every process
// runs workers) and tells visitors when their conversation closes.
func (g *gateway) wireWebChatWorker(router *routing.Router) *webchat.Sender {
	cfg := &g.cfg
	events := widget.NewEventLog(g.store.Client, g.keys, cfg.Events.MaxLen, cfg.WebChat.VisitorTokenTTL+24*time.Hour)
	sender := webchat.NewSender(events, router, g.enqueuer, cfg, webchat.SenderOptions{Logger: g.logger,
		MaxRetry: cfg.Outbound.MaxRetry, Timeout: cfg.Outbound.SendTimeout})
	sender.Register(g.tasks)
	router.AddConversationListener(sender)
	g.webchatEvents = events
	return sender
}

// wireWebChat mounts the signed webhook, the widget and its visitor endpoints and the agents' typing
// notice, and plugs the sender into replies.
func (g *gateway) wireWebChat(v1 fiber.Router, router *routing.Router, replies *outbound.Service, sender *webchat.Sender, receipts *outbound.Receipts) {
	cfg := &g.cfg
	provider := webchathook.New(cfg.WebChat.Sites, webchathook.Options{Tolerance: cfg.WebChat.TimestampTolerance,
		MaxMessageLength: cfg.WebChat.MaxMessageLength, MaxAttachments: cfg.WebChat.MaxAttachments, Clock: g.clock})
	webhooks.NewHandler("webchat", provider, router, g.logger, g.webhookMetrics).Register(g.app)
	// Before the widget's routes, so a visitor's stream takes its slot first.
	g.app.Use("/webchat/v1/events", g.streamGate.Handler())
	visitors := widget.NewHandler(g.store.Client, g.keys, cfg, widget.Options{Intake: router, Statuses: router,
		Events: g.webchatEvents, Messages: provider, Logger: g.logger, KeepAlive: cfg.Events.KeepAlive,
		Tokens: widget.NewTokens(cfg.Auth.JWTSecret, cfg.Auth.PreviousJWTSecret, cfg.WebChat.VisitorTokenTTL, g.clock.Now)})
	visitors.Register(g.app)
	g.beforeDrain = append(g.beforeDrain, visitors.Shutdown)
	g.components = append(g.components, visitors)
	typing := widget.NewTypingHandler(router, g.webchatEvents)
	typing.SetWhatsApp(receipts.Typing)
	typing.Register(v1)
	replies.SetSender(webchathook.Channel, sender)
}

// ---- Media --------------------------------------------------------------------------------------

// numberTokens maps each WhatsApp number to its access token.
func (g *gateway) numberTokens() map[string]string {
	tokens := map[string]string{}
	for _, n := range g.cfg.WhatsApp.Numbers {
		tokens[n.PhoneNumberID] = n.AccessToken
	}
	return tokens
}

// wireMedia mounts GET /v1/messages/{id}/media (on the app: it takes a Bearer token or a signed
// link) and builds the read receipts and typing sender.
func (g *gateway) wireMedia(router *routing.Router) (*outbound.Receipts, error) {
	cfg := &g.cfg
	cache, err := media.OpenCache(cfg.Media.CacheDir, cfg.Media.CacheMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("media.cache_dir: %w", err)
	}
	links, err := g.mediaLinks()
	if err != nil {
		return nil, err
	}
	media.NewHandler(media.Options{Store: router, Provider: g.whatsapp, Tokens: g.numberTokens(), Cache: cache,
		Links: links, Verifier: g.verifier, Logger: g.logger}).Register(g.app)
	return outbound.NewReceipts(router, g.store.Client, g.keys, g.whatsapp, g.numberTokens(), g.logger), nil
}

// mediaLinks is the signer of media links: media.link_key, or in development a key made for this
// process (its links work on it only, until it restarts).
func (g *gateway) mediaLinks() (*medialink.Signer, error) {
	if g.links != nil {
		return g.links, nil
	}
	key := []byte(g.cfg.Media.LinkKey)
	if len(key) == 0 && g.cfg.Development() {
		g.logger.Warn("media.link_key is not set: signed media links are signed with a key made for this process; they fail on other replicas and after a restart")
		key = medialink.RandomKey()
	}
	s, err := medialink.New(key, g.clock.Now)
	if err != nil {
		return nil, fmt.Errorf("media.link_key: %w", err)
	}
	g.links = s
	return g.links, nil
}
