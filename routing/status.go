package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/chatgate/chatgate/internal/ordered"
)

// StatusUpdate is news about an outbound message: sent (with the provider's id), delivered, read,
// played, failed with the provider's reason, deleted, or a warning (its reason in Error).
type StatusUpdate struct {
	State             string
	At                time.Time
	ProviderMessageID string
	Error             *MessageError
	// Channel is the message's channel when the caller has read the message already: recording a
	// provider id then needs no extra read (empty: UpdateStatus reads it).
	Channel string
	// Advance, when the status is a send's final outcome, ends the send's turn in its conversation's
	// sequence in the same script, after the status is written.
	Advance *ordered.Advance
	// Before is the message as the caller read it, still queued (a send's turn): the status script
	// then writes the agent's event itself, one round trip fewer (nil: UpdateStatus publishes it).
	Before *Message
}

// expectedEvent is the agent's message.status event after u applies to before (queued, no provider
// id) alone, as statusResult would publish it; nil when the publisher cannot take it from a script.
func (r *Router) expectedEvent(u StatusUpdate, at int64) statusEvent {
	if u.Before == nil || u.Before.Status != MessageQueued || u.Before.ProviderMessageID != "" {
		return statusEvent{}
	}
	l := r.scriptLog(EventMessageStatus)
	if l == nil {
		return statusEvent{}
	}
	m := *u.Before
	m.Status, m.StatusAt = u.State, msTimePtr(strconv.FormatInt(at, 10))
	if u.ProviderMessageID != "" {
		m.ProviderMessageID = u.ProviderMessageID
	}
	if u.State == MessageFailed && u.Error != nil {
		e := *u.Error
		e.summarize()
		m.Error = &e
	}
	body, err := gojson.Marshal(Event{Type: EventMessageStatus, At: r.clock.Now().UTC(), Message: m})
	if err != nil {
		return statusEvent{}
	}
	return statusEvent{body: body, channel: l.keys.eventsChannel(), maxLen: l.log.MaxLen()}
}

// RecordOutbound stores a message the agent sends in its conversation, status queued.
func (r *Router) RecordOutbound(ctx context.Context, conversationID, agent, kind, text string, payload json.RawMessage) (Message, error) {
	conv, err := r.Conversation(ctx, conversationID)
	if err != nil {
		return Message{}, err
	}
	now := r.clock.Now()
	m := Message{ID: newID(), ConversationID: conv.ID, Direction: "out", Channel: conv.Channel, Kind: kind, Text: text,
		Payload: payload, At: now.UTC(), Agent: agent, Status: MessageQueued}
	pipe := r.client.TxPipeline()
	pipe.HSet(ctx, r.keys.msg(m.ID), "id", m.ID, "conversation_id", m.ConversationID, "direction", "out", "channel", m.Channel,
		"kind", kind, "text", text, "payload", string(payload), "at", now.UnixMilli(), "agent", agent, "status", MessageQueued)
	pipe.RPush(ctx, r.keys.convMsgs(conv.ID), m.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return Message{}, err
	}
	return m, nil
}

// StatusOutcome says what a status did to its message.
type StatusOutcome string

// Outcomes of a status.
const (
	// StatusApplied: the message changed (its agent was told).
	StatusApplied StatusOutcome = "applied"
	// StatusStale: the message is already past this status (out-of-order delivery, a repeat).
	StatusStale StatusOutcome = "stale"
	// StatusPending: no message has this provider id yet (the send's answer is still on its way); the
	// status is kept and applied when the id is recorded.
	StatusPending StatusOutcome = "pending"
	// StatusDropped: kept for no one: the pending buffer of this provider id is full.
	StatusDropped StatusOutcome = "dropped"
	// StatusInbound: the id is a customer's message; a status never changes those.
	StatusInbound StatusOutcome = "inbound"
	// StatusUnknown: a status this version does not know; nothing changed.
	StatusUnknown StatusOutcome = "unknown"
)

// Bounds of the statuses kept for provider ids not recorded yet: the send's answer comes within
// seconds (a worker insists for about ten when Redis hiccups), so a quarter of an hour is plenty.
const (
	pendingStatusTTL   = 15 * time.Minute
	pendingPerMessage  = 8     // room for each of the seven statuses Meta sends, once
	pendingStatusesMax = 10000 // provider ids waiting at once, per tenant; the oldest gives way
)

// KnownStatus reports whether state is one the status machine applies.
func KnownStatus(state string) bool {
	switch state {
	case MessageQueued, MessageSent, MessageDelivered, MessageRead, MessagePlayed, MessageFailed, MessageDeleted, MessageWarning:
		return true
	}
	return false
}

// UpdateStatus applies a status to a stored message (see statusLua for the order rules) and tells
// the message's agent. It reports whether the status changed anything.
func (r *Router) UpdateStatus(ctx context.Context, messageID string, u StatusUpdate) (Message, bool, error) {
	channel := "none"
	if u.ProviderMessageID != "" {
		channel = u.Channel
		if channel == "" {
			if h, err := r.client.HGet(ctx, r.keys.msg(messageID), "channel").Result(); err == nil {
				channel = h
			} else {
				channel = "none"
			}
		}
	}
	at := r.statusTime(u).UnixMilli()
	args := statusArgs{keys: r.keys, messageID: messageID, channel: channel,
		providerID: u.ProviderMessageID, state: u.State, at: at, failure: u.Error,
		indexTTL: int64(dedupTTL / time.Second), advance: u.Advance, event: r.expectedEvent(u, at)}
	var out statusReply
	var err error
	if u.Advance != nil {
		var both statusAdvanceReply
		if both, err = statusAdvanceScript.Run(ctx, r.client, args); err == nil {
			out = both.status
			err = errors.Join(u.Advance.Done(both.advanced), u.Advance.Completed(both.completed))
		}
	} else {
		out, err = statusScript.Run(ctx, r.client, args)
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("status: %w", err)
	}
	if out.code == "not_found" {
		return Message{}, false, ErrNotFound
	}
	m, outcome := r.statusResult(ctx, out)
	return m, outcome == StatusApplied, nil
}

// ApplyProviderStatus applies a provider's status webhook, finding the message by the provider's id,
// or keeps it for the send whose answer has not recorded that id yet.
func (r *Router) ApplyProviderStatus(ctx context.Context, channel, providerMessageID string, u StatusUpdate) (Message, StatusOutcome, error) {
	if !KnownStatus(u.State) {
		return Message{}, StatusUnknown, nil
	}
	out, err := providerStatusScript.Run(ctx, r.client, providerStatusArgs{keys: r.keys, channel: channel,
		providerID: providerMessageID, state: u.State, at: r.statusTime(u).UnixMilli(), now: r.clock.Now().UnixMilli(),
		failure: u.Error, pendingTTL: int64(pendingStatusTTL / time.Second), perMessage: pendingPerMessage,
		messages: pendingStatusesMax})
	if err != nil {
		return Message{}, "", fmt.Errorf("status: %w", err)
	}
	if out.code == "not_found" {
		// The index outlived its message: nothing to change.
		return Message{}, StatusStale, nil
	}
	m, outcome := r.statusResult(ctx, out)
	return m, outcome, nil
}

func (r *Router) statusTime(u StatusUpdate) time.Time {
	if u.At.IsZero() {
		return r.clock.Now()
	}
	return u.At
}

func errorArgs(e *MessageError) (code, title, message, details, summary string) {
	if e == nil {
		return "", "", "", "", ""
	}
	c := *e
	c.summarize()
	return strconv.Itoa(c.Code), c.Title, c.Message, c.Details, c.Summary
}

// statusResult reads a status script's answer and tells the agent of a change.
func (r *Router) statusResult(ctx context.Context, out statusReply) (Message, StatusOutcome) {
	switch out.code {
	case "ok", "stale":
	case "pending":
		return Message{}, StatusPending
	case "dropped":
		return Message{}, StatusDropped
	case "inbound":
		return Message{}, StatusInbound
	default:
		return Message{}, StatusUnknown
	}
	m := messageFrom("", out.fields, nil)
	if out.code != "ok" {
		return m, StatusStale
	}
	agent := out.agent
	if agent == "" {
		agent = m.Agent
	}
	switch {
	case agent != "" && out.published:
		r.pub.(scriptAppender).appended(agent, EventMessageStatus, "") // the status script appended it
	case agent != "":
		r.publish(ctx, agent, Event{Type: EventMessageStatus, Message: m})
	}
	return m, StatusApplied
}
