package integrations

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Signer signs a subscription's requests per the Standard Webhooks specification (the official
// library): webhook-signature is "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one per secret,
// space-separated, so a receiver that knows either secret of a rotation accepts the request.
type Signer struct {
	hooks []*standardwebhooks.Webhook
}

// NewSigner builds the signer of the secrets ("whsec_…"; empty ones are skipped).
func NewSigner(secrets ...string) (*Signer, error) {
	s := &Signer{}
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		h, err := standardwebhooks.NewWebhook(sec)
		if err != nil {
			return nil, fmt.Errorf("integrations: a webhook secret: %w", err)
		}
		s.hooks = append(s.hooks, h)
	}
	if len(s.hooks) == 0 {
		return nil, errors.New("integrations: a subscription needs a secret")
	}
	return s, nil
}

// Sign returns the webhook-signature header of a request.
func (s *Signer) Sign(id string, at time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(s.hooks))
	for _, h := range s.hooks {
		sig, err := h.Sign(id, at, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// MediaSigner makes and checks the time-limited links to a message's media that events carry:
// GET /v1/messages/{id}/media?exp=<unix s>&sig=<base64url HMAC-SHA256 of "media.<id>.<exp>">.
// The key is derived from a gateway secret (the JWT secret), so every replica agrees on it.
type MediaSigner struct {
	key []byte
}

// NewMediaSigner derives the media key from secret.
func NewMediaSigner(secret string) MediaSigner {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("chatgate media links v1"))
	return MediaSigner{key: m.Sum(nil)}
}

func (m MediaSigner) sig(messageID string, exp int64) string {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte("media." + messageID + "." + strconv.FormatInt(exp, 10)))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// URL is the signed link to a message's media, valid until exp; base is the gateway's public
// address ("" gives a path).
func (m MediaSigner) URL(base, messageID string, exp time.Time) string {
	e := exp.Unix()
	q := url.Values{"exp": {strconv.FormatInt(e, 10)}, "sig": {m.sig(messageID, e)}}
	return strings.TrimRight(base, "/") + "/v1/messages/" + url.PathEscape(messageID) + "/media?" + q.Encode()
}

// Errors of Verify.
var (
	ErrMediaLinkExpired = errors.New("the media link has expired")
	ErrMediaLinkInvalid = errors.New("the media link is not signed by this gateway")
)

// Verify checks a media link's exp and sig query values for messageID at now.
func (m MediaSigner) Verify(messageID, exp, sig string, now time.Time) error {
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || sig == "" {
		return ErrMediaLinkInvalid
	}
	if !hmac.Equal([]byte(sig), []byte(m.sig(messageID, e))) {
		return ErrMediaLinkInvalid
	}
	if now.Unix() > e {
		return ErrMediaLinkExpired
	}
	return nil
}
