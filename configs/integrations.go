package configs

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// Integrations configures the event subscriptions: the systems of record (CRM, data warehouse…)
// the gateway POSTs its events to, signed per the Standard Webhooks specification.
type Integrations struct {
	Webhooks []Webhook `yaml:"webhooks" validate:"dive"`
	// RetainEvents is how long an event is kept after it was emitted, for replays (default 3 days;
	// at least the longest max_age, so an event waiting for delivery is never dropped).
	RetainEvents time.Duration `yaml:"retain_events" validate:"gte=0"`
	// PublicURL is the gateway's address as receivers reach it, for the links in events (media,
	// large transcripts). Empty: links are paths only.
	PublicURL string `yaml:"public_url" validate:"omitempty,url"`
	// MediaURLTTL is how long a media link in an event stays valid (default 24 h).
	MediaURLTTL time.Duration `yaml:"media_url_ttl" validate:"gte=0"`
	// TranscriptInline is the most messages a conversation.closed event carries inline; a longer
	// conversation's event carries the transcript's link instead (default 200).
	TranscriptInline int `yaml:"transcript_inline" validate:"gte=0"`
}

// Webhook is one event subscription.
type Webhook struct {
	ID  string `yaml:"id" validate:"required,max=64,safeid"`
	URL string `yaml:"url" validate:"required,url"`
	// Secret is the signing secret, whsec_ and base64 (Standard Webhooks); in production from
	// CHATGATE_INTEGRATIONS_WEBHOOKS_<ID>_SECRET.
	Secret string `yaml:"secret"`
	// PreviousSecret, while a secret rotates, signs too: each request carries both signatures.
	PreviousSecret string `yaml:"previous_secret"`
	// Events filters the event types (empty: all); "card.*" names every card event.
	Events []string `yaml:"events"`
	// Queues filters conversation events by queue (empty: all). presence.changed is not filtered.
	Queues []string `yaml:"queues"`
	// Timeout bounds one delivery attempt (default 10 s).
	Timeout time.Duration `yaml:"timeout" validate:"gte=0"`
	// MaxAge is how long an event is retried before it is dead-lettered (default 3 days).
	MaxAge time.Duration `yaml:"max_age" validate:"gte=0"`
	// Workers is how many deliveries to this subscription run at once per process (default 8).
	Workers int `yaml:"workers" validate:"gte=0,lte=256"`
}

// WebhookSecretEnv names the variable that overrides a subscription's secret.
func WebhookSecretEnv(id string) string {
	return "CHATGATE_INTEGRATIONS_WEBHOOKS_" + envName(id) + "_SECRET"
}

// WebhookPreviousSecretEnv names the variable that overrides a subscription's previous secret.
func WebhookPreviousSecretEnv(id string) string {
	return "CHATGATE_INTEGRATIONS_WEBHOOKS_" + envName(id) + "_PREVIOUS_SECRET"
}

// The event types a subscription may name (outbox.Types; repeated here: configs imports nothing of
// the gateway).
var webhookEventTypes = map[string]bool{"conversation.opened": true, "message.received": true, "message.sent": true,
	"message.status": true, "card.offered": true, "card.accepted": true, "card.declined": true, "card.timed_out": true,
	"card.requeued": true, "conversation.transferred": true, "conversation.closed": true, "presence.changed": true,
	"card.*": true, "message.*": true, "conversation.*": true, "*": true}

func (c *Config) applyIntegrationsEnv(env func(string) (string, bool)) {
	for i := range c.Integrations.Webhooks {
		w := &c.Integrations.Webhooks[i]
		if v, ok := env(WebhookSecretEnv(w.ID)); ok {
			w.Secret = v
		}
		if v, ok := env(WebhookPreviousSecretEnv(w.ID)); ok {
			w.PreviousSecret = v
		}
	}
}

func (c *Config) applyIntegrationsDefaults() {
	in := &c.Integrations
	var longest time.Duration
	for i := range in.Webhooks {
		w := &in.Webhooks[i]
		if w.Timeout == 0 {
			w.Timeout = 10 * time.Second
		}
		if w.MaxAge == 0 {
			w.MaxAge = 72 * time.Hour
		}
		if w.Workers == 0 {
			w.Workers = 8
		}
		longest = max(longest, w.MaxAge)
	}
	if in.RetainEvents == 0 {
		in.RetainEvents = 72 * time.Hour
	}
	in.RetainEvents = max(in.RetainEvents, longest+time.Hour)
	if in.MediaURLTTL == 0 {
		in.MediaURLTTL = 24 * time.Hour
	}
	if in.TranscriptInline == 0 {
		in.TranscriptInline = 200
	}
}

// integrationsProblems checks the subscriptions: unique ids, known event types and queues, and
// secrets that are Standard Webhooks secrets (and, in production, not placeholders).
func (c *Config) integrationsProblems(queues map[string]bool) Problems {
	var ps Problems
	seen := map[string]bool{}
	for i, w := range c.Integrations.Webhooks {
		path := fmt.Sprintf("integrations.webhooks[%d]", i)
		if seen[w.ID] {
			ps = append(ps, Problem{path, fmt.Sprintf("%q is listed twice", w.ID)})
		}
		seen[w.ID] = true
		for j, e := range w.Events {
			if !webhookEventTypes[e] {
				ps = append(ps, Problem{fmt.Sprintf("%s.events[%d]", path, j), fmt.Sprintf("%q is not an event type", e)})
			}
		}
		for j, q := range w.Queues {
			if !queues[q] {
				ps = append(ps, Problem{fmt.Sprintf("%s.queues[%d]", path, j), fmt.Sprintf("queue %q is not configured", q)})
			}
		}
		for _, s := range []struct{ field, value, variable string }{
			{"secret", w.Secret, WebhookSecretEnv(w.ID)}, {"previous_secret", w.PreviousSecret, WebhookPreviousSecretEnv(w.ID)},
		} {
			if s.value == "" && s.field == "previous_secret" {
				continue
			}
			if !validWebhookSecret(s.value) {
				ps = append(ps, Problem{path + "." + s.field, "must be whsec_ followed by base64 of 24 to 64 random bytes (set " + s.variable + ")"})
			} else if c.Env == EnvProduction && strings.Contains(s.value, devSecretMarker) {
				ps = append(ps, Problem{path + "." + s.field, "is a development placeholder; in production set " + s.variable})
			}
		}
	}
	return ps
}

// validWebhookSecret: whsec_ and standard base64 of 24 to 64 bytes.
func validWebhookSecret(s string) bool {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && len(key) >= 24 && len(key) <= 64
}
