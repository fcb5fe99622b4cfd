package outbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/routing"
)

// Handler serves the agents' outbound endpoints.
type Handler struct {
	svc      *Service
	receipts *Receipts
	client   redis.UniversalClient
	keys     keyspace.Space
}

// NewHandler builds the handler; client and keys hold the idempotency records.
func NewHandler(svc *Service, client redis.UniversalClient, ks keyspace.Space) *Handler {
	return &Handler{svc: svc, client: client, keys: ks}
}

// SetReceipts serves POST /v1/conversations/{id}/read with r.
func (h *Handler) SetReceipts(r *Receipts) { h.receipts = r }

// Register mounts the routes on the authenticated /v1 group.
func (h *Handler) Register(v1 fiber.Router) {
	v1.Get("/templates", h.templates)
	v1.Post("/conversations", h.start)
	v1.Post("/conversations/:id/messages", h.reply)
	if h.receipts != nil {
		v1.Post("/conversations/:id/read", h.read)
	}
}

func (h *Handler) templates(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"templates": h.svc.Catalogue().List()})
}

func (h *Handler) start(c *fiber.Ctx) error {
	agent := auth.Caller(c).Agent
	return h.idempotent(c, agent, func(ctx context.Context) (Accepted, error) {
		var req NewConversation
		if err := httpx.BindJSON(c, &req); err != nil {
			return Accepted{}, err
		}
		ans, err := h.svc.Start(ctx, agent, req)
		return ans, httpError(err)
	})
}

func (h *Handler) reply(c *fiber.Ctx) error {
	id := c.Params("id")
	if !validID(id) {
		return errBadID
	}
	agent := auth.Caller(c).Agent
	if isMultipart(c) {
		return h.idempotent(c, agent, func(ctx context.Context) (Accepted, error) {
			f, err := readFile(c)
			if err != nil {
				return Accepted{}, httpError(err) // a form without its one file is the client's 422
			}
			ans, err := h.svc.ReplyFile(ctx, agent, id, f)
			return ans, httpError(err)
		})
	}
	return h.idempotent(c, agent, func(ctx context.Context) (Accepted, error) {
		var body ReplyBody
		if err := httpx.BindJSON(c, &body); err != nil {
			return Accepted{}, err
		}
		ans, err := h.svc.Reply(ctx, agent, id, body)
		return ans, httpError(err)
	})
}

var (
	errBadID          = httpx.ErrBadID
	errBadIdemKey     = httpx.ErrBadIdempotencyKey
	errIdemInProgress = httpx.ErrIdempotencyRunning
	errIdemReused     = httpx.ErrIdempotencyReused
)

// httpError maps the service's and routing's domain errors to the catalogue.
func httpError(err error) error {
	var bad *InvalidRequestError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &bad):
		fields := make([]httpx.FieldError, len(bad.Fields))
		for i, f := range bad.Fields {
			fields[i] = httpx.FieldError{Field: f.Field, Message: f.Message}
		}
		return httpx.ErrValidation.WithFields(fields...)
	case errors.Is(err, routing.ErrNotLoggedIn):
		return httpx.ErrNotLoggedIn
	case errors.Is(err, routing.ErrAtCapacity):
		return httpx.ErrAtCapacity
	case errors.Is(err, routing.ErrConversationTaken):
		return httpx.ErrConversationTaken
	case errors.Is(err, routing.ErrConversationNotFound):
		return httpx.ErrConversationNotFound
	case errors.Is(err, routing.ErrNotAssigned):
		return httpx.ErrNotYourConversation
	case errors.Is(err, routing.ErrConversationClosed):
		return httpx.ErrConversationClosed
	case errors.Is(err, routing.ErrNotAccepted):
		return httpx.ErrCardNotAccepted
	case errors.Is(err, routing.ErrWindowClosed):
		return httpx.ErrWindowClosed
	case errors.Is(err, ErrNoSender):
		return httpx.ErrChannelNotSupported.WithMessage("replies on this channel are not available")
	}
	return err
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			return false
		}
	}
	return true
}

// Idempotency records live a day; a request still running holds its key for at most a minute.
const (
	idemTTL     = 24 * time.Hour
	idemPending = time.Minute
)

type idemRecord struct {
	Request string   `json:"request"` // hash of method, path and body
	Answer  Accepted `json:"answer"`
}

// idempotent runs do once per (agent, Idempotency-Key): a repeat of a finished request gets the first
// answer and does nothing; a repeat while the first runs gets 409; the key with another request, 422.
// A request that fails leaves no record, so it can be corrected and sent again with the same key.
func (h *Handler) idempotent(c *fiber.Ctx, agent string, do func(ctx context.Context) (Accepted, error)) error {
	ctx := c.UserContext()
	if len(c.Request().Header.PeekAll("Idempotency-Key")) > 1 {
		// Which of two keys counts is up to each proxy and server on the way: refused, not guessed.
		return errBadIdemKey.WithMessage("send one Idempotency-Key header")
	}
	key := c.Get("Idempotency-Key")
	if key == "" {
		ans, err := do(ctx)
		if err != nil {
			return err
		}
		return c.Status(http.StatusAccepted).JSON(ans)
	}
	if len(key) > 255 || !visibleASCII(key) {
		return errBadIdemKey
	}
	sum := sha256.Sum256([]byte(key))
	rkey := h.keys.Key("idem", agent, hex.EncodeToString(sum[:16]))
	req := sha256.New()
	req.Write([]byte(c.Method() + " " + c.Path() + "\n"))
	req.Write(c.Body())
	reqHash := hex.EncodeToString(req.Sum(nil)[:16])

	pending, _ := json.Marshal(idemRecord{Request: reqHash})
	won, err := h.client.SetNX(ctx, rkey, pending, idemPending).Result()
	if err != nil {
		return err
	}
	if !won {
		raw, err := h.client.Get(ctx, rkey).Bytes()
		if errors.Is(err, redis.Nil) { // the first request failed a moment ago: the client may retry
			return errIdemInProgress
		}
		if err != nil {
			return err
		}
		var rec idemRecord
		if json.Unmarshal(raw, &rec) != nil || rec.Request != reqHash {
			return errIdemReused
		}
		if rec.Answer.MessageID == "" {
			return errIdemInProgress
		}
		c.Set("Idempotent-Replayed", "true")
		return c.Status(http.StatusAccepted).JSON(rec.Answer)
	}
	ans, err := do(ctx)
	if err != nil {
		h.client.Del(context.WithoutCancel(ctx), rkey)
		return err
	}
	done, _ := json.Marshal(idemRecord{Request: reqHash, Answer: ans})
	if err := h.client.Set(context.WithoutCancel(ctx), rkey, done, idemTTL).Err(); err != nil {
		// The message is queued; only the replay record is missing.
		h.svc.logger.Warn("could not store an idempotency record", "err", err)
	}
	return c.Status(http.StatusAccepted).JSON(ans)
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
