// Package simulate plays the providers' part: it builds notifications shaped like Meta's WhatsApp
// Cloud API and the WebChat webhook, signed as the gateway expects, for the simulate command, load
// generators and end-to-end tests.
package simulate

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// WhatsAppMessage describes one customer message to wrap in a Cloud API notification.
type WhatsAppMessage struct {
	PhoneNumberID string // the business number that receives it (an entry point)
	DisplayNumber string
	From          string // the customer's number, E.164 with or without '+'
	UserID        string // business-scoped user id; optional
	Name          string
	ID            string // wamid; generated when empty
	Text          string
	ImageID       string // an image message instead of text when set
	Caption       string
	// Media, when set, makes it a media message as Meta sends one (with the file's real sha256).
	Media *WhatsAppMedia
	At    time.Time
}

// WhatsAppMedia is the file of a media message: kind is image, audio, video, document or sticker;
// SHA256 is base64, as Meta's webhooks give it.
type WhatsAppMedia struct {
	Kind, ID, MimeType, SHA256, Filename, Caption string
	Voice                                         bool
}

// WhatsAppStatus describes one status notification of an outbound message.
type WhatsAppStatus struct {
	PhoneNumberID string
	MessageID     string // the wamid the gateway's send returned
	Status        string // sent | delivered | read | played | failed | deleted | warning (failed carries an error)
	RecipientID   string
	ErrorCode     int
	ErrorTitle    string
	At            time.Time
}

// NewMessageID returns a random id in Meta's wamid style.
func NewMessageID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return "wamid." + strings.ToUpper(hex.EncodeToString(b))
}

func unix(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return strconv.FormatInt(t.Unix(), 10)
}

func digits(phone string) string { return strings.TrimPrefix(phone, "+") }

// WhatsAppNotification builds a Cloud API webhook body carrying one message.
func WhatsAppNotification(m WhatsAppMessage) []byte {
	if m.ID == "" {
		m.ID = NewMessageID()
	}
	contact := map[string]any{"profile": map[string]any{"name": m.Name}}
	msg := map[string]any{"id": m.ID, "timestamp": unix(m.At)}
	if m.From != "" {
		contact["wa_id"] = digits(m.From)
		msg["from"] = digits(m.From)
	}
	if m.UserID != "" {
		contact["user_id"] = m.UserID
		msg["from_user_id"] = m.UserID
	}
	if md := m.Media; md != nil {
		obj := map[string]any{"id": md.ID, "mime_type": md.MimeType, "sha256": md.SHA256}
		if md.Caption != "" {
			obj["caption"] = md.Caption
		}
		if md.Filename != "" {
			obj["filename"] = md.Filename
		}
		if md.Voice {
			obj["voice"] = true
		}
		msg["type"] = md.Kind
		msg[md.Kind] = obj
	} else if m.ImageID != "" {
		msg["type"] = "image"
		// No sha256: the simulated id names no real file whose checksum is known (the gateway still
		// checks the download against Meta's lookup).
		msg["image"] = map[string]any{"id": m.ImageID, "mime_type": "image/jpeg", "caption": m.Caption}
	} else {
		msg["type"] = "text"
		msg["text"] = map[string]any{"body": m.Text}
	}
	value := map[string]any{
		"messaging_product": "whatsapp",
		"metadata":          map[string]any{"display_phone_number": m.DisplayNumber, "phone_number_id": m.PhoneNumberID},
		"contacts":          []any{contact},
		"messages":          []any{msg},
	}
	return wrap(value)
}

// WhatsAppStatusNotification builds a Cloud API webhook body carrying one status.
func WhatsAppStatusNotification(s WhatsAppStatus) []byte {
	st := map[string]any{"id": s.MessageID, "status": s.Status, "timestamp": unix(s.At), "recipient_id": digits(s.RecipientID)}
	if s.Status == "failed" {
		st["errors"] = []any{map[string]any{"code": s.ErrorCode, "title": s.ErrorTitle, "message": s.ErrorTitle,
			"error_data": map[string]any{"details": s.ErrorTitle}}}
	}
	value := map[string]any{
		"messaging_product": "whatsapp",
		"metadata":          map[string]any{"display_phone_number": "", "phone_number_id": s.PhoneNumberID},
		"statuses":          []any{st},
	}
	return wrap(value)
}

func wrap(value map[string]any) []byte {
	body, _ := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry":  []any{map[string]any{"id": "102290129340398", "changes": []any{map[string]any{"value": value, "field": "messages"}}}},
	})
	return body
}

// SignWhatsApp returns the X-Hub-Signature-256 value of body under the app secret.
func SignWhatsApp(body []byte, appSecret string) string {
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// WebChatMessage describes one visitor message for the signed WebChat webhook.
type WebChatMessage struct {
	Site, VisitorID, VisitorName, VisitorEmail string
	ID, Text, PageURL                          string
}

// WebChatBody builds the WebChat webhook body as a site sends it.
func WebChatBody(m WebChatMessage) []byte {
	if m.ID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		m.ID = "m-" + hex.EncodeToString(b)
	}
	visitor := map[string]any{"id": m.VisitorID, "name": m.VisitorName}
	if m.VisitorEmail != "" {
		visitor["email"] = m.VisitorEmail
	}
	body, _ := json.Marshal(map[string]any{
		"site":    m.Site,
		"visitor": visitor,
		"message": map[string]any{"id": m.ID, "text": m.Text, "page_url": m.PageURL},
	})
	return body
}

// SignWebChat returns the X-Chatgate-Timestamp and X-Chatgate-Signature values for body:
// sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" with the site secret>.
func SignWebChat(body []byte, secret string, at time.Time) (timestamp, signature string) {
	timestamp = strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return timestamp, "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
