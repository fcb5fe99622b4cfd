// Package widget is WebChat's built-in widget, for sites without their own chat front end: the
// embedded script, the visitor endpoints under /webchat/v1/ (sessions, messages, a resumable event
// stream), the visitors' event log the reply sender (outbound/webchat) writes to, and the agents'
// typing notice. Visitors' messages take the site protocol's form and limits (webhooks/webchat).
package widget

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/logging"
	"github.com/chatgate/chatgate/internal/sse"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/webhooks"
	"github.com/chatgate/chatgate/webhooks/webchat"
)

//go:embed assets/widget.js
var widgetJS []byte

//go:embed assets/widget.css
var widgetCSS []byte

//go:embed assets/demo.html
var demoHTML []byte

//go:embed assets/demo.css
var demoCSS []byte

// demoPolicy lets the demo page run nothing but the gateway's own script and styles and talk to the
// gateway alone; injected markup stays inert, as on /console/ and /ops/.
const demoPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// HTTP errors of the visitor endpoints.
var (
	errUnknownSite      = httpx.ErrUnknownSite
	errOriginNotAllowed = httpx.ErrOriginNotAllowed
	errInvalidToken     = httpx.ErrInvalidVisitorToken
	errRateLimited      = httpx.ErrRateLimited
	errBadEventID       = httpx.ErrInvalidEventID
	errTooManyStreams   = httpx.ErrTooManyVisitorStreams.WithRetryAfter(5)
)

// Intake is what the widget needs of routing.
type Intake interface {
	Deliver(ctx context.Context, msgs []routing.Inbound) (routing.DeliverResult, error)
}

// StatusUpdater records message statuses (routing.Router satisfies it).
type StatusUpdater interface {
	UpdateStatus(ctx context.Context, messageID string, u routing.StatusUpdate) (routing.Message, bool, error)
}

// Options are the widget's collaborators and limits.
type Options struct {
	Intake    Intake
	Statuses  StatusUpdater
	Events    *EventLog
	Tokens    *Tokens
	Messages  *webchat.Provider // the same message limits and normal form as the signed webhook
	Logger    *slog.Logger
	KeepAlive time.Duration
}

// Handler serves the widget and the visitor endpoints.
type Handler struct {
	cfg     *configs.Config
	opts    Options
	keys    keys
	sites   map[string]configs.Site
	origins map[string]bool // every site's allowed origins
	limiter *redis_rate.Limiter
	hub     *sse.Hub
	// refusals paces the log lines of refused origins.
	refusals *logging.Throttle
}

// NewHandler builds the widget on the shared Redis client.
func NewHandler(client redis.UniversalClient, ks keyspace.Space, cfg *configs.Config, o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "webchat")
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	h := &Handler{cfg: cfg, opts: o, keys: keys{ks}, sites: map[string]configs.Site{}, origins: map[string]bool{},
		limiter: redis_rate.NewLimiter(client), hub: sse.NewHub(o.Events.sseLog(), sse.HubOptions{Logger: o.Logger, KeepAlive: o.KeepAlive, MaxPerSubscriber: maxStreamsPerVisitor}),
		refusals: logging.NewThrottle(time.Minute, 64)}
	for _, s := range cfg.WebChat.Sites {
		if extra := listenOrigins(cfg.Env, cfg.Listen, s); len(extra) > 0 {
			o.Logger.Info("development: the site also allows the origins of the listen address", "site", s.ID, "added", extra)
			s.AllowedOrigins = append(append([]string(nil), s.AllowedOrigins...), extra...)
		}
		h.sites[s.ID] = s
		for _, origin := range s.AllowedOrigins {
			h.origins[strings.TrimRight(origin, "/")] = true
		}
	}
	return h
}

// refused logs an origin turned away (site "" when no site allows it), at most once a minute per
// origin and site and for a bounded number of them, so made-up origins cannot flood the log.
func (h *Handler) refused(c *fiber.Ctx, origin, site string) {
	if len(origin) > maxLoggedOrigin {
		origin = origin[:maxLoggedOrigin] + "…"
	}
	ok, held := h.refusals.Allow(site + " " + origin)
	if !ok {
		return
	}
	attrs := []any{"origin", origin, "site", site, "path", c.Path(), "ip", c.IP()}
	if held > 0 {
		attrs = append(attrs, "repeated", held)
	}
	h.opts.Logger.Warn("origin refused", attrs...)
}

// maxLoggedOrigin bounds how much of a refused Origin header a log line quotes.
const maxLoggedOrigin = 200

// Start subscribes the process to the visitors' announcements.
func (h *Handler) Start() error { return h.hub.Start() }

// Shutdown ends every open visitor stream (widgets resume elsewhere with Last-Event-ID).
func (h *Handler) Shutdown() { h.hub.Shutdown() }

// OpenStreams reports how many visitor streams this process holds.
func (h *Handler) OpenStreams() int { return h.hub.Open() }

// maxStreamsPerVisitor bounds one visitor's open streams in a process (tabs, reconnect storms).
const maxStreamsPerVisitor = 8

// Register mounts the widget's routes. The demo page is not served in production.
func (h *Handler) Register(app fiber.Router) {
	asset := func(path, contentType, cache string, body []byte) {
		app.Get(path, func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, contentType)
			c.Set(fiber.HeaderCacheControl, cache)
			c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
			return c.Send(body)
		})
	}
	asset("/webchat/widget.js", "text/javascript; charset=utf-8", "public, max-age=300", widgetJS)
	asset("/webchat/widget.css", "text/css; charset=utf-8", "public, max-age=300", widgetCSS)
	if h.cfg.Env != "production" {
		asset("/webchat/demo.css", "text/css; charset=utf-8", "no-cache", demoCSS)
		app.Get("/webchat/demo", func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
			c.Set(fiber.HeaderContentSecurityPolicy, demoPolicy)
			c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
			c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
			c.Set(fiber.HeaderCacheControl, "no-cache")
			return c.Send(demoHTML)
		})
	}
	v1 := app.Group("/webchat/v1", h.originGate, cors.New(cors.Config{
		AllowOriginsFunc: func(origin string) bool { return h.origins[origin] },
		AllowMethods:     "GET,POST,OPTIONS",
		AllowHeaders:     "Authorization, Content-Type, Last-Event-ID",
		MaxAge:           600,
	}))
	v1.Post("/sessions", h.startSession)
	v1.Post("/messages", h.sendMessage)
	v1.Get("/events", h.events)
}

// originGate refuses a browser origin no site allows, preflight included, before anything runs.
// A request without Origin is not a cross-origin browser request and goes on to the token checks.
func (h *Handler) originGate(c *fiber.Ctx) error {
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !h.origins[origin] {
		h.refused(c, origin, "")
		return errOriginNotAllowed
	}
	return c.Next()
}

// siteOrigin checks the request's origin against the one site it acts for.
func (h *Handler) siteOrigin(c *fiber.Ctx, site configs.Site) error {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return nil
	}
	for _, o := range site.AllowedOrigins {
		if strings.TrimRight(o, "/") == origin {
			return nil
		}
	}
	// The CORS middleware admitted the origin for some site; not for this one.
	c.Response().Header.Del(fiber.HeaderAccessControlAllowOrigin)
	h.refused(c, origin, site.ID)
	return errOriginNotAllowed
}

// allow spends one request of who's budget of kind; over it is a 429 with Retry-After.
func (h *Handler) allow(ctx context.Context, kind, who string, perMinute int) error {
	if perMinute <= 0 {
		return nil
	}
	res, err := h.limiter.Allow(ctx, h.keys.rate(kind, who), redis_rate.PerMinute(perMinute))
	if err != nil {
		return err
	}
	if res.Allowed > 0 {
		return nil
	}
	e := *errRateLimited
	e.RetryAfter = int(math.Ceil(res.RetryAfter.Seconds()))
	if e.RetryAfter < 1 {
		e.RetryAfter = 1
	}
	return &e
}

type sessionRequest struct {
	Site string `json:"site" validate:"required,max=64"`
	// Resume is the visitor's previous token (valid, or expired within ResumeWindow): the new
	// session keeps its visitor id, so the conversation and its stream carry on.
	Resume string `json:"resume" validate:"max=4096"`
	Name   string `json:"name" validate:"max=200"`
	Email  string `json:"email" validate:"omitempty,max=254,email"`
}

type sessionResponse struct {
	Token     string    `json:"token"`
	Site      string    `json:"site"`
	VisitorID string    `json:"visitor_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// startSession is POST /webchat/v1/sessions: a new visitor of the site (or the resumed one) and its
// token. Nothing is stored until the visitor writes.
func (h *Handler) startSession(c *fiber.Ctx) error {
	ctx := c.UserContext()
	if err := h.allow(ctx, "ip", c.IP(), h.cfg.WebChat.IPRate); err != nil {
		return err
	}
	var req sessionRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		return err
	}
	site, ok := h.sites[req.Site]
	if !ok {
		return errUnknownSite
	}
	if err := h.siteOrigin(c, site); err != nil {
		return err
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	visitor := "w-" + hex.EncodeToString(b)
	if req.Resume != "" {
		prev, err := h.opts.Tokens.Resume(req.Resume)
		if err != nil || prev.Site != site.ID {
			return errInvalidToken.Wrap(err)
		}
		visitor = prev.Subject
		if req.Name == "" {
			req.Name = prev.Name
		}
		if req.Email == "" {
			req.Email = prev.Email
		}
	}
	token, exp, err := h.opts.Tokens.Mint(site.ID, visitor, req.Name, req.Email)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(sessionResponse{Token: token, Site: site.ID, VisitorID: visitor, ExpiresAt: exp.UTC()})
}

// visitorOf verifies the visitor token (Authorization: Bearer, or ?token= for EventSource, which
// cannot set headers) and the origin against its site.
func (h *Handler) visitorOf(c *fiber.Ctx) (configs.Site, VisitorClaims, error) {
	token, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok {
		token = c.Query("token")
	}
	if token == "" {
		return configs.Site{}, VisitorClaims{}, errInvalidToken
	}
	claims, err := h.opts.Tokens.Verify(token)
	if err != nil {
		return configs.Site{}, VisitorClaims{}, errInvalidToken.Wrap(err)
	}
	site, ok := h.sites[claims.Site]
	if !ok {
		return configs.Site{}, VisitorClaims{}, errInvalidToken.Wrap(errors.New("the token's site is no longer configured"))
	}
	return site, claims, h.siteOrigin(c, site)
}

type messageRequest struct {
	ID          string               `json:"id"`
	Text        string               `json:"text"`
	PageURL     string               `json:"page_url"`
	Attachments []webchat.Attachment `json:"attachments"`
}

type messageResponse struct {
	MessageID string `json:"message_id"`
	Status    string `json:"status"` // recorded | duplicate
}

// sendMessage is POST /webchat/v1/messages: the visitor's message, recorded and routed like a
// signed webhook's before the 202; a retried id is recognised and records nothing new.
func (h *Handler) sendMessage(c *fiber.Ctx) error {
	ctx := c.UserContext()
	site, visitor, err := h.visitorOf(c)
	if err != nil {
		return err
	}
	if err := h.allow(ctx, "ip", c.IP(), h.cfg.WebChat.IPRate); err != nil {
		return err
	}
	if err := h.allow(ctx, "visitor", site.ID+":"+visitor.Subject, h.cfg.WebChat.VisitorRate); err != nil {
		return err
	}
	var req messageRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		return err
	}
	if req.ID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		req.ID = "wm-" + hex.EncodeToString(b)
	}
	m, err := h.opts.Messages.Normalize(webchat.WayWidget, webchat.Body{Site: site.ID,
		Visitor: webchat.Visitor{ID: visitor.Subject, Name: visitor.Name, Email: visitor.Email},
		Message: webchat.Content{ID: req.ID, Text: req.Text, PageURL: req.PageURL, Attachments: req.Attachments}})
	var rejection *webhooks.Rejection
	if errors.As(err, &rejection) {
		return webhooks.RejectionError(rejection)
	} else if err != nil {
		return err
	}
	res, err := h.opts.Intake.Deliver(ctx, []routing.Inbound{m.Inbound()})
	if err != nil {
		return err
	}
	if res.Recorded == 0 {
		return c.Status(http.StatusOK).JSON(messageResponse{MessageID: req.ID, Status: "duplicate"})
	}
	var attachments json.RawMessage
	if len(m.Attachments) > 0 {
		attachments, _ = json.Marshal(m.Attachments)
	}
	// The visitor's own message goes to its stream too, so every open tab and a reloaded page show
	// the whole conversation from the stream alone.
	if _, err := h.opts.Events.Publish(ctx, site.ID, visitor.Subject, Event{Type: EventMessage, At: m.At, Message: &VisitorMessage{
		ID: req.ID, From: "visitor", Kind: m.Kind, Text: m.Text, Attachments: attachments, At: m.At}}); err != nil {
		h.opts.Logger.Warn("visitor message recorded but not echoed to its stream", "site", site.ID, "err", err)
	}
	return c.Status(http.StatusAccepted).JSON(messageResponse{MessageID: req.ID, Status: "recorded"})
}

// events is GET /webchat/v1/events: the visitor's Server-Sent Events. A new stream starts with the
// events kept so far (the conversation so far); Last-Event-ID (or ?last_event_id=) resumes after
// that event, on any replica.
func (h *Handler) events(c *fiber.Ctx) error {
	site, visitor, err := h.visitorOf(c)
	if err != nil {
		return err
	}
	last, ok := sse.LastEventID(c)
	if !ok {
		return errBadEventID
	}
	var header string
	if origin := c.Get(fiber.HeaderOrigin); origin != "" {
		// originGate and siteOrigin admitted it: it is one of the site's allowed origins.
		header = "Access-Control-Allow-Origin: " + origin + "\r\nVary: Origin\r\n"
	}
	err = h.hub.Serve(c, sse.Stream{Subscriber: subscriber(site.ID, visitor.Subject), Key: h.keys.events(site.ID, visitor.Subject),
		Last: last, ReplayAll: true, Header: header, Sent: h.delivered})
	if errors.Is(err, sse.ErrSubscriberFull) {
		return errTooManyStreams
	}
	return err
}

// delivered marks an agent's reply delivered once it has been written to an open widget stream.
// Repeats (another tab, a resumed stream) change nothing: routing's status order ignores them.
func (h *Handler) delivered(ev sse.Event) {
	if h.opts.Statuses == nil || ev.Type != EventMessage || !strings.Contains(ev.Data, `"from":"agent"`) {
		return
	}
	var e Event
	if json.Unmarshal([]byte(ev.Data), &e) != nil || e.Message == nil || e.Message.From != "agent" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, err := h.opts.Statuses.UpdateStatus(ctx, e.Message.ID, routing.StatusUpdate{State: routing.MessageDelivered}); err != nil && !errors.Is(err, routing.ErrNotFound) {
		h.opts.Logger.Warn("could not mark a reply delivered", "message_id", e.Message.ID, "err", err)
	}
}
