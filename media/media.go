// Package media serves customers' files: GET /v1/messages/{id}/media finds the message's media id,
// asks the provider where the file is (WhatsApp: GET /{version}/{media-id} with the number's token),
// downloads it with the token, checks its size and sha256, keeps it in a per-replica disk cache and
// streams it with its type and file name. The conversation's holder or a supervisor reach it with
// their Bearer token; integrations with a time-limited signed link (internal/medialink).
package media

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"os"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/singleflight"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/medialink"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/routing"
)

// Store finds messages and their conversations (routing.Router).
type Store interface {
	Message(ctx context.Context, id string) (routing.Message, error)
	Conversation(ctx context.Context, id string) (routing.Conversation, error)
}

// Provider looks media up and downloads it (*whatsapp.Client).
type Provider interface {
	MediaURL(ctx context.Context, phoneNumberID, token, mediaID string) (whatsapp.MediaInfo, error)
	Download(ctx context.Context, mediaURL, token string) (io.ReadCloser, error)
}

// Options are the handler's collaborators.
type Options struct {
	Store    Store
	Provider Provider
	Tokens   map[string]string // phone number id → access token
	Cache    *Cache
	Links    *medialink.Signer
	Verifier *auth.Verifier
	Logger   *slog.Logger
	// MaxBytes refuses files larger than this (default: Meta's largest, 100 MB).
	MaxBytes int64
	// FetchTimeout bounds one lookup and download (default 2 minutes).
	FetchTimeout time.Duration
}

// Handler serves the media endpoint.
type Handler struct {
	o     Options
	group singleflight.Group
}

// NewHandler builds the handler.
func NewHandler(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 100 * whatsapp.MB
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 2 * time.Minute
	}
	o.Logger = o.Logger.With("component", "media")
	return &Handler{o: o}
}

// Register mounts GET /v1/messages/{id}/media on the app itself, before the authenticated /v1
// group, because a signed link carries no Bearer token: the handler checks one or the other.
func (h *Handler) Register(app fiber.Router) {
	app.Get("/v1/messages/:id/media", h.serve)
}

// Ref is a message's file as its payload describes it: a customer's media (payload.media) or one
// an agent sent by id (the payload itself).
type Ref struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	Filename string `json:"filename"`
}

// RefOf reads the file of a message; ok is false when it has none held by the provider.
func RefOf(m routing.Message) (Ref, bool) {
	var p struct {
		Ref
		Media *Ref `json:"media"`
	}
	if len(m.Payload) == 0 || json.Unmarshal(m.Payload, &p) != nil {
		return Ref{}, false
	}
	r := p.Ref
	if p.Media != nil {
		r = *p.Media
	}
	if r.ID == "" || !whatsapp.ValidMediaID(r.ID) {
		return Ref{}, false
	}
	return r, true
}

func (h *Handler) serve(c *fiber.Ctx) error {
	id := c.Params("id")
	if !configs.SafeID(id) {
		return httpx.ErrBadID
	}
	id = strings.Clone(id)
	ctx := c.UserContext()
	var caller *auth.Principal
	if sig := c.Query("sig"); sig != "" || c.Query("exp") != "" {
		if h.o.Links == nil || h.o.Links.Verify(id, c.Query("exp"), sig) != nil {
			return httpx.ErrInvalidMediaLink
		}
	} else {
		token, ok := auth.BearerToken(c.Get(fiber.HeaderAuthorization))
		if !ok {
			return httpx.ErrInvalidToken
		}
		p, err := h.o.Verifier.Verify(token)
		if err != nil {
			return httpx.ErrInvalidToken.Wrap(err)
		}
		caller = &p
	}
	msg, err := h.o.Store.Message(ctx, id)
	if errors.Is(err, routing.ErrNotFound) {
		return httpx.ErrMessageNotFound
	}
	if err != nil {
		return err
	}
	conv, err := h.o.Store.Conversation(ctx, msg.ConversationID)
	if errors.Is(err, routing.ErrNotFound) {
		return httpx.ErrMessageNotFound
	}
	if err != nil {
		return err
	}
	if caller != nil && conv.Agent != caller.Agent && !caller.Role.AtLeast(auth.RoleSupervisor) {
		return httpx.ErrNotYourConversation
	}
	ref, ok := RefOf(msg)
	if !ok || conv.Channel != "whatsapp" {
		return httpx.ErrNoMedia
	}
	number := conv.EntryPoint
	key := number + ":" + ref.ID
	f, size, hit := h.o.Cache.Open(key)
	if !hit {
		_, err, _ := h.group.Do(key, func() (any, error) {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.o.FetchTimeout)
			defer cancel()
			return nil, h.fetch(fctx, number, key, ref)
		})
		if err != nil {
			return err
		}
		if f, size, hit = h.o.Cache.Open(key); !hit {
			return httpx.ErrMediaUnavailable
		}
	}
	typ := whatsapp.NormalType(ref.MimeType)
	if typ == "" {
		typ = "application/octet-stream"
	}
	c.Set(fiber.HeaderContentType, typ)
	c.Set(fiber.HeaderContentDisposition, disposition(typ, downloadName(msg, ref, typ)))
	// The file is the customer's: never let a browser run it on the gateway's origin.
	c.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'; media-src 'self'")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set(fiber.HeaderCacheControl, "private, max-age=3600")
	return c.SendStream(f, int(size))
}

// fetch looks the media up, downloads it into the cache, and checks it on the way: over the
// declared size, a size or sha256 other than Meta's, and nothing is kept.
func (h *Handler) fetch(ctx context.Context, number, key string, ref Ref) error {
	token, ok := h.o.Tokens[number]
	if !ok {
		return httpx.ErrNoMedia.WithMessage("the conversation's WhatsApp number is not configured")
	}
	info, err := h.o.Provider.MediaURL(ctx, number, token, ref.ID)
	if err != nil {
		return h.providerError("lookup", ref.ID, err)
	}
	if info.Size > h.o.MaxBytes {
		return httpx.ErrMediaTooLarge.WithMessage("the file is larger than %s", whatsapp.Size(h.o.MaxBytes))
	}
	body, err := h.o.Provider.Download(ctx, info.URL, token)
	if err != nil {
		return h.providerError("download", ref.ID, err)
	}
	defer body.Close()
	tmp, err := h.o.Cache.Temp()
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	limit := h.o.MaxBytes
	if info.Size >= 0 {
		limit = info.Size
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), io.LimitReader(body, limit+1))
	if err != nil {
		h.o.Logger.Warn("media download cut short", "media_id", ref.ID, "err", err)
		return httpx.ErrMediaUnavailable
	}
	got := sum.Sum(nil)
	if (info.Size >= 0 && n != info.Size) || n > h.o.MaxBytes || !sameSum(got, info.SHA256) || !sameSum(got, ref.SHA256) {
		h.o.Logger.Warn("media does not match its size or checksum; not served", "media_id", ref.ID,
			"size", n, "declared_size", info.Size)
		return httpx.ErrMediaMismatch
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	keep = true
	return h.o.Cache.Put(key, tmp.Name(), n)
}

// sameSum compares a sha256 with one Meta gave, hex (the media lookup) or base64 (webhooks); an
// empty one is not checked.
func sameSum(got []byte, given string) bool {
	given = strings.TrimSpace(given)
	if given == "" {
		return true
	}
	if b, err := hex.DecodeString(given); err == nil && len(b) == sha256.Size {
		return string(b) == string(got)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(given); err == nil && len(b) == sha256.Size {
			return string(b) == string(got)
		}
	}
	return false
}

func (h *Handler) providerError(step, mediaID string, err error) error {
	if whatsapp.IsMediaGone(err) {
		return httpx.ErrMediaExpired
	}
	h.o.Logger.Warn("media "+step+" failed", "media_id", mediaID, "err", err)
	return httpx.ErrMediaUnavailable
}

// inlineTypes are shown in the console; anything else is served as an attachment.
func inline(typ string) bool {
	switch {
	case typ == "image/svg+xml":
		return false
	case strings.HasPrefix(typ, "image/"), strings.HasPrefix(typ, "audio/"), strings.HasPrefix(typ, "video/"), typ == "application/pdf":
		return true
	}
	return false
}

func disposition(typ, name string) string {
	kind := "attachment"
	if inline(typ) {
		kind = "inline"
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": name}); v != "" {
		return v
	}
	return kind
}

// downloadName is the customer's file name (documents), else one made of the kind, the message id and
// the type's usual extension.
func downloadName(m routing.Message, ref Ref, typ string) string {
	if name := strings.TrimSpace(ref.Filename); name != "" {
		name = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
				return '_'
			}
			return r
		}, name)
		if len(name) > 200 {
			name = name[:200]
		}
		return name
	}
	ext := ""
	if exts, _ := mime.ExtensionsByType(typ); len(exts) > 0 {
		ext = exts[0]
	}
	switch typ {
	case "audio/ogg":
		ext = ".ogg"
	case "image/jpeg":
		ext = ".jpg"
	}
	kind := m.Kind
	if kind == "" {
		kind = "file"
	}
	return kind + "-" + m.ID + ext
}
