package routing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
)

// Running the floor: transfers, dispositions and wrap-up, and the first-response timer.

// Errors of the floor; the HTTP layer maps each to its status and code.
var (
	ErrUnknownAgent = errors.New("unknown agent")
	// ErrQueueChannel: the target queue does not serve the conversation's channel.
	ErrQueueChannel = errors.New("the queue does not serve the conversation's channel")
	ErrNoWrapUp     = errors.New("no wrap-up is running on this channel")
)

// AgentNotAvailableError is why a transfer's target agent cannot take the conversation now.
type AgentNotAvailableError struct {
	Agent, Channel string
	// Reason: offline, paused, wrap_up, at_capacity, channel_not_enabled, already_holder.
	Reason string
}

func (e *AgentNotAvailableError) Error() string {
	switch e.Reason {
	case "already_holder":
		return fmt.Sprintf("%s already holds the conversation", e.Agent)
	case "channel_not_enabled":
		return fmt.Sprintf("%s is not enabled on %s", e.Agent, e.Channel)
	case "at_capacity":
		return fmt.Sprintf("%s has no room on %s", e.Agent, e.Channel)
	case "wrap_up":
		return fmt.Sprintf("%s is wrapping up on %s", e.Agent, e.Channel)
	}
	return fmt.Sprintf("%s is %s on %s", e.Agent, e.Reason, e.Channel)
}

// DispositionError is a close refused for its disposition: Reason is required or unknown.
type DispositionError struct {
	Reason string
	ID     string
}

func (e *DispositionError) Error() string {
	if e.Reason == "required" {
		return "this queue needs a disposition to close a conversation"
	}
	return fmt.Sprintf("disposition %q is not one of the queue's", e.ID)
}

// CloseDetails is what the agent records when closing: the disposition (an id of the queue's
// dispositions) and a free note.
type CloseDetails struct {
	Disposition string
	Note        string
	// Reason names a close the gateway makes itself (out_of_hours, idle): no disposition is asked
	// of it, and reports count it under its own outcome.
	Reason string
}

func checkDisposition(q configs.Queue, d CloseDetails) error {
	if d.Disposition == "" {
		if d.Reason != "" {
			return nil
		}
		if q.RequireDisposition {
			return &DispositionError{Reason: "required"}
		}
		return nil
	}
	if _, ok := q.Disposition(d.Disposition); !ok {
		return &DispositionError{Reason: "unknown", ID: d.Disposition}
	}
	return nil
}

// TransferRequest moves a conversation to one agent (ToAgent) or first in line in a queue (ToQueue).
type TransferRequest struct {
	ToAgent, ToQueue, Note string
	// By is the caller; Supervisor lets it transfer a conversation it does not hold.
	By         string
	Supervisor bool
}

// floorMetrics count what the floor's timers and actions did.
type floorMetrics struct {
	transfers  *prometheus.CounterVec
	unanswered *prometheus.CounterVec
}

func newFloorMetrics() floorMetrics {
	return floorMetrics{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_routing_transfers_total",
			Help: "Conversations transferred, by the queue they were in and the target kind (agent, queue)."}, []string{"queue", "to"}),
		unanswered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_routing_unanswered_total",
			Help: "Conversations accepted without an agent message within first_response_timeout, by queue and action."}, []string{"queue", "action"}),
	}
}

// SetSupervisorPublisher sets where supervisor events go (the supervisor stream); set it at wiring.
func (r *Router) SetSupervisorPublisher(p SupervisorPublisher) { r.supervisors.Store(&p) }

func (r *Router) publishSupervisors(ctx context.Context, ev Event) {
	p := r.supervisors.Load()
	if p == nil || *p == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = r.clock.Now().UTC()
	}
	if err := (*p).PublishSupervisor(ctx, ev); err != nil {
		r.logger.Warn("publish supervisor event failed", "type", ev.Type, "err", err)
	}
}

// Transfer moves an open conversation: to an agent (offered to that agent only; a decline or a
// timeout puts it first in line in its queue) or first in line in a queue that serves its channel.
// The caller must hold it accepted, unless a supervisor. The former holder counts as having refused
// it (it comes back to it only as a re-offer). Both holders and the supervisors are told.
func (r *Router) Transfer(ctx context.Context, conversationID string, req TransferRequest) (Conversation, error) {
	if (req.ToAgent == "") == (req.ToQueue == "") {
		return Conversation{}, errors.New("transfer: name an agent or a queue")
	}
	conv, err := r.Conversation(ctx, conversationID)
	if err != nil {
		return Conversation{}, err
	}
	if conv.State != "open" || conv.CardID == "" {
		return Conversation{}, ErrWrongState
	}
	now := r.clock.Now()
	q := r.queues[conv.Queue]
	var out transferReply
	if req.ToAgent != "" {
		if _, ok := r.agents[req.ToAgent]; !ok {
			return Conversation{}, ErrUnknownAgent
		}
		out, err = transferAgentScript.Run(ctx, r.client, transferAgentArgs{keys: r.keys, card: conv.CardID, caller: req.By, to: req.ToAgent,
			note: req.Note, force: req.Supervisor, audit: r.audit, now: now.UnixMilli(), offerTimeout: q.OfferTimeout.Milliseconds(),
			reofferAfter: q.ReofferAfter.Milliseconds()})
	} else {
		target, ok := r.queues[req.ToQueue]
		if !ok {
			return Conversation{}, ErrUnknownQueue
		}
		if !containsChannel(target.Channels, conv.Channel) {
			return Conversation{}, ErrQueueChannel
		}
		out, err = transferQueueScript.Run(ctx, r.client, transferQueueArgs{keys: r.keys, card: conv.CardID, caller: req.By, to: req.ToQueue,
			note: req.Note, force: req.Supervisor, now: now.UnixMilli(), reofferAfter: target.ReofferAfter.Milliseconds()})
	}
	if err != nil {
		return Conversation{}, err
	}
	if out.code == "unavailable" {
		return Conversation{}, &AgentNotAvailableError{Agent: req.ToAgent, Channel: conv.Channel, Reason: out.state}
	}
	if out.code == "not_yours" {
		return Conversation{}, ErrNotYours
	}
	if err := out.err(); err != nil {
		return Conversation{}, err
	}
	to := "queue"
	if req.ToAgent != "" {
		to = "agent"
	}
	r.metrics.floor.transfers.WithLabelValues(out.queue, to).Inc()
	if req.By != out.holder {
		r.logger.Info("supervisor transferred a conversation", "audit", "conversation.transferred", "actor", req.By, "holder", out.holder,
			"conversation", conversationID, "to_agent", req.ToAgent, "to_queue", req.ToQueue)
	}
	conv, _ = r.Conversation(ctx, conversationID)
	card, _ := r.Card(ctx, conv.CardID)
	ev := Event{Type: EventConversationTransferred, Card: card, Conversation: conv, Transfer: conv.LastTransfer}
	if out.holder != "" {
		r.publish(ctx, out.holder, ev)
	}
	if req.ToAgent != "" {
		r.publish(ctx, req.ToAgent, Event{Type: EventCardOffered, Card: card})
		r.publish(ctx, req.ToAgent, ev)
	}
	r.publishSupervisors(ctx, ev)
	// The former holder has room again (others' cards may wait for it); the target queue's head moved.
	if out.holder != "" {
		r.refreshAgent(ctx, out.holder, out.channel)
	}
	if req.ToQueue != "" {
		if err := r.Dispatch(ctx, req.ToQueue, conv.Channel); err != nil {
			return conv, err
		}
		conv, _ = r.Conversation(ctx, conversationID)
	}
	return conv, nil
}

func containsChannel(list []string, ch string) bool {
	for _, c := range list {
		if c == ch {
			return true
		}
	}
	return false
}

// WrapUp is an agent's wrap-up on a channel, as its events carry it.
type WrapUp struct {
	ID      string     `json:"id"` // agent:channel, as presence events
	Agent   string     `json:"agent"`
	Channel string     `json:"channel"`
	Until   *time.Time `json:"wrap_up_until,omitempty"`
	// How it ended: expired (its time passed) or ended (the agent ended it early).
	Ended string `json:"ended,omitempty"`
}

func (r *Router) wrapUpStarted(ctx context.Context, agent, channel string, untilMs int64) {
	until := time.UnixMilli(untilMs).UTC()
	ev := Event{Type: EventWrapUpStarted, WrapUp: WrapUp{ID: agent + ":" + channel, Agent: agent, Channel: channel, Until: &until}}
	r.publish(ctx, agent, ev)
	r.publishSupervisors(ctx, ev)
}

// EndWrapUp ends the agent's wrap-up on the channel now (the agent is ready before its time); the
// channel takes offers again at once. ErrNoWrapUp when none runs.
func (r *Router) EndWrapUp(ctx context.Context, agent, channel, by string) error {
	return r.endWrapUp(ctx, agent, channel, true, by, "wrap_up_ended")
}

func (r *Router) endWrapUp(ctx context.Context, agent, channel string, early bool, by, cause string) error {
	out, err := endWrapUpScript.Run(ctx, r.client, endWrapUpArgs{keys: r.keys, agent: agent, channel: channel,
		now: r.clock.Now().UnixMilli(), early: early, by: by, cause: cause})
	if err != nil {
		return err
	}
	switch out.code {
	case "none":
		return ErrNoWrapUp
	case "not_due":
		return nil
	}
	how := "expired"
	if early {
		how = "ended"
	}
	ev := Event{Type: EventWrapUpEnded, WrapUp: WrapUp{ID: agent + ":" + channel, Agent: agent, Channel: channel, Ended: how}}
	r.publish(ctx, agent, ev)
	r.publishSupervisors(ctx, ev)
	r.refreshAgent(ctx, agent, channel)
	return nil
}

// floorScan bounds the wrap-ups and timers handled in one sweep.
const floorScan = 1000

// sweepWrapUps ends every wrap-up whose time passed, and offers what waits to those agents.
func (r *Router) sweepWrapUps(ctx context.Context) error {
	due, err := r.client.ZRangeByScore(ctx, r.keys.wrapUps(), &redis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(r.clock.Now().UnixMilli(), 10), Count: floorScan}).Result()
	if err != nil {
		return err
	}
	for _, m := range due {
		agent, channel, _ := strings.Cut(m, "|")
		if err := r.endWrapUp(ctx, agent, channel, false, "system", "wrap_up_expired"); err != nil && !errors.Is(err, ErrNoWrapUp) {
			return err
		}
	}
	return nil
}

// startFirstResponseTimer arms the card's queue's first-response timer after an accept.
func (r *Router) startFirstResponseTimer(ctx context.Context, cardID string) {
	queue, _ := r.client.HGet(ctx, r.keys.card(cardID), "queue").Result()
	timeout := r.queues[queue].FirstResponseTimeout
	if timeout <= 0 {
		return
	}
	due := r.clock.Now().Add(timeout).UnixMilli()
	if err := r.client.ZAdd(ctx, r.keys.firstResponses(), redis.Z{Score: float64(due), Member: cardID}).Err(); err != nil {
		r.logger.Warn("first-response timer not armed", "card", cardID, "err", err)
	}
}

// Unanswered is what conversation.unanswered says: who left it unanswered since when, the queue's
// timeout, and what was done (notify, or requeue: it went back first in line).
type Unanswered struct {
	Agent          string    `json:"agent"`
	Queue          string    `json:"queue"`
	AcceptedAt     time.Time `json:"accepted_at"`
	TimeoutSeconds float64   `json:"timeout_seconds"`
	Action         string    `json:"action"`
}

// sweepFirstResponses checks the conversations whose first-response timer came due.
func (r *Router) sweepFirstResponses(ctx context.Context) error {
	now := r.clock.Now()
	due, err := r.client.ZRangeByScore(ctx, r.keys.firstResponses(), &redis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(now.UnixMilli(), 10), Count: floorScan}).Result()
	if err != nil {
		return err
	}
	for _, cardID := range due {
		queue, _ := r.client.HGet(ctx, r.keys.card(cardID), "queue").Result()
		q := r.queues[queue]
		action := q.FirstResponseAction
		if action != "requeue" {
			action = "notify"
		}
		if q.FirstResponseTimeout <= 0 {
			r.client.ZRem(ctx, r.keys.firstResponses(), cardID) // the card moved to a queue without a timer
			continue
		}
		out, err := firstResponseScript.Run(ctx, r.client, firstResponseArgs{keys: r.keys, card: cardID, now: now.UnixMilli(),
			timeout: q.FirstResponseTimeout.Milliseconds(), action: action, reofferAfter: q.ReofferAfter.Milliseconds()})
		if err != nil {
			return err
		}
		if !out.unanswered {
			continue
		}
		r.metrics.floor.unanswered.WithLabelValues(out.queue, action).Inc()
		card, _ := r.Card(ctx, cardID)
		conv, _ := r.Conversation(ctx, out.conversationID)
		ev := Event{Type: EventConversationUnanswered, Card: card, Conversation: conv, Unanswered: Unanswered{Agent: out.agent,
			Queue: out.queue, AcceptedAt: time.UnixMilli(out.acceptedAt).UTC(), TimeoutSeconds: q.FirstResponseTimeout.Seconds(), Action: action}}
		r.publish(ctx, out.agent, ev)
		r.publishSupervisors(ctx, ev)
		if action == "requeue" {
			r.publish(ctx, out.agent, Event{Type: EventCardRevoked, Card: card})
			r.refreshAgent(ctx, out.agent, out.channel)
			if err := r.Dispatch(ctx, out.queue, out.channel); err != nil {
				return err
			}
		}
	}
	return nil
}
