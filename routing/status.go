package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// StatusUpdate is news about an outbound message: sent (with the provider's id), delivered, read,
// or failed with the provider's reason.
type StatusUpdate struct {
	State             string
	At                time.Time
	ProviderMessageID string
	Error             *MessageError
}

// RecordOutbound stores a message the agent sends in its conversation, status queued.
func (r *Router) RecordOutbound(ctx context.Context, conversationID, agent, kind, text string, payload json.RawMessage) (Message, error) {
	conv, err := r.Conversation(ctx, conversationID)
	if err != nil {
		return Message{}, err
	}
	now := r.clock.Now()
	m := Message{ID: newID(), ConversationID: conv.ID, Direction: "out", Channel: conv.Channel, Kind: kind, Text: text,
		Payload: payload, At: now.UTC(), Agent: agent, Status: "queued"}
	pipe := r.client.TxPipeline()
	pipe.HSet(ctx, r.keys.msg(m.ID), "id", m.ID, "conversation_id", m.ConversationID, "direction", "out", "channel", m.Channel,
		"kind", kind, "text", text, "payload", string(payload), "at", now.UnixMilli(), "agent", agent, "status", "queued")
	pipe.RPush(ctx, r.keys.convMsgs(conv.ID), m.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return Message{}, err
	}
	return m, nil
}

// UpdateStatus applies a status to a stored message (see statusScript for the order rules) and tells
// the message's agent. It reports whether the status changed anything.
func (r *Router) UpdateStatus(ctx context.Context, messageID string, u StatusUpdate) (Message, bool, error) {
	return r.applyStatus(ctx, messageID, "", u)
}

// ApplyProviderStatus applies a provider's status webhook, finding the message by the provider's id.
// An id the gateway never sent reports (Message{}, false, nil).
func (r *Router) ApplyProviderStatus(ctx context.Context, channel, providerMessageID string, u StatusUpdate) (Message, bool, error) {
	id, err := r.client.Get(ctx, r.keys.pmsg(channel, providerMessageID)).Result()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return Message{}, false, nil
		}
		return Message{}, false, err
	}
	return r.applyStatus(ctx, id, channel, u)
}

func (r *Router) applyStatus(ctx context.Context, messageID, channel string, u StatusUpdate) (Message, bool, error) {
	at := u.At
	if at.IsZero() {
		at = r.clock.Now()
	}
	code, title, details, message, summary := "", "", "", "", ""
	if u.Error != nil {
		e := *u.Error
		e.summarize()
		code, title, details, message, summary = strconv.Itoa(e.Code), e.Title, e.Details, e.Message, e.Summary
	}
	index, pmsgKey := "0", r.keys.pmsg("none", messageID)
	if u.ProviderMessageID != "" {
		if channel == "" {
			h, err := r.client.HGet(ctx, r.keys.msg(messageID), "channel").Result()
			if err == nil {
				channel = h
			}
		}
		index, pmsgKey = "1", r.keys.pmsg(channel, u.ProviderMessageID)
	}
	out, err := statusScript.Run(ctx, r.client, []string{r.keys.msg(messageID), pmsgKey}, u.State, at.UnixMilli(),
		u.ProviderMessageID, code, title, details, index, int64(dedupTTL/time.Second), r.keys.prefix(), message, summary).StringSlice()
	if err != nil {
		return Message{}, false, fmt.Errorf("status: %w", err)
	}
	if out[0] == "not_found" {
		return Message{}, false, ErrNotFound
	}
	h := make(map[string]string, (len(out)-2)/2)
	for i := 2; i+1 < len(out); i += 2 {
		h[out[i]] = out[i+1]
	}
	m := messageFrom(h)
	if out[0] != "ok" {
		return m, false, nil
	}
	agent := out[1]
	if agent == "" {
		agent = m.Agent
	}
	if agent != "" {
		r.publish(ctx, agent, Event{Type: EventMessageStatus, Message: m})
	}
	return m, true, nil
}
