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
