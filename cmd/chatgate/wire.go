package main

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/outbound"
	whatsappapi "github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/web"
	"github.com/chatgate/chatgate/webhooks"
	"github.com/chatgate/chatgate/webhooks/whatsapp"
)

// wire builds the domain packages on the shared Redis client and mounts their routes. In worker mode
// only the workers and the operations endpoints are wired.
func (g *gateway) wire() error {
	cfg := &g.cfg
	logger := g.logger
	presenceStore := presence.NewStore(g.store.Client, g.keys, cfg, presence.Options{
		Clock: g.clock, Logger: logger, Registerer: g.registry, HistoryRetention: cfg.Presence.HistoryRetention,
	})
	events := routing.NewStreamLog(g.store.Client, g.keys, cfg.Events.MaxLen)
	router := routing.NewRouter(g.store.Client, g.keys, cfg, routing.Options{
		Clock: g.clock, Logger: logger, Registerer: g.registry, Publisher: events, Pauser: presenceStore,
	})
	presenceStore.AddListener(router)
	presenceStore.AddListener(routing.PresenceEvents{Publisher: events})
	if err := g.wireOutboundWorker(router); err != nil {
		return err
	}
	// Components shut down in reverse order: sweepers, then workers, then the router they use.
	g.components = append(g.components, router, g.tasks)
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
	)

	hooks := webhooks.NewMetrics(g.registry)
	webhooks.NewHandler("whatsapp", whatsapp.New(cfg.WhatsApp.AppSecret, cfg.WhatsApp.PreviousAppSecret, cfg.WhatsApp.VerifyToken),
		router, logger, hooks).Register(g.app)

	v1 := g.app.Group("/v1", g.verifier.Middleware())
	presence.NewHandler(presenceStore, cfg).Register(v1)
	routing.NewHandler(router, cfg).Register(v1)
	outboundSvc := outbound.NewService(router, g.enqueuer, cfg, logger)
	outbound.NewHandler(outboundSvc, g.store.Client, g.keys).Register(v1)
	router.SetAutoReplier(outboundSvc)
	v1.Get("/agents/:id/events", streams.Handler())

	// The embedded pages: the agent console, the operations view and their endpoints.
	web.Register(g.app, web.Options{Config: cfg, Verifier: g.verifier, Redis: g.store.Client, Queues: slices.Collect(maps.Keys(tasks.Weights))})
	return nil
}

// wireOutboundWorker mounts the WhatsApp send workers: every process runs them (serve and worker).
func (g *gateway) wireOutboundWorker(router *routing.Router) error {
	cfg := &g.cfg
	timeout := cfg.Outbound.SendTimeout
	if timeout <= 0 {
		timeout = whatsappapi.DefaultTimeout
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = max(64, cfg.Outbound.Concurrency)
	client, err := whatsappapi.New(whatsappapi.Config{BaseURL: cfg.WhatsApp.APIBaseURL, APIVersion: cfg.WhatsApp.APIVersion,
		HTTPClient: &http.Client{Timeout: timeout, Transport: transport}, Logger: g.logger})
	if err != nil {
		return err
	}
	rates, tokens := map[string]int{}, map[string]string{}
	for _, n := range cfg.WhatsApp.Numbers {
		rates[n.PhoneNumberID] = n.RatePerSecond
		tokens[n.PhoneNumberID] = n.AccessToken
	}
	limits := outbound.NewLimits(g.store.Client, g.keys, rates, cfg.Outbound.RecipientInterval)
	outbound.NewWorker(router, client, limits, outbound.WorkerOptions{Tokens: tokens, Logger: g.logger, Registerer: g.registry}).Register(g.tasks)
	return nil
}
