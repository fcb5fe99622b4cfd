package web

import (
	"net"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
)

// devTokenTTL is short: a development token is for one sitting at the console.
const devTokenTTL = 8 * time.Hour

var (
	errUnknownAgent = httpx.ErrAgentNotFound.WithMessage("no such agent in the configuration")
	errAgentOnly    = httpx.ErrDevAgentOnly
	errLoopbackOnly = httpx.ErrDevLoopbackOnly
)

// devTokenRequest asks for an agent token for a configured agent.
type devTokenRequest struct {
	Agent string `json:"agent" validate:"required,max=64,safeid"`
	Role  string `json:"role" validate:"omitempty,max=16"`
}

// proxyHeaders mark a request that came through a proxy: a proxy on this host would otherwise make
// every client look local.
var proxyHeaders = []string{fiber.HeaderXForwardedFor, "X-Real-IP", "Forwarded", fiber.HeaderXForwardedHost}

// loopbackOnly lets through requests whose TCP peer (not a header) is this host, addressed to this
// host by name (a page of another site whose name was rebound to 127.0.0.1 sends its own Host), and
// that no proxy forwarded.
func loopbackOnly(c *fiber.Ctx) error {
	if !c.Context().RemoteIP().IsLoopback() || !loopbackHost(c.Hostname()) {
		return errLoopbackOnly
	}
	for _, h := range proxyHeaders {
		if c.Get(h) != "" {
			return errLoopbackOnly
		}
	}
	return c.Next()
}

// loopbackHost reports whether host (without its port) names this host: localhost or a loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// registerDevSignIn adds the sign-in picker's endpoints, only with an explicit env: development: anyone
// who can reach them gets a token, so they mint agent tokens only, for configured agents, to clients on
// this host. Otherwise they do not exist (404 route_not_found like any unknown path) and tokens come
// from the integrator's identity provider or `chatgate token`.
func registerDevSignIn(app *fiber.App, cfg *configs.Config) {
	if !cfg.Development() {
		return
	}
	type agentEntry struct {
		ID       string   `json:"id"`
		Name     string   `json:"name,omitempty"`
		Channels []string `json:"channels"`
	}
	agents := make([]agentEntry, 0, len(cfg.Agents))
	known := map[string]bool{}
	for _, a := range cfg.Agents {
		e := agentEntry{ID: a.ID, Name: a.Name, Channels: make([]string, 0, len(a.Channels))}
		for ch := range a.Channels {
			e.Channels = append(e.Channels, ch)
		}
		sort.Strings(e.Channels)
		agents = append(agents, e)
		known[a.ID] = true
	}
	app.Get("/console/dev-agents", loopbackOnly, func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"agents": agents})
	})
	app.Post("/console/dev-token", loopbackOnly, func(c *fiber.Ctx) error {
		var req devTokenRequest
		if err := httpx.BindJSON(c, &req); err != nil {
			return err
		}
		if req.Role != "" && req.Role != string(auth.RoleAgent) {
			return errAgentOnly
		}
		if !known[req.Agent] {
			return errUnknownAgent
		}
		role := auth.RoleAgent
		token, err := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, req.Agent, role, devTokenTTL, time.Now())
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"token": token, "agent": req.Agent, "role": role})
	})
}
