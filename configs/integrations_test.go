package configs

import (
	"strings"
	"testing"
	"time"
)

const goodWebhookSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func withIntegrations(yaml string) []byte {
	return []byte(string(Example) + "\nintegrations:\n" + yaml)
}

// A subscription takes its secret from the environment and its defaults; a wrong secret, event type
// or queue is reported with its path.
func TestWebhookSubscriptions(t *testing.T) {
	raw := withIntegrations(`  webhooks:
    - id: crm
      url: https://crm.example/hooks
      events: [message.received, card.*]
      queues: [sales]
`)
	env := map[string]string{"CHATGATE_INTEGRATIONS_WEBHOOKS_CRM_SECRET": goodWebhookSecret}
	cfg, err := Parse(raw, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Integrations.Webhooks[0]
	if w.Secret != goodWebhookSecret || w.MaxAge != 72*time.Hour || w.Timeout != 10*time.Second || w.Workers != 8 {
		t.Fatalf("subscription %+v", w)
	}
	if cfg.Integrations.RetainEvents < w.MaxAge {
		t.Fatalf("events retained %v, less than max_age %v", cfg.Integrations.RetainEvents, w.MaxAge)
	}

	bad := withIntegrations(`  webhooks:
    - id: crm
      url: https://crm.example/hooks
      secret: not-a-whsec
      events: [message.recieved]
      queues: [nowhere]
`)
	_, err = Parse(bad, noEnv)
	for _, want := range []string{"integrations.webhooks[0].secret", "integrations.webhooks[0].events[0]", "integrations.webhooks[0].queues[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want a problem at %s", err, want)
		}
	}
}
