package routing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
)

// TranscriptLimit bounds the messages a transcript reads (the latest ones).
const TranscriptLimit = 10000

// ContactIdentifiers returns every identifier indexed to a contact ("kind:value" in its set).
func (r *Router) ContactIdentifiers(ctx context.Context, contactID string) ([]Identifier, error) {
	if contactID == "" {
		return nil, nil
	}
	members, err := r.client.SMembers(ctx, r.keys.contactIDs(contactID)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]Identifier, 0, len(members))
	for _, m := range members {
		if kind, value, ok := strings.Cut(m, ":"); ok {
			out = append(out, Identifier{Kind: kind, Value: value})
		}
	}
	return out, nil
}

// Transcript is a conversation with all its messages, oldest first.
type Transcript struct {
	Conversation Conversation `json:"conversation"`
	Messages     []Message    `json:"messages"`
}

// Transcript reads a conversation and its messages.
func (r *Router) Transcript(ctx context.Context, id string) (Transcript, error) {
	conv, err := r.Conversation(ctx, id)
	if err != nil {
		return Transcript{}, err
	}
	msgs, err := r.Messages(ctx, id, TranscriptLimit)
	if err != nil {
		return Transcript{}, err
	}
	return Transcript{Conversation: conv, Messages: msgs}, nil
}

// Text is the transcript for people: a heading, then one line per message with its time (UTC), who
// wrote it and its text (a message without text shows its kind in brackets).
func (t Transcript) Text() string {
	var b strings.Builder
	c := t.Conversation
	fmt.Fprintf(&b, "Conversation %s (%s, queue %s)\n", c.ID, c.Channel, c.Queue)
	customer := firstNonEmpty(c.Contact.Name, c.Contact.Phone, c.Contact.Username, c.Contact.UserID, "customer")
	fmt.Fprintf(&b, "Customer: %s\n", customer)
	fmt.Fprintf(&b, "Opened: %s\n", c.OpenedAt.UTC().Format(time.RFC3339))
	if c.ClosedAt != nil {
		fmt.Fprintf(&b, "Closed: %s by %s\n", c.ClosedAt.UTC().Format(time.RFC3339), firstNonEmpty(c.ClosedBy, "-"))
	}
	b.WriteByte('\n')
	for _, m := range t.Messages {
		who := customer
		if m.Direction == "out" {
			who = "agent " + firstNonEmpty(m.Agent, "-")
		}
		text := m.Text
		if text == "" || m.Kind != "text" {
			text = strings.TrimSpace("[" + m.Kind + "] " + text)
		}
		fmt.Fprintf(&b, "[%s] %s: %s\n", m.At.UTC().Format("2006-01-02 15:04:05"), who, strings.ReplaceAll(text, "\n", "\n    "))
	}
	return b.String()
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// transcript serves GET /v1/conversations/:id/transcript to the holder and supervisors: JSON, or
// ?format=text for people.
func (h *Handler) transcript(c *fiber.Ctx) error {
	conv, err := h.visibleConversation(c)
	if err != nil {
		return err
	}
	format := c.Query("format", "json")
	if format != "json" && format != "text" {
		return errBadTranscriptFormat
	}
	t, err := h.router.Transcript(c.UserContext(), conv.ID)
	if errors.Is(err, ErrNotFound) {
		return errConvNotFound
	}
	if err != nil {
		return err
	}
	if format == "text" {
		c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
		return c.SendString(t.Text())
	}
	return c.JSON(t)
}

// Snapshot is what a batch of integration events describes, read in two round trips.
type Snapshot struct {
	Conversations map[string]Conversation
	Messages      map[string]Message
	Cards         map[string]Card
	// Identifiers of each conversation's contact, by contact id.
	Identifiers map[string][]Identifier
}

// ReadSnapshot reads conversations, messages and cards by id (missing ones are absent), and the
// identifiers of the conversations' contacts, pipelined.
func (r *Router) ReadSnapshot(ctx context.Context, convs, msgs, cards []string) (Snapshot, error) {
	s := Snapshot{Conversations: map[string]Conversation{}, Messages: map[string]Message{}, Cards: map[string]Card{},
		Identifiers: map[string][]Identifier{}}
	pipe := r.client.Pipeline()
	get := func(ids []string, key func(string) string) []*redis.MapStringStringCmd {
		out := make([]*redis.MapStringStringCmd, len(ids))
		for i, id := range ids {
			out[i] = pipe.HGetAll(ctx, key(id))
		}
		return out
	}
	cc, mc, kc := get(convs, r.keys.conv), get(msgs, r.keys.msg), get(cards, r.keys.card)
	if len(convs)+len(msgs)+len(cards) == 0 {
		return s, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return s, err
	}
	contacts := map[string]bool{}
	rawConvs := map[string]map[string]string{}
	for i, c := range cc {
		if h := c.Val(); len(h) > 0 {
			rawConvs[convs[i]] = h
			conv := conversationFrom(h)
			s.Conversations[convs[i]] = conv
			if conv.Contact.ID != "" {
				contacts[conv.Contact.ID] = true
			}
		}
	}
	// A stored message keeps only what its conversation does not (compact storage): its
	// conversation's hash completes it, read here when the batch did not ask for it.
	missing := map[string]*redis.MapStringStringCmd{}
	pipe = r.client.Pipeline()
	for _, c := range mc {
		if id := c.Val()["conversation_id"]; id != "" && rawConvs[id] == nil && missing[id] == nil {
			missing[id] = pipe.HGetAll(ctx, r.keys.conv(id))
		}
	}
	if len(missing) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return s, err
		}
		for id, cmd := range missing {
			rawConvs[id] = cmd.Val()
		}
	}
	for i, c := range mc {
		if h := c.Val(); len(h) > 0 {
			s.Messages[msgs[i]] = messageFrom(msgs[i], h, rawConvs[h["conversation_id"]])
		}
	}
	for i, c := range kc {
		if h := c.Val(); len(h) > 0 {
			s.Cards[cards[i]] = cardWithConversation(h, nil)
		}
	}
	if len(contacts) == 0 {
		return s, nil
	}
	pipe = r.client.Pipeline()
	ids := map[string]*redis.StringSliceCmd{}
	for c := range contacts {
		ids[c] = pipe.SMembers(ctx, r.keys.contactIDs(c))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return s, err
	}
	for c, cmd := range ids {
		for _, m := range cmd.Val() {
			if kind, value, ok := strings.Cut(m, ":"); ok {
				s.Identifiers[c] = append(s.Identifiers[c], Identifier{Kind: kind, Value: value})
			}
		}
	}
	return s, nil
}
