package widget

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/webhooks/webchat"
)

// HTTP errors of the agents' typing notice.
var (
	errBadID          = httpx.ErrBadID
	errConvNotFound   = httpx.ErrConversationNotFound
	errNotYourConv    = httpx.ErrNotYourConversation
	errConvClosed     = httpx.ErrConversationClosed
	errNotWebChatConv = httpx.ErrChannelNotSupported.WithMessage("typing notices are sent on WebChat and WhatsApp only")
)

// Conversations finds a conversation (routing.Router satisfies it).
type Conversations interface {
	Conversation(ctx context.Context, id string) (routing.Conversation, error)
}

// TypingHandler serves POST /v1/conversations/{id}/typing: the agent is writing, and the visitor's
// widget says so. The notice is live only: it is announced to open streams and not kept, so a
// reloaded widget does not replay stale typing notices.
type TypingHandler struct {
	convs  Conversations
	events *EventLog
	// whatsapp shows WhatsApp's typing indicator; nil: typing is refused on WhatsApp.
	whatsapp func(ctx context.Context, conv routing.Conversation) error
}

// SetWhatsApp makes typing on a WhatsApp conversation show WhatsApp's typing indicator through f
// (outbound.Receipts.Typing).
func (h *TypingHandler) SetWhatsApp(f func(ctx context.Context, conv routing.Conversation) error) {
	h.whatsapp = f
}

// NewTypingHandler builds the typing endpoint.
func NewTypingHandler(convs Conversations, events *EventLog) *TypingHandler {
	return &TypingHandler{convs: convs, events: events}
}

// Register mounts the route on an authenticated /v1 router.
func (h *TypingHandler) Register(v1 fiber.Router) {
	v1.Post("/conversations/:id/typing", h.typing)
}

func (h *TypingHandler) typing(c *fiber.Ctx) error {
	id := c.Params("id")
	if !configs.SafeID(id) {
		return errBadID
	}
	id = strings.Clone(id)
	conv, err := h.convs.Conversation(c.UserContext(), id)
	switch {
	case errors.Is(err, routing.ErrNotFound):
		return errConvNotFound
	case err != nil:
		return err
	case conv.Agent != auth.Caller(c).Agent:
		return errNotYourConv
	case conv.State != "open":
		return errConvClosed
	case conv.Channel == "whatsapp" && h.whatsapp != nil:
		if err := h.whatsapp(c.UserContext(), conv); err != nil {
			return err
		}
		return c.SendStatus(http.StatusNoContent)
	case conv.Channel != webchat.Channel:
		return errNotWebChatConv
	}
	if err := h.events.Announce(c.UserContext(), conv.EntryPoint, conv.Contact.ID, Event{Type: EventTyping, At: time.Now().UTC(),
		Conversation: &EventConv{ID: conv.ID}}); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}
