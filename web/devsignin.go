package web

import (
	"net/http"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
)

// devTokenTTL is short: a development token is for one sitting at the console.
const devTokenTTL = 8 * time.Hour

var errUnknownAgent = httpx.NewError(http.StatusNotFound, "agent_not_found", "no such agent in the configuration")

// devTokenRequest asks for a token for a configured agent; role admin opens the operations view.
type devTokenRequest struct {
	Agent string `json:"agent" validate:"required,max=64,safeid"`
	Role  string `json:"role" validate:"omitempty,oneof=agent supervisor admin"`
}

// registerDevSignIn adds the sign-in picker's endpoints, in development only: anyone who can reach
// them gets a token, so in production they do not exist (404 route_not_found like any unknown path)
// and tokens come from the integrator's identity provider or `chatgate token`.
func registerDevSignIn(app *fiber.App, cfg *configs.Config) {
	if cfg.Env == "production" {
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
	app.Get("/console/dev-agents", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"agents": agents})
	})
	app.Post("/console/dev-token", func(c *fiber.Ctx) error {
		var req devTokenRequest
		if err := httpx.BindJSON(c, &req); err != nil {
			return err
		}
		role := auth.RoleAgent
		if req.Role != "" {
			role = auth.Role(req.Role)
		}
		// An operator signing in to /ops/ need not be an agent; an agent's token must name one.
		if role != auth.RoleAdmin && !known[req.Agent] {
			return errUnknownAgent
		}
		token, err := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, req.Agent, role, devTokenTTL, time.Now())
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"token": token, "agent": req.Agent, "role": role})
	})
}
