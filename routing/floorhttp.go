package routing

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/presence"
)

// The floor's HTTP routes: transfers, the transfer targets a console offers, and the early end of a
// wrap-up. Closing with a disposition is POST /v1/cards/{id}/close (http.go).
func (h *Handler) registerFloor(v1 fiber.Router) {
	v1.Post("/conversations/:id/transfer", h.transfer)
	v1.Get("/conversations/:id/transfer-targets", h.transferTargets)
	v1.Post("/agents/:id/channels/:channel/wrap-up/end", h.endWrapUp)
}

// closeRequest is the optional body of a close.
type closeRequest struct {
	Disposition string `json:"disposition" validate:"omitempty,max=64,safeid"`
	Note        string `json:"note" validate:"max=2000"`
}

// transferRequest names one target: an agent or a queue.
type transferRequest struct {
	ToAgent string `json:"to_agent" validate:"omitempty,max=64,safeid"`
	ToQueue string `json:"to_queue" validate:"omitempty,max=64,safeid"`
	Note    string `json:"note" validate:"max=2000"`
}

// floorError maps the floor's domain errors to the catalogue; others pass through.
func floorError(err error) error {
	var na *AgentNotAvailableError
	var de *DispositionError
	switch {
	case errors.As(err, &na):
		return httpx.ErrAgentNotAvailable.WithMessage("%s", na.Error()).WithFields(httpx.FieldError{Field: "to_agent", Message: na.Reason})
	case errors.As(err, &de):
		msg := "is required by this queue"
		if de.Reason == "unknown" {
			msg = "is not one of the queue's dispositions"
		}
		return httpx.ErrValidation.WithFields(httpx.FieldError{Field: "disposition", Message: msg})
	case errors.Is(err, ErrUnknownAgent):
		return httpx.ErrValidation.WithFields(httpx.FieldError{Field: "to_agent", Message: "is not a configured agent"})
	case errors.Is(err, ErrUnknownQueue):
		return httpx.ErrValidation.WithFields(httpx.FieldError{Field: "to_queue", Message: "is not a configured queue"})
	case errors.Is(err, ErrQueueChannel):
		return httpx.ErrValidation.WithFields(httpx.FieldError{Field: "to_queue", Message: "does not serve the conversation's channel"})
	case errors.Is(err, ErrNoWrapUp):
		return httpx.ErrNoWrapUp
	}
	return err
}

// transfer is POST /v1/conversations/{id}/transfer: by its holder, or by a supervisor for any open
// conversation. 200 with the conversation after the transfer.
func (h *Handler) transfer(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req transferRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		return err
	}
	if (req.ToAgent == "") == (req.ToQueue == "") {
		return httpx.ErrValidation.WithMessage("name either to_agent or to_queue").WithFields(
			httpx.FieldError{Field: "to_agent", Message: "give exactly one of to_agent and to_queue"})
	}
	caller := auth.Caller(c)
	conv, err := h.router.Transfer(c.UserContext(), id, TransferRequest{ToAgent: req.ToAgent, ToQueue: req.ToQueue, Note: req.Note,
		By: caller.Agent, Supervisor: caller.Role.AtLeast(auth.RoleSupervisor)})
	switch {
	case errors.Is(err, ErrNotFound):
		return errConvNotFound
	case errors.Is(err, ErrNotYours):
		return errNotYourConv
	case errors.Is(err, ErrWrongState):
		return errCardState.WithMessage("only an open conversation whose card you accepted can be transferred")
	case err != nil:
		return floorError(err)
	}
	return c.JSON(conv)
}

// TransferTarget is an agent a conversation may go to, and whether it can take it now (Reason says
// why not, as agent_not_available would).
type TransferTarget struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
}

// TransferQueue is a queue a conversation may go to (it serves the conversation's channel).
type TransferQueue struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// transferTargets is GET /v1/conversations/{id}/transfer-targets: the agents enabled on the
// conversation's channel (but its holder) with their availability, and the queues serving it.
func (h *Handler) transferTargets(c *fiber.Ctx) error {
	conv, err := h.visibleConversation(c)
	if err != nil {
		return err
	}
	agents, err := h.router.TransferTargets(c.UserContext(), conv)
	if err != nil {
		return err
	}
	queues := []TransferQueue{}
	for _, q := range h.router.orderedQueues() {
		if containsChannel(q.Channels, conv.Channel) {
			queues = append(queues, TransferQueue{ID: q.ID, Name: q.Name})
		}
	}
	return c.JSON(fiber.Map{"agents": agents, "queues": queues})
}

// endWrapUp is POST /v1/agents/{id}/channels/{channel}/wrap-up/end ("me" for oneself; a supervisor
// for anyone): the channel takes offers again at once. 204; 409 no_wrap_up when none runs.
func (h *Handler) endWrapUp(c *fiber.Ctx) error {
	agent, err := auth.Subject(c, c.Params("id"))
	if err != nil {
		return err
	}
	if _, ok := h.router.agents[agent]; !ok {
		return errAgentNotFound
	}
	channel := strings.Clone(c.Params("channel"))
	if _, ok := h.router.agents[agent].channels[channel]; !ok {
		return httpx.ErrChannelNotEnabled
	}
	if err := h.router.EndWrapUp(c.UserContext(), agent, channel, auth.Caller(c).Agent); err != nil {
		return floorError(err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// TransferTargets lists the agents enabled on the conversation's channel, but its holder, each with
// whether a transfer to it would be accepted now (the transfer script checks again).
func (r *Router) TransferTargets(ctx context.Context, conv Conversation) ([]TransferTarget, error) {
	ids := make([]string, 0, len(r.agents))
	for id, a := range r.agents {
		if _, ok := a.channels[conv.Channel]; ok && id != conv.Agent {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	pipe := r.client.Pipeline()
	pres := make([]*redis.SliceCmd, len(ids))
	loads := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		pres[i] = pipe.HMGet(ctx, r.keys.presence(id), conv.Channel, conv.Channel+":wrap_up_until")
		loads[i] = pipe.HGet(ctx, r.keys.load(id), conv.Channel)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	now := r.clock.Now().UnixMilli()
	out := make([]TransferTarget, 0, len(ids))
	for i, id := range ids {
		v := pres[i].Val()
		st, _ := v[0].(string)
		wu, _ := v[1].(string)
		until, _ := strconv.ParseInt(wu, 10, 64)
		load, _ := strconv.Atoi(loads[i].Val())
		t := TransferTarget{ID: id}
		if a, ok := r.topo.Agent(id); ok {
			t.Name = a.Name
		}
		switch {
		case st == string(presence.Paused):
			t.Reason = "paused"
		case st != string(presence.Online):
			t.Reason = "offline"
		case until > now:
			t.Reason = "wrap_up"
		case load >= r.agents[id].channels[conv.Channel]:
			t.Reason = "at_capacity"
		default:
			t.Available = true
		}
		out = append(out, t)
	}
	return out, nil
}
