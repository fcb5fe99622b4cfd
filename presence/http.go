package presence

import (
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/topology"
)

// HTTP errors of presence.
var (
	errAgentNotFound     = httpx.ErrAgentNotFound
	errChannelNotEnabled = httpx.ErrChannelNotEnabled
	errInvalidState      = httpx.ErrInvalidState
	errInvalidReason     = httpx.ErrInvalidReason
	errChannelOffline    = httpx.ErrChannelOffline
	// A supervisor's "online" can only be a resume; on an offline channel that is the issue's
	// "resume on an offline channel" (409), with the same code as a pause there.
	errLoginDenied = httpx.ErrChannelOffline.WithMessage("the channel is offline: only the agent itself may log in; supervisors may resume a paused channel")
	errBadDay      = httpx.ErrInvalidDay
	errBadRange    = httpx.ErrInvalidRange
)

func httpError(err error) error {
	switch {
	case errors.Is(err, ErrUnknownAgent):
		return errAgentNotFound
	case errors.Is(err, ErrChannelNotEnabled):
		return errChannelNotEnabled
	case errors.Is(err, ErrInvalidState):
		return errInvalidState
	case errors.Is(err, ErrReasonRequired), errors.Is(err, ErrUnknownReason):
		return errInvalidReason.Wrap(err)
	case errors.Is(err, ErrChannelOffline):
		return errChannelOffline
	case errors.Is(err, ErrLoginDenied):
		return errLoginDenied
	}
	return err
}

// Handler serves the presence API.
type Handler struct {
	store   *Store
	reasons []configs.PauseReason
}

// NewHandler builds the presence API on a store.
func NewHandler(s *Store, topo *topology.Topology) *Handler {
	return &Handler{store: s, reasons: topo.PauseReasons}
}

// Register mounts the routes on an authenticated /v1 router.
func (h *Handler) Register(v1 fiber.Router) {
	v1.Get("/pause-reasons", h.pauseReasons)
	v1.Get("/agents", auth.Require(auth.RoleSupervisor), h.list)
	v1.Get("/agents/:id/presence", h.get)
	v1.Put("/agents/:id/channels/:channel", h.toggle)
	v1.Post("/agents/:id/heartbeat", h.heartbeat)
	v1.Get("/agents/:id/presence/history", h.history)
	v1.Get("/agents/:id/presence/totals", h.totals)
}

// subject resolves the path's agent and checks it exists.
func (h *Handler) subject(c *fiber.Ctx) (string, error) {
	agent, err := auth.Subject(c, c.Params("id"))
	if err != nil {
		return "", err
	}
	if !h.store.Known(agent) {
		return "", errAgentNotFound
	}
	return agent, nil
}

func (h *Handler) pauseReasons(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"pause_reasons": h.reasons})
}

func (h *Handler) list(c *fiber.Ctx) error {
	all, err := h.store.List(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"agents": all})
}

func (h *Handler) get(c *fiber.Ctx) error {
	agent, err := h.subject(c)
	if err != nil {
		return err
	}
	p, err := h.store.Get(c.UserContext(), agent)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(p)
}

type toggleRequest struct {
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// toggle is PUT /v1/agents/{id}/channels/{channel}: idempotent, 200 with the presence after it and
// the changes it made (none when the channel already was in that state).
func (h *Handler) toggle(c *fiber.Ctx) error {
	agent, err := h.subject(c)
	if err != nil {
		return err
	}
	var req toggleRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		return err
	}
	want := State(req.State)
	if want != Online && want != Offline && want != Paused {
		return errInvalidState
	}
	by := auth.Caller(c).Agent
	res, err := h.store.Set(c.UserContext(), agent, c.Params("channel"), want, req.Reason, by, CauseToggle)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(res)
}

func (h *Handler) heartbeat(c *fiber.Ctx) error {
	agent, err := h.subject(c)
	if err != nil {
		return err
	}
	if err := h.store.Heartbeat(c.UserContext(), agent); err != nil {
		return httpError(err)
	}
	return c.SendStatus(http.StatusNoContent)
}

// history is GET …/presence/history?from=&to= (RFC 3339; default the last 24 hours).
func (h *Handler) history(c *fiber.Ctx) error {
	agent, err := h.subject(c)
	if err != nil {
		return err
	}
	to := h.store.clock.Now()
	from := to.Add(-24 * time.Hour)
	if v := c.Query("from"); v != "" {
		if from, err = time.Parse(time.RFC3339, v); err != nil {
			return errBadRange
		}
	}
	if v := c.Query("to"); v != "" {
		if to, err = time.Parse(time.RFC3339, v); err != nil {
			return errBadRange
		}
	}
	if to.Before(from) {
		return errBadRange
	}
	changes, err := h.store.History(c.UserContext(), agent, from, to)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(fiber.Map{"agent": agent, "changes": changes})
}

// totals is GET …/presence/totals?day=YYYY-MM-DD (default today, UTC).
func (h *Handler) totals(c *fiber.Ctx) error {
	agent, err := h.subject(c)
	if err != nil {
		return err
	}
	day := h.store.clock.Now().UTC()
	if v := c.Query("day"); v != "" {
		if day, err = time.Parse("2006-01-02", v); err != nil {
			return errBadDay
		}
	}
	t, err := h.store.Totals(c.UserContext(), agent, day)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(t)
}
