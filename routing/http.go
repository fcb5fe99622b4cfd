package routing

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/presence"
)

// HTTP errors of routing.
var (
	errCardNotFound  = httpx.ErrCardNotFound
	errConvNotFound  = httpx.ErrConversationNotFound
	errNotYours      = httpx.ErrNotYourCard
	errNotYourConv   = httpx.ErrNotYourConversation
	errCardState     = httpx.ErrCardState
	errBadID         = httpx.ErrBadID
	errAgentNotFound = httpx.ErrAgentNotFound
	errBadEventID    = httpx.ErrInvalidLastEvent

	errBadTranscriptFormat = httpx.ErrInvalidTranscriptType
)

func routingError(err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return errCardNotFound
	case errors.Is(err, ErrNotYours):
		return errNotYours
	case errors.Is(err, ErrWrongState):
		return errCardState
	}
	return err
}

// Handler serves the cards, conversations and queues API.
type Handler struct {
	router *Router
}

// NewHandler builds the routing API.
func NewHandler(r *Router) *Handler { return &Handler{router: r} }

// Register mounts the routes on an authenticated /v1 router.
func (h *Handler) Register(v1 fiber.Router) {
	v1.Post("/cards/:id/accept", h.cardAction(h.router.Accept))
	v1.Post("/cards/:id/decline", h.cardAction(h.router.Decline))
	v1.Post("/cards/:id/close", h.close)
	h.registerFloor(v1) // transfer, wrap-up (floorhttp.go)
	v1.Get("/agents/:id/cards", h.cards)
	v1.Get("/conversations/:id", h.conversation)
	v1.Get("/conversations/:id/messages", h.messages)
	v1.Get("/conversations/:id/transcript", h.transcript)
	v1.Get("/queues", h.queuesStatus)
}

// pathID copies a path id after checking it is an id (fiber reuses the buffer it points into).
func pathID(c *fiber.Ctx) (string, error) {
	id := c.Params("id")
	if !configs.SafeID(id) {
		return "", errBadID
	}
	return strings.Clone(id), nil
}

func (h *Handler) cardAction(action func(ctx context.Context, cardID, agent string) (Card, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c)
		if err != nil {
			return err
		}
		card, err := action(c.UserContext(), id, auth.Caller(c).Agent)
		if err != nil {
			return routingError(err)
		}
		return c.JSON(card)
	}
}

func (h *Handler) close(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	caller := auth.Caller(c)
	var req closeRequest
	if len(c.Body()) > 0 { // the body is optional: a close without a disposition
		if err := httpx.BindJSON(c, &req); err != nil {
			return err
		}
	}
	card, err := h.router.CloseWith(c.UserContext(), id, caller.Agent, caller.Role.AtLeast(auth.RoleSupervisor),
		CloseDetails{Disposition: req.Disposition, Note: req.Note})
	if err != nil {
		return floorError(routingError(err))
	}
	return c.JSON(card)
}

func (h *Handler) cards(c *fiber.Ctx) error {
	agent, err := auth.Subject(c, c.Params("id"))
	if err != nil {
		return err
	}
	if _, ok := h.router.agents[agent]; !ok { // a supervisor's made-up id, as presence and streams answer it
		return errAgentNotFound
	}
	cards, err := h.router.Cards(c.UserContext(), agent)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"cards": cards})
}

// visibleConversation lets its agent (or a supervisor) read a conversation.
func (h *Handler) visibleConversation(c *fiber.Ctx) (Conversation, error) {
	id, err := pathID(c)
	if err != nil {
		return Conversation{}, err
	}
	conv, err := h.router.Conversation(c.UserContext(), id)
	if errors.Is(err, ErrNotFound) {
		return Conversation{}, errConvNotFound
	}
	if err != nil {
		return Conversation{}, err
	}
	caller := auth.Caller(c)
	if conv.Agent != caller.Agent && !caller.Role.AtLeast(auth.RoleSupervisor) {
		return Conversation{}, errNotYourConv
	}
	return conv, nil
}

func (h *Handler) conversation(c *fiber.Ctx) error {
	conv, err := h.visibleConversation(c)
	if err != nil {
		return err
	}
	return c.JSON(conv)
}

func (h *Handler) messages(c *fiber.Ctx) error {
	conv, err := h.visibleConversation(c)
	if err != nil {
		return err
	}
	limit := int64(c.QueryInt("limit", 100))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	msgs, err := h.router.Messages(c.UserContext(), conv.ID, limit)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conversation": conv, "messages": msgs})
}

// QueueStatus is a queue's waiting count, oldest wait and candidates per channel.
type QueueStatus struct {
	ID       string          `json:"id"`
	Name     string          `json:"name,omitempty"`
	Strategy string          `json:"strategy"`
	Channels []ChannelStatus `json:"channels"`
	// floor: what a close in this queue asks (dispositions, labels per language) and the wrap-up after it
	Dispositions       []configs.Disposition `json:"dispositions"`
	RequireDisposition bool                  `json:"require_disposition"`
	WrapUpSeconds      float64               `json:"wrap_up_seconds"`
	// Open says whether the queue is within its business hours (always, without hours); ClosesAt
	// is when an open queue closes, OpensAt when a closed one opens (absent: not within a year).
	Open     bool       `json:"open"`
	ClosesAt *time.Time `json:"closes_at,omitempty"`
	OpensAt  *time.Time `json:"opens_at,omitempty"`
}

// ChannelStatus is one channel of a queue. AgentsOnline counts the queue's agents online on the
// channel whatever their load; AgentsPaused those logged in but paused; AgentsAvailable the
// candidates (online and below capacity).
type ChannelStatus struct {
	Channel           string  `json:"channel"`
	Waiting           int64   `json:"waiting"`
	OldestWaitSeconds float64 `json:"oldest_wait_seconds"`
	AgentsAvailable   int64   `json:"agents_available"`
	AgentsOnline      int64   `json:"agents_online"`
	AgentsPaused      int64   `json:"agents_paused"`
}

// QueuesStatus reports every queue's waiting cards and available agents.
func (r *Router) QueuesStatus(ctx context.Context) ([]QueueStatus, error) {
	now := r.clock.Now()
	out := make([]QueueStatus, 0, len(r.queues))
	for _, q := range r.orderedQueues() {
		qs := QueueStatus{ID: q.ID, Name: q.Name, Strategy: q.Strategy,
			Dispositions: append([]configs.Disposition{}, q.Dispositions...), RequireDisposition: q.RequireDisposition, WrapUpSeconds: q.WrapUp.Seconds()}
		var change time.Time
		if qs.Open, change = r.QueueOpen(q.ID, now); !change.IsZero() {
			change = change.UTC()
			if qs.Open {
				qs.ClosesAt = &change
			} else {
				qs.OpensAt = &change
			}
		}
		for _, ch := range q.Channels {
			cs := ChannelStatus{Channel: ch}
			n, err := r.client.ZCard(ctx, r.keys.waiting(q.ID, ch)).Result()
			if err != nil {
				return nil, err
			}
			cs.Waiting = n
			if n > 0 {
				first, err := r.client.ZRangeWithScores(ctx, r.keys.waiting(q.ID, ch), 0, 0).Result()
				if err == nil && len(first) == 1 {
					if card, err := r.Card(ctx, first[0].Member.(string)); err == nil {
						cs.OldestWaitSeconds = now.Sub(card.CreatedAt).Round(time.Millisecond).Seconds()
					}
				}
			}
			cs.AgentsAvailable, _ = r.client.ZCard(ctx, r.keys.avail(q.ID, ch)).Result()
			if err := r.countPresence(ctx, q.ID, ch, &cs); err != nil {
				return nil, err
			}
			qs.Channels = append(qs.Channels, cs)
		}
		out = append(out, qs)
	}
	return out, nil
}

// countPresence reads the presence of the queue's members on the channel in one round trip.
func (r *Router) countPresence(ctx context.Context, queue, ch string, cs *ChannelStatus) error {
	pipe := r.client.Pipeline()
	var cmds []*redis.StringCmd
	for _, a := range r.members[queue] {
		if _, enabled := r.agents[a].channels[ch]; enabled {
			cmds = append(cmds, pipe.HGet(ctx, presence.StateKey(r.keys.ks, a), ch))
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	_, _ = pipe.Exec(ctx)
	for _, c := range cmds {
		st, err := c.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		switch presence.State(st) {
		case presence.Online:
			cs.AgentsOnline++
		case presence.Paused:
			cs.AgentsPaused++
		}
	}
	return nil
}

func (r *Router) orderedQueues() []configs.Queue {
	out := make([]configs.Queue, 0, len(r.queues))
	for _, q := range r.queues {
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (h *Handler) queuesStatus(c *fiber.Ctx) error {
	qs, err := h.router.QueuesStatus(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"queues": qs})
}
