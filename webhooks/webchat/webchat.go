// Package webchat is the WebChat webhook provider, for sites that run their own chat front end: the
// per-site signature over "<timestamp>.<raw body>", the replay window, and the parser that turns a
// visitor's message into webhooks' normalized form with the site as entry point.
package webchat

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/webhooks"
)

// Channel is the channel name of WebChat conversations.
const Channel = "webchat"

// Header names of the signed webhook, part of the site protocol.
const (
	HeaderTimestamp = "X-Chatgate-Timestamp"
	HeaderSignature = "X-Chatgate-Signature"
	signaturePrefix = "sha256="
)

// Bounds of what a visitor message may carry besides the configured text length.
const (
	maxIDLength   = 128
	maxNameLength = 200
	maxEmail      = 254
	maxURLLength  = 2048
)

// Options tune the provider; zero values take the defaults of configs.
type Options struct {
	Tolerance        time.Duration // accepted distance between the signed timestamp and now
	MaxMessageLength int           // characters of text
	MaxAttachments   int
	Clock            clock.Clock
}

// Provider verifies and parses WebChat webhook requests.
type Provider struct {
	secrets map[string][][]byte // site → current secret, then the previous one during rotation
	decoy   []byte              // a random key standing in for a secret a site does not have
	opts    Options
}

var _ webhooks.Provider = (*Provider)(nil)

// errUnknownSite is a request for a site not configured: to the sender, a bad signature like any other.
var errUnknownSite = fmt.Errorf("%w: the site is not configured", webhooks.ErrBadSignature)

// errStale is a signature whose timestamp lies outside the window: a replay, or a badly set clock.
var errStale = fmt.Errorf("%w: timestamp outside the tolerance window", webhooks.ErrBadSignature)

// New builds the provider for the configured sites.
func New(sites []configs.Site, o Options) *Provider {
	if o.Tolerance <= 0 {
		o.Tolerance = 5 * time.Minute
	}
	if o.MaxMessageLength <= 0 {
		o.MaxMessageLength = 4096
	}
	if o.MaxAttachments <= 0 {
		o.MaxAttachments = 5
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	p := &Provider{secrets: map[string][][]byte{}, opts: o, decoy: make([]byte, sha256.Size)}
	_, _ = rand.Read(p.decoy)
	for _, s := range sites {
		var keys [][]byte
		if s.Secret != "" {
			keys = append(keys, []byte(s.Secret))
		}
		if s.PreviousSecret != "" {
			keys = append(keys, []byte(s.PreviousSecret))
		}
		p.secrets[s.ID] = keys
	}
	return p
}

// Sign returns the signature header value of body sent at timestamp under secret; the callbacks
// the gateway POSTs to sites are signed with it too.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks that the request is signed, that the timestamp is within the tolerance and that the
// signature matches under the site's current or previous secret, in constant time. The site is read
// only once the request carries a well-formed signature, and an unknown site is answered as a bad
// signature after the same work as a known one: nobody learns which sites exist without a secret.
func (p *Provider) Verify(header func(string) string, body []byte) error {
	ts, sig := header(HeaderTimestamp), header(HeaderSignature)
	if ts == "" || sig == "" {
		return webhooks.ErrUnsigned
	}
	hexSig, ok := strings.CutPrefix(sig, signaturePrefix)
	if !ok || len(hexSig) != 2*sha256.Size {
		return webhooks.ErrUnsigned
	}
	want := make([]byte, sha256.Size)
	if _, err := hex.Decode(want, []byte(hexSig)); err != nil {
		return webhooks.ErrUnsigned
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return webhooks.ErrUnsigned
	}
	if d := p.opts.Clock.Now().Sub(time.Unix(sec, 0)); d > p.opts.Tolerance || d < -p.opts.Tolerance {
		return errStale
	}
	var head struct {
		Site string `json:"site"`
	}
	// The secret depends on the site, so the site is read before the signature is checked; nothing
	// else of the body is trusted until it is.
	if json.Unmarshal(body, &head) != nil || head.Site == "" {
		return webhooks.ErrUnsigned
	}
	secrets, known := p.secrets[head.Site]
	// Always two MACs, every one computed: the time taken says nothing of the site or its rotation.
	candidates := [2][]byte{p.decoy, p.decoy}
	copy(candidates[:], secrets)
	match := 0
	for _, secret := range candidates {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		match |= subtle.ConstantTimeCompare(mac.Sum(nil), want)
	}
	switch {
	case !known:
		return errUnknownSite
	case match == 1:
		return nil
	}
	return webhooks.ErrBadSignature
}

// Body is the WebChat webhook payload; the built-in widget's messages take the same
// shape once the visitor's token has named the site and visitor.
type Body struct {
	Site    string  `json:"site"`
	Visitor Visitor `json:"visitor"`
	Message Content `json:"message"`
}

// Visitor is the person chatting on the site.
type Visitor struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Content is one visitor message.
type Content struct {
	ID          string       `json:"id"`
	Text        string       `json:"text"`
	PageURL     string       `json:"page_url"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment is a file the visitor shares, by URL.
type Attachment struct {
	URL      string `json:"url"`
	MimeType string `json:"mime_type,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// Parse reads a verified body into one normalized message.
func (p *Provider) Parse(body []byte) (webhooks.Notification, error) {
	var b Body
	if err := json.Unmarshal(body, &b); err != nil {
		return webhooks.Notification{}, webhooks.ErrInvalidJSON
	}
	m, err := p.Normalize(WaySignedWebhook, b)
	if err != nil {
		return webhooks.Notification{}, err
	}
	return webhooks.Notification{Messages: []webhooks.Message{m}}, nil
}

// The ways a visitor's message comes in. Message ids are chosen by whoever sends them (a site's
// server, a visitor's browser), so they are unique only for that sender: a redelivery is recognised
// by (way in, site, visitor, id), never by the id alone, and one sender's id cannot make another's
// message a duplicate.
const (
	WaySignedWebhook = "hook"
	WayWidget        = "widget"
)

// SenderScope is the deduplication scope of a visitor's message ids. The visitor id is length-
// prefixed, so no choice of visitor id and message id can spell another sender's key.
func SenderScope(way, site, visitor string) string {
	return way + ":" + site + ":" + strconv.Itoa(len(visitor)) + "." + visitor
}

// Normalize checks a visitor message that came in the given way against the limits and turns it into
// webhooks' form. The provider message id is prefixed with the site, so two sites' "m-1" are
// different messages; its deduplication scope is the sender's (SenderScope).
// Failures are *webhooks.Rejection: 413 for text over the length, 422 for the rest.
func (p *Provider) Normalize(way string, b Body) (webhooks.Message, error) {
	if err := p.check(b); err != nil {
		return webhooks.Message{}, err
	}
	m := webhooks.Message{Channel: Channel, EntryPoint: b.Site, ID: b.Site + ":" + b.Message.ID, At: p.opts.Clock.Now().UTC(),
		Sender:  SenderScope(way, b.Site, b.Visitor.ID),
		Contact: webhooks.Contact{ID: b.Visitor.ID, Name: b.Visitor.Name, Email: b.Visitor.Email},
		Kind:    "text", Text: b.Message.Text, PageURL: b.Message.PageURL}
	for _, a := range b.Message.Attachments {
		m.Attachments = append(m.Attachments, webhooks.Media{URL: a.URL, MimeType: a.MimeType, Filename: a.Filename})
	}
	if len(m.Attachments) > 0 {
		first := m.Attachments[0]
		first.Caption = m.Text
		m.Media = &first
		m.Kind = mediaKind(first.MimeType)
	}
	return m, nil
}

func mediaKind(mime string) string {
	for _, k := range []string{"image", "video", "audio"} {
		if strings.HasPrefix(mime, k+"/") {
			return k
		}
	}
	return "document"
}

func reject(reason error, format string, args ...any) *webhooks.Rejection {
	return &webhooks.Rejection{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func (p *Provider) check(b Body) error {
	invalid := func(format string, args ...any) error {
		return reject(webhooks.ErrInvalidMessage, format, args...)
	}
	switch {
	case !validID(b.Visitor.ID):
		return invalid("visitor.id is required: at most %d printable characters", maxIDLength)
	case !validID(b.Message.ID):
		return invalid("message.id is required: at most %d printable characters", maxIDLength)
	case utf8.RuneCountInString(b.Visitor.Name) > maxNameLength || !utf8.ValidString(b.Visitor.Name):
		return invalid("visitor.name is longer than %d characters", maxNameLength)
	case len(b.Visitor.Email) > maxEmail || (b.Visitor.Email != "" && !strings.Contains(b.Visitor.Email, "@")):
		return invalid("visitor.email is not an e-mail address")
	case strings.TrimSpace(b.Message.Text) == "" && len(b.Message.Attachments) == 0:
		return invalid("message.text is required (or attachments)")
	case !utf8.ValidString(b.Message.Text):
		return invalid("message.text is not valid UTF-8")
	case b.Message.PageURL != "" && !webURL(b.Message.PageURL):
		return invalid("message.page_url must be an http(s) URL of at most %d characters", maxURLLength)
	case len(b.Message.Attachments) > p.opts.MaxAttachments:
		return reject(webhooks.ErrTooManyAttachments, "a message takes at most %d attachments", p.opts.MaxAttachments)
	}
	if n := utf8.RuneCountInString(b.Message.Text); n > p.opts.MaxMessageLength {
		return reject(webhooks.ErrMessageTooLong, "message.text is %d characters; the limit is %d", n, p.opts.MaxMessageLength)
	}
	for i, a := range b.Message.Attachments {
		if !webURL(a.URL) {
			return invalid("message.attachments[%d].url must be an http(s) URL of at most %d characters", i, maxURLLength)
		}
		if len(a.MimeType) > 127 || len(a.Filename) > 240 {
			return invalid("message.attachments[%d] has an over-long mime_type or filename", i)
		}
	}
	return nil
}

func validID(s string) bool {
	if s == "" || len(s) > maxIDLength {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

func webURL(s string) bool {
	return len(s) <= maxURLLength && (strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")) && !strings.ContainsAny(s, " \n\r\t")
}
