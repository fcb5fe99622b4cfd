package integrations

import (
	"errors"
	"fmt"
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
