package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/chatgate/chatgate/internal/ordered"
)

// Errors of agent-initiated messages.
var (
	ErrNotLoggedIn          = errors.New("the agent is not logged in on the channel")
	ErrAtCapacity           = errors.New("the agent is at capacity on the channel")
	ErrConversationTaken    = errors.New("the customer has an open conversation with another agent")
	ErrConversationClosed   = errors.New("the conversation is closed")
	ErrNotAssigned          = errors.New("the conversation is not assigned to this agent")
	ErrNotAccepted          = errors.New("the card of the conversation is not accepted yet")
	ErrWindowClosed         = errors.New("the customer service window is closed")
	ErrConversationNotFound = errors.New("no such conversation")
)

// Outbound is a message an agent sends: its kind ("template", "text", or a media kind), the text
// shown in the conversation, and the provider-facing details as JSON.
type Outbound struct {
	Kind    string
	Text    string
	Payload json.RawMessage
}

// StartRequest opens a conversation from the agent's side (a WhatsApp template).
type StartRequest struct {
	Agent        string
	Channel      string
	EntryPoint   string // the sending number
	ContactPhone string // the customer's number, digits only (Meta's wa_id)
	Message      Outbound
}

// StartConversation opens a conversation from the agent's side and records its first message as
// queued. It reports the conversation, the message and whether the conversation is new.
func (r *Router) StartConversation(ctx context.Context, req StartRequest) (Conversation, Message, bool, error) {
	conv, msg, opened, _, err := r.start(ctx, req, nil)
	return conv, msg, opened, err
}

// Admitted is what the start script did with the message's send: admitted to its conversation's
// sequence, heading it or not, and enqueued on asynq too, or not (then the caller enqueues it:
// ordered.Sequencer.EnqueueAdmitted with Head).
type Admitted struct {
	Head, Queued bool
}

// StartAdmitted is StartConversation that also admits the message's send to its conversation's
// sequence in the same step, and enqueues its task when the admission carries it (admit names the
// send of a message id: ordered.Sequencer.Admission or AdmitTask). It reports the conversation's id
// only (the message's ConversationID), not read back: a send needs nothing more.
func (r *Router) StartAdmitted(ctx context.Context, req StartRequest, admit func(messageID string) ordered.Admission) (Message, Admitted, error) {
	_, msg, _, adm, err := r.start(ctx, req, admit)
	return msg, adm, err
}

func (r *Router) start(ctx context.Context, req StartRequest, admit func(messageID string) ordered.Admission) (Conversation, Message, bool, Admitted, error) {
	queue, ok := r.QueueFor(req.Channel, req.EntryPoint)
	if !ok {
		return Conversation{}, Message{}, false, Admitted{}, ErrUnknownQueue
	}
	now := r.clock.Now()
	var msgID, convID, cardID, contactID string
	newIDs(&msgID, &convID, &cardID, &contactID)
	var admission *ordered.Admission
	if admit != nil {
		a := admit(msgID)
		admission = &a
	}
	qs := r.agentQueues(req.Agent, req.Channel)
	candidateIn := make([]candidateQueue, 0, len(qs))
	for _, q := range qs {
		candidateIn = append(candidateIn, candidateQueue{id: q, strategy: r.queues[q].Strategy})
	}
	out, err := startScript.Run(ctx, r.client, startArgs{keys: r.keys, agent: req.Agent, channel: req.Channel,
		entryPoint: req.EntryPoint, queue: queue, phone: strings.TrimPrefix(req.ContactPhone, "+"),
		conversationID: convID, cardID: cardID, messageID: msgID, now: now.UnixMilli(),
		kind: req.Message.Kind, text: req.Message.Text, payload: string(req.Message.Payload), newContactID: contactID,
		capacity: r.agents[req.Agent].channels[req.Channel], candidateIn: candidateIn, admit: admission, idOnly: admit != nil})
	if err != nil {
		return Conversation{}, Message{}, false, Admitted{}, fmt.Errorf("start conversation: %w", err)
	}
	switch out.code {
	case "not_logged_in":
		return Conversation{}, Message{}, false, Admitted{}, ErrNotLoggedIn
	case "at_capacity":
		return Conversation{}, Message{}, false, Admitted{}, ErrAtCapacity
	case "taken":
		return Conversation{ID: out.conversationID}, Message{}, false, Admitted{}, ErrConversationTaken
	}
	conv := Conversation{ID: out.conversationID}
	if admit == nil {
		if len(out.convFields) == 0 {
			return Conversation{}, Message{}, false, Admitted{}, ErrNotFound
		}
		conv = conversationFrom(out.convFields)
	}
	// The script made the agent a candidate again (see candidate); only queues where cards wait
	// have anything to offer.
	for _, q := range out.dispatch {
		if err := r.Dispatch(ctx, q, req.Channel); err != nil {
			r.logger.Warn("dispatch failed", "queue", q, "err", err)
		}
	}
	msg := Message{ID: msgID, ConversationID: conv.ID, Direction: "out", Channel: req.Channel, Kind: req.Message.Kind,
		Text: req.Message.Text, Payload: req.Message.Payload, At: now.UTC(), Agent: req.Agent, Status: MessageQueued}
	return conv, msg, out.opened, Admitted{Head: out.head, Queued: out.queued}, nil
}

// Reply records an agent's message in its conversation as queued. On a channel with a customer
// service window (WhatsApp's 24 hours after the customer's last message), free-form messages are
// refused once it is closed.
func (r *Router) Reply(ctx context.Context, conversationID, agent string, m Outbound) (Conversation, Message, error) {
	now := r.clock.Now()
	msgID := newID()
	checkWindow := m.Kind != "template"
	conv, err := r.Conversation(ctx, conversationID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Conversation{}, Message{}, ErrConversationNotFound
		}
		return Conversation{}, Message{}, err
	}
	if r.topo.Channel(conv.Channel).Window == 0 {
		checkWindow = false
	}
	out, err := replyScript.Run(ctx, r.client, replyArgs{keys: r.keys, conversationID: conversationID, agent: agent,
		messageID: msgID, now: now.UnixMilli(), kind: m.Kind, text: m.Text, payload: string(m.Payload), checkWindow: checkWindow})
	if err != nil {
		return Conversation{}, Message{}, fmt.Errorf("reply: %w", err)
	}
	switch out.code {
	case "not_found":
		return Conversation{}, Message{}, ErrConversationNotFound
	case "closed":
		return conv, Message{}, ErrConversationClosed
	case "not_assigned":
		return conv, Message{}, ErrNotAssigned
	case "not_accepted":
		return conv, Message{}, ErrNotAccepted
	case "window_closed":
		return conv, Message{}, ErrWindowClosed
	}
	msg := Message{ID: msgID, ConversationID: conv.ID, Direction: "out", Channel: out.channel, Kind: m.Kind, Text: m.Text,
		Payload: m.Payload, At: now.UTC(), Agent: agent, Status: MessageQueued}
	return conv, msg, nil
}

// Message returns one stored message.
func (r *Router) Message(ctx context.Context, id string) (Message, error) {
	h, err := r.client.HGetAll(ctx, r.keys.msg(id)).Result()
	if err != nil {
		return Message{}, err
	}
	return r.messageOf(ctx, id, h)
}

// messageOf is the message of its stored fields h, reading its conversation when the compact
// payload needs it.
func (r *Router) messageOf(ctx context.Context, id string, h map[string]string) (Message, error) {
	if len(h) == 0 {
		return Message{}, ErrNotFound
	}
	var conv map[string]string
	if _, ok := h["x"]; ok && h["conversation_id"] != "" {
		conv, _ = r.client.HGetAll(ctx, r.keys.conv(h["conversation_id"])).Result()
	}
	return messageFrom(id, h, conv), nil
}

// MessageKey is where message id is stored (a HASH), for a script that reads it in its own work.
func (r *Router) MessageKey(id string) string { return r.keys.msg(id) }

// MessageFrom is the message of the fields a script read at MessageKey (ErrNotFound when none).
func (r *Router) MessageFrom(ctx context.Context, id string, fields map[string]string) (Message, error) {
	return r.messageOf(ctx, id, fields)
}

// FailMessage marks a queued message failed when it could not even be handed to its channel.
func (r *Router) FailMessage(ctx context.Context, id string, code int, title string) {
	if _, _, err := r.UpdateStatus(ctx, id, StatusUpdate{State: MessageFailed, Error: &MessageError{Code: code, Title: title}}); err != nil {
		r.logger.Warn("could not mark a message failed", "message_id", id, "err", err)
	}
}
