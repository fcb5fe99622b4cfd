// Package whatsapp is the WhatsApp Cloud API webhook provider: Meta's GET handshake, the
// X-Hub-Signature-256 check on the raw body, and the notification parser. Meta's payload shapes stay
// in this package; what leaves it is webhooks' normalized form.
package whatsapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"

	"github.com/chatgate/chatgate/webhooks"
)

// Channel is the channel name of WhatsApp conversations.
const Channel = "whatsapp"

const signaturePrefix = "sha256="

// Provider verifies and parses Cloud API notifications.
type Provider struct {
	secrets     [][]byte
	verifyToken string
}

var (
	_ webhooks.Provider   = (*Provider)(nil)
	_ webhooks.Handshaker = (*Provider)(nil)
)

// New builds the provider. previousSecret, when set, is still accepted while the app secret rotates.
func New(appSecret, previousSecret, verifyToken string) *Provider {
	p := &Provider{verifyToken: verifyToken}
	if appSecret != "" {
		p.secrets = append(p.secrets, []byte(appSecret))
	}
	if previousSecret != "" {
		p.secrets = append(p.secrets, []byte(previousSecret))
	}
	return p
}

// Verify checks X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>,
// in constant time, against the current and the previous secret.
func (p *Provider) Verify(header func(string) string, body []byte) error {
	sig := header("X-Hub-Signature-256")
	if sig == "" {
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
	for _, secret := range p.secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if hmac.Equal(mac.Sum(nil), want) {
			return nil
		}
	}
	return webhooks.ErrBadSignature
}

// Handshake answers Meta's endpoint verification: hub.mode=subscribe with the configured token.
func (p *Provider) Handshake(query func(string) string) (string, bool) {
	if query("hub.mode") != "subscribe" || p.verifyToken == "" {
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(query("hub.verify_token")), []byte(p.verifyToken)) != 1 {
		return "", false
	}
	return query("hub.challenge"), true
}
