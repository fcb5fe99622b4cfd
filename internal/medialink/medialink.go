// Package medialink signs and checks time-limited links to a message's media
// (GET /v1/messages/{id}/media?exp=<unix>&sig=<hmac>), so an integration can fetch a customer's file
// without an agent's token. The signature is HMAC-SHA256 over the message id and the expiry under
// the gateway's media.link_key; every replica with the same key accepts the link.
package medialink

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"time"
)

// Errors of Verify.
var (
	ErrExpired   = errors.New("medialink: the link has expired")
	ErrSignature = errors.New("medialink: the link is not signed by this gateway")
)

// MinKeyLen is the shortest key accepted (bytes).
const MinKeyLen = 32

// Signer signs and verifies links with one key. Safe for concurrent use.
type Signer struct {
	key []byte
	now func() time.Time
}

// New returns a Signer; the key must be at least MinKeyLen bytes.
func New(key []byte, now func() time.Time) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, errors.New("medialink: the key is shorter than 32 bytes")
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{key: append([]byte(nil), key...), now: now}, nil
}

// RandomKey is a fresh key, for development where none is configured (links then work on this
// process only, until it restarts).
func RandomKey() []byte {
	b := make([]byte, MinKeyLen)
	rand.Read(b)
	return b
}

// Path is the media endpoint of a message, without a signature.
func Path(messageID string) string { return "/v1/messages/" + url.PathEscape(messageID) + "/media" }

// SignURL is the path and query of a link to the message's media valid until exp:
// "/v1/messages/{id}/media?exp=<unix>&sig=<signature>". Prefix it with the gateway's public base URL.
func (s *Signer) SignURL(messageID string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return Path(messageID) + "?" + url.Values{"exp": {e}, "sig": {s.sign(messageID, e)}}.Encode()
}

// Link is SignURL valid for ttl from now.
func (s *Signer) Link(messageID string, ttl time.Duration) string {
	return s.SignURL(messageID, s.now().Add(ttl))
}

// Verify checks a link's exp and sig (as given in its query) for the message.
func (s *Signer) Verify(messageID, exp, sig string) error {
	want := s.sign(messageID, exp)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return ErrSignature
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return ErrSignature
	}
	if !s.now().Before(time.Unix(e, 0)) {
		return ErrExpired
	}
	return nil
}

func (s *Signer) sign(messageID, exp string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("chatgate-media\x00" + messageID + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
