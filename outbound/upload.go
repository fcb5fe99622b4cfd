package outbound

import (
	"context"
	"errors"
	"mime"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/routing"
)

// Uploader puts a file on the provider and returns its media id (*whatsapp.Client).
type Uploader interface {
	Upload(ctx context.Context, phoneNumberID, token, mimeType, filename string, data []byte) (string, error)
}

// File is a file an agent sends from their computer (multipart reply).
type File struct {
	Name     string
	MimeType string // as the browser declared it; the extension decides when it is empty or generic
	Data     []byte
	Caption  string
	// Kind, when set, overrides the kind the type implies (a PNG sent as a document).
	Kind string
}

// ReplyFile checks a file against WhatsApp's limits for its kind, uploads it to the provider during
// the request (the gateway keeps no copy) and sends it by id through the ordered reply path. A file
// over the limit is a 413, a type the kind does not take a 415, each naming the limit.
func (s *Service) ReplyFile(ctx context.Context, agent, conversationID string, f File) (Accepted, error) {
	typ := whatsapp.NormalType(f.MimeType)
	if typ == "" || typ == "application/octet-stream" {
		typ = whatsapp.NormalType(mime.TypeByExtension(strings.ToLower(filepath.Ext(f.Name))))
	}
	kind := whatsapp.MediaKind(f.Kind)
	if kind == "" {
		kind = whatsapp.KindOfType(typ)
		if kind == "" {
			return Accepted{}, httpx.ErrMediaTypeRefused.WithMessage("WhatsApp does not accept %s; it takes images (JPEG, PNG), audio (AAC, AMR, MP3, M4A, OGG/Opus), video (MP4, 3GP), documents (PDF, text, Office) and stickers (WebP)", orUnknownType(typ))
		}
	}
	var bad []FieldError
	if _, ok := whatsapp.LimitOf(kind); !ok {
		bad = append(bad, FieldError{Field: "kind", Message: "must be image, audio, video, document or sticker"})
	}
	if n := utf8.RuneCountInString(f.Caption); n > whatsapp.MaxCaption {
		bad = append(bad, FieldError{Field: "caption", Message: "is longer than 1024 characters"})
	}
	if f.Caption != "" && (kind == whatsapp.MediaAudio || kind == whatsapp.MediaSticker) {
		bad = append(bad, FieldError{Field: "caption", Message: string(kind) + " takes no caption"})
	}
	if len(f.Data) == 0 {
		bad = append(bad, FieldError{Field: "file", Message: "is empty"})
	}
	if len(bad) > 0 {
		return Accepted{}, invalid(bad...)
	}
	if p := whatsapp.CheckMedia(kind, typ, f.Data); p != nil {
		if p.TooLarge {
			return Accepted{}, httpx.ErrMediaTooLarge.WithMessage("%s", p.Limit)
		}
		return Accepted{}, httpx.ErrMediaTypeRefused.WithMessage("%s", p.Limit)
	}
	conv, err := s.whatsappConversation(ctx, agent, conversationID)
	if err != nil {
		return Accepted{}, err
	}
	token, ok := s.tokens[conv.EntryPoint]
	if !ok || s.uploader == nil {
		return Accepted{}, httpx.ErrChannelNotSupported.WithMessage("files cannot be sent from this WhatsApp number: it is not configured for sending")
	}
	name := filepath.Base(strings.ReplaceAll(f.Name, "\\", "/"))
	if len(name) > 240 {
		name = name[:240]
	}
	id, err := s.uploader.Upload(ctx, conv.EntryPoint, token, typ, name, f.Data)
	if err != nil {
		s.logger.Warn("media upload failed", "conversation_id", conv.ID, "err", err)
		var we *whatsapp.Error
		if errors.As(err, &we) && (we.Class == whatsapp.Permanent || we.Class == whatsapp.Auth) {
			return Accepted{}, httpx.ErrProviderRefused.WithMessage("WhatsApp refused the file: %s", strings.TrimSpace(we.Title+" "+we.Details))
		}
		return Accepted{}, httpx.ErrMediaUnavailable.WithMessage("WhatsApp could not be reached to upload the file; retry")
	}
	m := &Media{Kind: string(kind), ID: id, Caption: f.Caption, MimeType: typ, Size: int64(len(f.Data))}
	if kind == whatsapp.MediaDocument {
		m.Filename = name
	}
	return s.Reply(ctx, agent, conversationID, ReplyBody{Media: m})
}

func orUnknownType(t string) string {
	if t == "" || t == "application/octet-stream" {
		return "a file of unknown type"
	}
	return t
}

// whatsappConversation is the agent's open WhatsApp conversation, or why it cannot take WhatsApp's
// own kinds of message.
func (s *Service) whatsappConversation(ctx context.Context, agent, id string) (routing.Conversation, error) {
	conv, err := s.router.Conversation(ctx, id)
	switch {
	case errors.Is(err, routing.ErrNotFound):
		return conv, routing.ErrConversationNotFound
	case err != nil:
		return conv, err
	case conv.Agent != agent:
		return conv, routing.ErrNotAssigned
	case conv.State != "open":
		return conv, routing.ErrConversationClosed
	case conv.Channel != topology.WhatsApp:
		return conv, httpx.ErrChannelNotSupported.WithMessage("files, buttons and lists are sent on WhatsApp only")
	}
	return conv, nil
}
