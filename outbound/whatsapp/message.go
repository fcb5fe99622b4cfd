package whatsapp

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalidMessage marks a message or call argument rejected before any
// request is made. Such a message can never succeed, so it is permanent.
var ErrInvalidMessage = errors.New("whatsapp: invalid message")

// Limits Meta documents for the fields we send.
const (
	MaxTextBody      = 4096 // characters of text.body
	MaxCaption       = 1024 // characters of a media caption
	maxTemplateName  = 512
	maxButtonIndex   = 9                    // TemplateComponent.index: position 0-9
	maxRecipientSize = len("XX.ENT.") + 128 // the longest business-scoped user id
)

// Message is one of TextMessage, TemplateMessage or MediaMessage. The set is
// closed: the request body of each is built by Encode.
type Message interface {
	build() (*request, error)
}

// TextMessage is a free-text message, allowed only inside the customer's
// 24-hour service window.
type TextMessage struct {
	To         string // E.164 number ("+5511999990001") or business-scoped user id ("BR.1502576394655843")
	Body       string
	PreviewURL bool   // render a preview of the first URL in Body
	ReplyTo    string // optional: provider message id (wamid) being replied to
}

// ButtonKind is the sub_type of a template button that takes a parameter.
type ButtonKind string

// Button kinds with a send-time parameter: a quick-reply button carries a
// payload returned in the customer's reply; a URL button a suffix appended to
// the template's dynamic URL.
const (
	QuickReplyButton ButtonKind = "quick_reply"
	URLButton        ButtonKind = "url"
)

// ButtonParam is the parameter of the template button at Index (0-9).
type ButtonParam struct {
	Kind  ButtonKind
	Index int
	Value string
}

// TemplateMessage is an approved template with text parameters, the only way
// to open a conversation outside the 24-hour window.
type TemplateMessage struct {
	To           string
	Name         string
	Language     string // template language and locale code, e.g. "pt_BR"
	HeaderParams []string
	BodyParams   []string
	ButtonParams []ButtonParam
}

// MediaKind is the message type of a MediaMessage.
type MediaKind string

// Media kinds we send.
const (
	MediaImage    MediaKind = "image"
	MediaDocument MediaKind = "document"
	MediaAudio    MediaKind = "audio"
	MediaVideo    MediaKind = "video"
	MediaSticker  MediaKind = "sticker"
)

// MediaMessage sends media by a public link or by an uploaded media id
// (exactly one of them).
type MediaMessage struct {
	To       string
	Kind     MediaKind
	ID       string // uploaded media id
	Link     string // http(s) URL Meta downloads from
	Caption  string // image, document, video
	Filename string // document only
	ReplyTo  string
}

// request is the sendMessage body (components/schemas/Message).
type request struct {
	MessagingProduct string          `json:"messaging_product"`
	RecipientType    string          `json:"recipient_type"`
	To               string          `json:"to,omitempty"`
	Recipient        string          `json:"recipient,omitempty"`
	Type             string          `json:"type"`
	Context          *replyContext   `json:"context,omitempty"`
	Text             *textObject     `json:"text,omitempty"`
	Image            *mediaObject    `json:"image,omitempty"`
	Document         *mediaObject    `json:"document,omitempty"`
	Audio            *mediaObject    `json:"audio,omitempty"`
	Video            *mediaObject    `json:"video,omitempty"`
	Sticker          *mediaObject    `json:"sticker,omitempty"`
	Interactive      *interactiveObj `json:"interactive,omitempty"`
	Template         *templateObject `json:"template,omitempty"`
}

type replyContext struct {
	MessageID string `json:"message_id"`
}

type textObject struct {
	Body       string `json:"body"`
	PreviewURL bool   `json:"preview_url"`
}

type mediaObject struct {
	ID       string `json:"id,omitempty"`
	Link     string `json:"link,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

type templateObject struct {
	Name       string      `json:"name"`
	Language   language    `json:"language"`
	Components []component `json:"components,omitempty"`
}

type language struct {
	Code string `json:"code"`
}

type component struct {
	Type       string      `json:"type"`
	SubType    string      `json:"sub_type,omitempty"`
	Index      string      `json:"index,omitempty"` // a string in Meta's schema
	Parameters []parameter `json:"parameters"`
}

type parameter struct {
	Type    string `json:"type"`
	Text    string `json:"text,omitempty"`
	Payload string `json:"payload,omitempty"`
}

// Encode returns the exact JSON body Send posts for msg, or an error wrapping
// ErrInvalidMessage that names the offending field.
func Encode(msg Message) ([]byte, error) {
	if msg == nil {
		return nil, invalid("message is nil")
	}
	if v := reflect.ValueOf(msg); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, invalid("message is nil")
	}
	req, err := msg.build()
	if err != nil {
		return nil, err
	}
	return req.marshal()
}

func (m TextMessage) build() (*request, error) {
	req, err := newRequest(m.To, "text", m.ReplyTo)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(m.Body) == "" {
		return nil, invalid("body: empty")
	}
	if !utf8.ValidString(m.Body) {
		return nil, invalid("body: not valid UTF-8")
	}
	if n := utf8.RuneCountInString(m.Body); n > MaxTextBody {
		return nil, invalid("body: %d characters, at most %d", n, MaxTextBody)
	}
	req.Text = &textObject{Body: m.Body, PreviewURL: m.PreviewURL}
	return req, nil
}

func (m TemplateMessage) build() (*request, error) {
	req, err := newRequest(m.To, "template", "")
	if err != nil {
		return nil, err
	}
	if m.Name == "" || len(m.Name) > maxTemplateName || strings.TrimSpace(m.Name) != m.Name {
		return nil, invalid("template name: want 1-%d characters without surrounding spaces", maxTemplateName)
	}
	if !isLanguageCode(m.Language) {
		return nil, invalid("template language: want a code like \"en\" or \"pt_BR\"")
	}
	tpl := &templateObject{Name: m.Name, Language: language{Code: m.Language}}
	if len(m.HeaderParams) > 0 {
		params, err := textParams("header", m.HeaderParams)
		if err != nil {
			return nil, err
		}
		tpl.Components = append(tpl.Components, component{Type: "header", Parameters: params})
	}
	if len(m.BodyParams) > 0 {
		params, err := textParams("body", m.BodyParams)
		if err != nil {
			return nil, err
		}
		tpl.Components = append(tpl.Components, component{Type: "body", Parameters: params})
	}
	seen := map[int]bool{}
	for i, b := range m.ButtonParams {
		if b.Index < 0 || b.Index > maxButtonIndex {
			return nil, invalid("button_params[%d]: index %d, want 0-%d", i, b.Index, maxButtonIndex)
		}
		if seen[b.Index] {
			return nil, invalid("button_params[%d]: index %d given twice", i, b.Index)
		}
		seen[b.Index] = true
		if strings.TrimSpace(b.Value) == "" || !utf8.ValidString(b.Value) {
			return nil, invalid("button_params[%d]: empty or invalid value", i)
		}
		c := component{Type: "button", SubType: string(b.Kind), Index: strconv.Itoa(b.Index)}
		switch b.Kind {
		case QuickReplyButton:
			c.Parameters = []parameter{{Type: "payload", Payload: b.Value}}
		case URLButton:
			c.Parameters = []parameter{{Type: "text", Text: b.Value}}
		default:
			return nil, invalid("button_params[%d]: kind %q, want %q or %q", i, b.Kind, QuickReplyButton, URLButton)
		}
		tpl.Components = append(tpl.Components, c)
	}
	req.Template = tpl
	return req, nil
}

func textParams(where string, values []string) ([]parameter, error) {
	params := make([]parameter, len(values))
	for i, v := range values {
		if strings.TrimSpace(v) == "" || !utf8.ValidString(v) {
			return nil, invalid("%s_params[%d]: empty or invalid text", where, i)
		}
		params[i] = parameter{Type: "text", Text: v}
	}
	return params, nil
}

func (m MediaMessage) build() (*request, error) {
	switch m.Kind {
	case MediaImage, MediaDocument, MediaAudio, MediaVideo, MediaSticker:
	default:
		return nil, invalid("media kind %q, want image, document, audio, video or sticker", m.Kind)
	}
	req, err := newRequest(m.To, string(m.Kind), m.ReplyTo)
	if err != nil {
		return nil, err
	}
	if (m.ID == "") == (m.Link == "") {
		return nil, invalid("media: want exactly one of id and link")
	}
	if m.Link != "" {
		u, err := url.Parse(m.Link)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, invalid("media link: want an absolute http(s) URL")
		}
	}
	if m.ID != "" && strings.TrimSpace(m.ID) != m.ID {
		return nil, invalid("media id: surrounding spaces")
	}
	if m.Caption != "" {
		if m.Kind == MediaAudio || m.Kind == MediaSticker {
			return nil, invalid("caption: %s takes no caption", m.Kind)
		}
		if n := utf8.RuneCountInString(m.Caption); n > MaxCaption || !utf8.ValidString(m.Caption) {
			return nil, invalid("caption: invalid or longer than %d characters", MaxCaption)
		}
	}
	if m.Filename != "" && m.Kind != MediaDocument {
		return nil, invalid("filename: only a document takes a filename")
	}
	obj := &mediaObject{ID: m.ID, Link: m.Link, Caption: m.Caption, Filename: m.Filename}
	switch m.Kind {
	case MediaImage:
		req.Image = obj
	case MediaDocument:
		req.Document = obj
	case MediaAudio:
		req.Audio = obj
	case MediaVideo:
		req.Video = obj
	case MediaSticker:
		req.Sticker = obj
	}
	return req, nil
}

// The checks below run on every send; written out, they cost a fraction of the regular expressions
// they implement (each quoted above it).

// isBSUID: a business-scoped user id, country, optional ".ENT" for a parent id, then up to 128
// letters and digits (BR.1502576394655843, HK.ENT.abc123): ^[A-Z]{2}(\.ENT)?\.[A-Za-z0-9]{1,128}$
func isBSUID(s string) bool {
	if len(s) < 4 || !isUpper(s[0]) || !isUpper(s[1]) || s[2] != '.' {
		return false
	}
	rest := s[3:]
	if id, ok := strings.CutPrefix(rest, "ENT."); ok && alnumRun(id, 1, 128) {
		return true
	}
	return alnumRun(rest, 1, 128)
}

// isPhoneDigits: ^[1-9][0-9]{6,14}$
func isPhoneDigits(s string) bool {
	return len(s) >= 7 && len(s) <= 15 && s[0] != '0' && digitRun(s, 1, 15)
}

// isLanguageCode: ^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$
func isLanguageCode(s string) bool {
	lang, region, hasRegion := strings.Cut(s, "_")
	if len(lang) < 2 || len(lang) > 3 {
		return false
	}
	for i := 0; i < len(lang); i++ {
		if lang[i] < 'a' || lang[i] > 'z' {
			return false
		}
	}
	return !hasRegion || alnumRun(region, 2, 4)
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// digitRun: min to max ASCII digits (^[0-9]{min,max}$).
func digitRun(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// alnumRun: min to max ASCII letters and digits (^[A-Za-z0-9]{min,max}$).
func alnumRun(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func newRequest(to, typ, replyTo string) (*request, error) {
	req := &request{MessagingProduct: "whatsapp", RecipientType: "individual", Type: typ}
	field, value, err := Recipient(to)
	if err != nil {
		return nil, err
	}
	if field == "to" {
		req.To = value
	} else {
		req.Recipient = value
	}
	if replyTo != "" {
		if strings.TrimSpace(replyTo) != replyTo || len(replyTo) > 256 {
			return nil, invalid("reply_to: not a message id")
		}
		req.Context = &replyContext{MessageID: replyTo}
	}
	return req, nil
}

// Recipient tells how to addresses a message: an E.164 number goes in "to" as
// digits (Meta's examples and wa_id carry no "+"); a business-scoped user id
// goes in "recipient", which Meta added for users known only by that id.
// The error never repeats the input, which may be a phone number.
func Recipient(to string) (field, value string, err error) {
	if to == "" {
		return "", "", invalid("to: empty")
	}
	if len(to) <= maxRecipientSize && isBSUID(to) {
		return "recipient", to, nil
	}
	digits := strings.TrimPrefix(to, "+")
	if isPhoneDigits(digits) {
		return "to", digits, nil
	}
	return "", "", invalid("to: want an E.164 number (+ and 7-15 digits) or a business-scoped user id")
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidMessage}, args...)...)
}
