package outbound

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/routing"
)

// Reader marks a customer's message read at the provider, with the typing indicator or not
// (*whatsapp.Client).
type Reader interface {
	MarkRead(ctx context.Context, phoneNumberID, token, messageID string, typing bool) error
}

// Receipts tells WhatsApp customers that their messages were read (when the holder opens the
// conversation) and that the agent is typing. Marking a message read marks every earlier one with
// it, so only the newest customer message is marked, once: a Redis key per message says it was.
//
// Keys: cg:{t}:mread:<message id> (a receipt was sent; 30 days), cg:{t}:mtyping:<conversation id>
// (a typing indicator is showing; 20 seconds, Meta shows it up to 25).
type Receipts struct {
	router *routing.Router
	client redis.UniversalClient
	keys   keyspace.Space
	reader Reader
	tokens map[string]string
	logger *slog.Logger
}

const (
	readMarkTTL    = 30 * 24 * time.Hour
	typingInterval = 20 * time.Second
	// receiptWindow is how far back the newest customer message is looked for.
	receiptWindow = 50
)

// NewReceipts builds the read receipts and typing sender.
func NewReceipts(router *routing.Router, client redis.UniversalClient, ks keyspace.Space, reader Reader, tokens map[string]string, logger *slog.Logger) *Receipts {
	if logger == nil {
		logger = slog.Default()
	}
	return &Receipts{router: router, client: client, keys: ks, reader: reader, tokens: tokens, logger: logger.With("component", "receipts")}
}

// MarkRead marks the conversation's newest customer message read at WhatsApp, unless it already
// was; only the conversation's holder does. It reports whether a receipt was sent. Other channels
// have no receipts: nothing is sent.
func (r *Receipts) MarkRead(ctx context.Context, agent, conversationID string) (bool, error) {
	conv, last, err := r.newest(ctx, agent, conversationID)
	if err != nil || last.ID == "" {
		return false, err
	}
	key := r.keys.Key("mread", last.ID)
	won, err := r.client.SetNX(ctx, key, "1", readMarkTTL).Result()
	if err != nil || !won {
		return false, err
	}
	if err := r.send(ctx, conv, last, false); err != nil {
		r.client.Del(context.WithoutCancel(ctx), key) // not marked: the next opening tries again
		return false, err
	}
	return true, nil
}

// Typing shows the typing indicator to a WhatsApp customer (which also marks their newest message
// read), at most every 20 seconds per conversation.
func (r *Receipts) Typing(ctx context.Context, conv routing.Conversation) error {
	last, err := r.newestOf(ctx, conv)
	if err != nil || last.ID == "" {
		return err
	}
	won, err := r.client.SetNX(ctx, r.keys.Key("mtyping", conv.ID), "1", typingInterval).Result()
	if err != nil || !won {
		return err
	}
	if err := r.send(ctx, conv, last, true); err != nil {
		r.client.Del(context.WithoutCancel(ctx), r.keys.Key("mtyping", conv.ID))
		return err
	}
	r.client.Set(context.WithoutCancel(ctx), r.keys.Key("mread", last.ID), "1", readMarkTTL)
	return nil
}

func (r *Receipts) send(ctx context.Context, conv routing.Conversation, m routing.Message, typing bool) error {
	token, ok := r.tokens[conv.EntryPoint]
	if !ok {
		return httpx.ErrChannelNotSupported.WithMessage("the conversation's WhatsApp number is not configured for sending")
	}
	if err := r.reader.MarkRead(ctx, conv.EntryPoint, token, m.ProviderMessageID, typing); err != nil {
		r.logger.Warn("read receipt failed", "conversation_id", conv.ID, "message_id", m.ID, "typing", typing, "err", err)
		var we *whatsapp.Error
		if errors.As(err, &we) && (we.Class == whatsapp.Permanent || we.Class == whatsapp.Auth) {
			return httpx.ErrProviderRefused.WithMessage("WhatsApp refused the read receipt")
		}
		return httpx.ErrMediaUnavailable.WithMessage("WhatsApp could not be reached; retry")
	}
	return nil
}

// newest is the holder's WhatsApp conversation and its newest customer message (zero when there is
// none, or on another channel).
func (r *Receipts) newest(ctx context.Context, agent, id string) (routing.Conversation, routing.Message, error) {
	conv, err := r.router.Conversation(ctx, id)
	switch {
	case errors.Is(err, routing.ErrNotFound):
		return conv, routing.Message{}, routing.ErrConversationNotFound
	case err != nil:
		return conv, routing.Message{}, err
	case conv.Agent != agent:
		return conv, routing.Message{}, routing.ErrNotAssigned
	case conv.Channel != topology.WhatsApp:
		return conv, routing.Message{}, nil
	}
	m, err := r.newestOf(ctx, conv)
	return conv, m, err
}

func (r *Receipts) newestOf(ctx context.Context, conv routing.Conversation) (routing.Message, error) {
	if conv.Channel != topology.WhatsApp {
		return routing.Message{}, nil
	}
	msgs, err := r.router.Messages(ctx, conv.ID, receiptWindow)
	if err != nil {
		return routing.Message{}, err
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if m := msgs[i]; m.Direction == "in" && m.ProviderMessageID != "" {
			return m, nil
		}
	}
	return routing.Message{}, nil
}
