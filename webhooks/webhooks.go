// Package webhooks receives providers' notifications. Each provider (a sub-package) verifies the raw
// request and parses its payload into the normalized messages and statuses defined here; the HTTP
// handler hands them to routing, which records them durably before the provider gets its 2xx.
package webhooks

import (
	"encoding/json"
	"errors"
	"time"
)

// Errors a provider returns; the handler maps them to HTTP answers.
var (
	// ErrUnsigned: no signature, or a signature header that cannot be read (401).
	ErrUnsigned = errors.New("request is not signed")
	// ErrBadSignature: the signature does not match the body under any configured secret (401).
	ErrBadSignature = errors.New("signature does not match")
	// ErrInvalidJSON: the body is not JSON at all (400).
	ErrInvalidJSON = errors.New("body is not valid JSON")
	// ErrNotUnderstood: valid JSON the provider cannot read; acknowledged so it is not retried forever.
	ErrNotUnderstood = errors.New("payload not understood")
	// ErrForeignObject: a notification about something other than messaging (acknowledged, ignored).
	ErrForeignObject = errors.New("notification object is not handled")
)

// Rejection is a provider's own refusal of a verified request (an oversized or incomplete message):
// Reason is one of the reasons below, Message tells the sender what to fix. The handler answers it
// and records nothing.
type Rejection struct {
	Reason  error
	Message string
}

// Reasons of a Rejection.
var (
	// ErrInvalidMessage: a field is missing or malformed (422).
	ErrInvalidMessage = errors.New("message is invalid")
	// ErrTooManyAttachments: more attachments than a message may carry (413).
	ErrTooManyAttachments = errors.New("message has too many attachments")
	// ErrMessageTooLong: the text is over the configured length (413).
	ErrMessageTooLong = errors.New("message text is too long")
)

func (r *Rejection) Error() string { return r.Reason.Error() + ": " + r.Message }

func (r *Rejection) Unwrap() error { return r.Reason }

// Provider verifies and parses one provider's webhook requests. It knows nothing of HTTP frameworks.
type Provider interface {
	// Verify checks the request's signature over the raw body before anything parses it.
	Verify(header func(name string) string, body []byte) error
	// Parse turns a verified body into normalized messages and statuses.
	Parse(body []byte) (Notification, error)
}

// Handshaker is implemented by providers that verify the endpoint with a GET (Meta's hub.challenge).
type Handshaker interface {
	Handshake(query func(name string) string) (challenge string, ok bool)
}

// Notification is what one webhook request carried.
type Notification struct {
	Messages []Message `json:"messages"`
	Statuses []Status  `json:"statuses"`
	Skipped  []Skipped `json:"skipped,omitempty"`
}

// Message is a customer's message in normalized form.
type Message struct {
	Channel           string          `json:"channel"`
	EntryPoint        string          `json:"entry_point"`
	EntryPointDisplay string          `json:"entry_point_display,omitempty"`
	Contact           Contact         `json:"contact"`
	ID                string          `json:"id"`
	At                time.Time       `json:"at"`
	Kind              string          `json:"kind"`
	Text              string          `json:"text,omitempty"`
	Media             *Media          `json:"media,omitempty"`
	Location          *Location       `json:"location,omitempty"`
	Contacts          json.RawMessage `json:"contacts,omitempty"`
	Reaction          *Reaction       `json:"reaction,omitempty"`
	Reply             *Reply          `json:"reply,omitempty"`
	ReplyTo           string          `json:"reply_to,omitempty"`
	Forwarded         bool            `json:"forwarded,omitempty"`
	Referral          *Referral       `json:"referral,omitempty"`
	Order             *Order          `json:"order,omitempty"`
	// ReferredProduct is the catalog item the customer asked about ("Message business" on a product).
	ReferredProduct *Product        `json:"referred_product,omitempty"`
	Errors          []ProviderError `json:"errors,omitempty"`
	// Raw is the provider's JSON of a message the parser does not fully normalize (bounded to
	// MaxRaw; RawOmitted says when it was larger).
	Raw        json.RawMessage `json:"raw,omitempty"`
	RawOmitted bool            `json:"raw_omitted,omitempty"`
	// Attachments are further files of one message (WebChat sends several by URL).
	Attachments []Media `json:"attachments,omitempty"`
	// PageURL is the web page the customer wrote from (WebChat).
	PageURL string `json:"page_url,omitempty"`
	// Sender scopes ID for deduplication when the id is chosen by someone other than the provider
	// (see routing.Inbound.Sender); empty when the provider's ids are unique on their own.
	Sender string `json:"-"`
	// Unrecognized: a kind the provider's parser does not know (kept in Raw); the handler logs it so
	// a new kind from the provider is noticed.
	Unrecognized bool `json:"-"`
	// Notice: the provider's own message about the customer (WhatsApp's system messages), not the
	// customer writing: it is a note in the open conversation and opens none.
	Notice bool `json:"notice,omitempty"`
	// Previous holds the identifiers a notice says the customer no longer has (a changed number, a
	// new business-scoped user id); Contact holds the new ones. Routing moves them on the contact.
	Previous *Contact `json:"previous,omitempty"`
}

// Contact identifies the customer. ID is the provider's main id for it: the business-scoped user id
// when the provider sends one, else the phone-based id; routing finds the customer by every
// identifier here (WaID, UserID, ParentUserID, Username), so one customer stays one contact.
type Contact struct {
	ID           string `json:"id"`
	WaID         string `json:"wa_id,omitempty"`
	UserID       string `json:"user_id,omitempty"`
	ParentUserID string `json:"parent_user_id,omitempty"`
	Name         string `json:"name,omitempty"`
	Username     string `json:"username,omitempty"`
	Phone        string `json:"phone,omitempty"`
	Email        string `json:"email,omitempty"`
}

// Media references an attachment held by the provider (by id) or on the web (by URL).
type Media struct {
	ID       string `json:"id,omitempty"`
	URL      string `json:"url,omitempty"`
	MimeType string `json:"mime_type,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
	Voice    bool   `json:"voice,omitempty"`
	Animated bool   `json:"animated,omitempty"`
}

// Location is a shared place.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name,omitempty"`
	Address   string  `json:"address,omitempty"`
	URL       string  `json:"url,omitempty"`
}

// Reaction is an emoji on an earlier message (empty emoji: removed).
type Reaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
}

// Reply is the customer's choice of a button, list row or template quick reply.
type Reply struct {
	Type        string `json:"type"`
	ID          string `json:"id,omitempty"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	Payload     string `json:"payload,omitempty"`
}

// Referral is the ad or post a click-to-chat conversation started from.
type Referral struct {
	SourceURL    string `json:"source_url,omitempty"`
	SourceID     string `json:"source_id,omitempty"`
	SourceType   string `json:"source_type,omitempty"`
	Headline     string `json:"headline,omitempty"`
	Body         string `json:"body,omitempty"`
	MediaType    string `json:"media_type,omitempty"`
	ImageURL     string `json:"image_url,omitempty"`
	VideoURL     string `json:"video_url,omitempty"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	ClickID      string `json:"click_id,omitempty"`
	// WelcomeMessage is the ad's greeting the customer saw before writing.
	WelcomeMessage string `json:"welcome_message,omitempty"`
}

// Order is a cart the customer sent from a catalog.
type Order struct {
	CatalogID string      `json:"catalog_id,omitempty"`
	Text      string      `json:"text,omitempty"`
	Items     []OrderItem `json:"items"`
}

// OrderItem is one line of an order.
type OrderItem struct {
	ProductID string  `json:"product_retailer_id"`
	Quantity  float64 `json:"quantity"`
	ItemPrice float64 `json:"item_price"`
	Currency  string  `json:"currency,omitempty"`
}

// Product is a catalog item.
type Product struct {
	CatalogID string `json:"catalog_id,omitempty"`
	ProductID string `json:"product_retailer_id,omitempty"`
}

// MaxRaw bounds the provider JSON kept with one message.
const MaxRaw = 64 << 10

// ProviderError is an error the provider reports on a message or status.
type ProviderError struct {
	Code    int    `json:"code"`
	Title   string `json:"title,omitempty"`
	Message string `json:"message,omitempty"`
	Details string `json:"details,omitempty"`
}

// Status is the provider's news about a message the gateway sent.
type Status struct {
	Channel         string          `json:"channel"`
	EntryPoint      string          `json:"entry_point"`
	MessageID       string          `json:"message_id"`
	RecipientID     string          `json:"recipient_id,omitempty"`
	State           string          `json:"state"`
	At              time.Time       `json:"at"`
	Errors          []ProviderError `json:"errors,omitempty"`
	ConversationID  string          `json:"conversation_id,omitempty"`
	PricingCategory string          `json:"pricing_category,omitempty"`
}

// Skipped is a part of a notification that carries nothing to route (another webhook field, a group
// event, an item without an id), kept for the log.
type Skipped struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}
