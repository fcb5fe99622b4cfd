// Package whatsapp is the WhatsApp Cloud API webhook provider: Meta's GET handshake, the
// X-Hub-Signature-256 check on the raw body, and the notification parser. Meta's payload shapes stay
// in this package; what leaves it is webhooks' normalized form.
package whatsapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"strings"
	"sync"

	"github.com/chatgate/chatgate/webhooks"
)

// Channel is the channel name of WhatsApp conversations.
const Channel = "whatsapp"

const signaturePrefix = "sha256="

// Provider verifies and parses Cloud API notifications.
type Provider struct {
	secrets     []*macPool
	verifyToken string
}

// macPool keeps keyed HMAC states for one secret: hmac.New hashes the key and allocates two SHA-256
// states, work that every webhook would otherwise repeat.
type macPool struct{ sync.Pool }

func newMacPool(secret []byte) *macPool {
	p := &macPool{}
	p.New = func() any { return hmac.New(sha256.New, secret) }
	return p
}

// matches reports whether sum is the HMAC-SHA256 of body under this pool's secret.
func (p *macPool) matches(body, sum []byte) bool {
	mac := p.Get().(hash.Hash)
	defer p.Put(mac)
	mac.Reset()
	mac.Write(body)
	var buf [sha256.Size]byte
	return hmac.Equal(mac.Sum(buf[:0]), sum)
}

var (
	_ webhooks.Provider   = (*Provider)(nil)
	_ webhooks.Handshaker = (*Provider)(nil)
)

// New builds the provider. previousSecret, when set, is still accepted while the app secret rotates.
func New(appSecret, previousSecret, verifyToken string) *Provider {
	p := &Provider{verifyToken: verifyToken}
	if appSecret != "" {
		p.secrets = append(p.secrets, newMacPool([]byte(appSecret)))
	}
	if previousSecret != "" {
		p.secrets = append(p.secrets, newMacPool([]byte(previousSecret)))
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
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], []byte(hexSig)); err != nil {
		return webhooks.ErrUnsigned
	}
	for _, secret := range p.secrets {
		if secret.matches(body, want[:]) {
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
