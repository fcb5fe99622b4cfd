package integrations

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Signer signs a subscription's requests per the Standard Webhooks specification:
// webhook-signature is "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one per secret,
// space-separated, so a receiver that knows either secret of a rotation accepts the request.
// The official library checks the secrets; Sign computes what its Sign does (a test holds them
// equal) without copying the body twice per request.
type Signer struct {
	keys [][]byte
}

// NewSigner builds the signer of the secrets ("whsec_…"; empty ones are skipped).
func NewSigner(secrets ...string) (*Signer, error) {
	s := &Signer{}
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		if _, err := standardwebhooks.NewWebhook(sec); err != nil {
			return nil, fmt.Errorf("integrations: a webhook secret: %w", err)
		}
		key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_"))
		s.keys = append(s.keys, key)
	}
	if len(s.keys) == 0 {
		return nil, errors.New("integrations: a subscription needs a secret")
	}
	return s, nil
}

// Sign returns the webhook-signature header of a request.
func (s *Signer) Sign(id string, at time.Time, body []byte) (string, error) {
	var sum [sha256.Size]byte
	var out []byte
	for i, key := range s.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write(strconv.AppendInt([]byte{'.'}, at.Unix(), 10))
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			out = append(out, ' ')
		}
		out = base64.StdEncoding.AppendEncode(append(out, "v1,"...), mac.Sum(sum[:0]))
	}
	return string(out), nil
}
